"""What the stores share about their files on disk."""

from __future__ import annotations

import time
from collections.abc import Iterable
from pathlib import Path


def move_aside(path: Path, label: str, side_suffixes: Iterable[str] = ()) -> Path:
    """Rename an unusable file out of the way, to `<name>.<label>-<time>` (with a counter when
    that exists), and its side files (`<name><suffix>`, e.g. SQLite's -wal and -shm, which
    belong to it) with it, so it can be looked at later and a fresh file made. Returns the new
    path; an OSError is the caller's to word."""
    stamp = time.strftime("%Y%m%dT%H%M%S")
    target = path.with_name(f"{path.name}.{label}-{stamp}")
    counter = 1
    while target.exists():
        target = path.with_name(f"{path.name}.{label}-{stamp}-{counter}")
        counter += 1
    path.rename(target)
    for suffix in side_suffixes:
        side_file = path.with_name(path.name + suffix)
        if side_file.exists():
            side_file.rename(target.with_name(target.name + suffix))
    return target
