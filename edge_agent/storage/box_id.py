"""The box's own id, the `serial` its announce carries: made once, kept beside the state.

Home Assistant knows a box by this id (its entities' unique ids), so it must outlive renames
of the agent id, restarts and a state database moved aside, and differ between two agents on
one machine. The OS machine id does not (two agents on one computer share it); a random id in
a file beside each agent's state does.
"""

from __future__ import annotations

import os
import re
import secrets
from pathlib import Path

_BOX_ID = re.compile(r"^[0-9a-f]{16}$")


class BoxIdError(Exception):
    """The id file exists but cannot be read or holds no id. The message names the file."""


def box_id_path_for(state_path: Path) -> Path:
    """The id file of the agent whose state is at `state_path`."""
    return state_path.with_name(state_path.name + ".box-id")


def load_or_create_box_id(path: Path) -> str:
    """The id in `path`; a new one, written durably, when there is no file yet."""
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        return _create(path)
    except (OSError, UnicodeDecodeError) as exc:
        raise BoxIdError(f"{path}: cannot read the box id: {exc}") from exc
    if not _BOX_ID.match(text):
        raise BoxIdError(
            f"{path}: not a box id (16 hex digits, got {text[:40]!r}); delete the file to "
            "have a new one made (Home Assistant then sees a new box)"
        )
    return text


def _create(path: Path) -> str:
    box_id = secrets.token_hex(8)
    temporary = path.with_name(path.name + ".tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with temporary.open("w", encoding="ascii") as file:
            file.write(box_id + "\n")
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)  # atomic: a crash leaves no half-written id
    except OSError as exc:
        raise BoxIdError(f"{path}: cannot write the box id: {exc}") from exc
    return box_id
