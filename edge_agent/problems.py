"""Wording the agent's checks share, so a message never depends on a library's phrasing.

Every place that rejects an unknown key (the config file, `config/set`, commands, history
requests) words it here, with the nearest key it knows: `thresholds.hvdd: unknown key (did you
mean 'hvd'?)`.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

UNKNOWN_KEY = "unknown key"


def unknown_key(key: object, known: Iterable[str]) -> str:
    """'unknown key', plus the closest known key when one is close enough to be a typo."""
    if not isinstance(key, str):
        return UNKNOWN_KEY
    candidates = sorted({name for name in known if isinstance(name, str)})
    close = difflib.get_close_matches(key, candidates, n=1, cutoff=0.75)
    if not close:
        close = [name for name in candidates if name.lower() == key.lower()]
    return f"{UNKNOWN_KEY} (did you mean {close[0]!r}?)" if close else UNKNOWN_KEY
