"""Remote configuration changes that must survive a restart, in one small JSON file.

The file holds the accepted remote (MQTT config/set) changes, merged into one change set in the
remote shape, and the revision of the last accepted change:

    {"format": 1, "revision": 3, "changes": {"thresholds": {"hvd": 3.55}}}

On start the agent applies the changes on top of the configuration file, so remotely set
fields win over the file. Writes are atomic (temporary file, fsync, rename, fsync of the
directory): after a crash the file holds either the old or the new document, never a mix. A
file that cannot be read as such a document is moved aside (never silently overwritten) and
reported by name.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.control.values import is_integer
from edge_agent.storage.files import move_aside

OVERLAY_FORMAT_VERSION = 1
OVERLAY_SUFFIX = ".config-overlay.json"


class ConfigOverlayError(Exception):
    """The overlay file cannot be read or written. The message names the file."""


def overlay_path_for(state_path: Path) -> Path:
    """Where the overlay of the agent whose state lives in `state_path` is kept.

    Next to the state database and named after it ("state.db" -> "state.config-overlay.json"),
    so several agents sharing a directory keep separate overlays.
    """
    return state_path.with_name(state_path.stem + OVERLAY_SUFFIX)


class ConfigOverlay:
    """The persisted remote change set and its revision.

    `changes` and `revision` mirror the file as last loaded or saved (empty and 0 before).
    A file set aside keeps its revision here, so revisions never go backwards while the agent
    runs.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.set_aside_to: Path | None = None  # where an unusable file was moved, if it was
        self.loaded = False  # load() was called (whatever it found)
        self.changes: dict[str, Any] = {}
        self.revision = 0

    def load(self) -> tuple[dict[str, Any], int] | None:
        """(changes, revision), or None when no overlay was ever saved.

        An unreadable or malformed file is moved aside and ConfigOverlayError is raised naming
        both paths; the next `save` starts a new file.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return None
        except UnicodeDecodeError as exc:
            raise self._unusable(f"not UTF-8 text: {exc}") from None
        except OSError as exc:
            raise ConfigOverlayError(f"{self.path}: cannot read the file: {exc}") from exc
        try:
            document = json.loads(text)
        except (ValueError, RecursionError) as exc:
            raise self._unusable(f"not valid JSON: {exc}") from None
        problem = _document_problem(document)
        if problem is not None:
            raise self._unusable(problem)
        self.changes, self.revision = dict(document["changes"]), int(document["revision"])
        return dict(self.changes), self.revision

    def save(self, changes: Mapping[str, Any], revision: int) -> None:
        """Replace the overlay atomically; durable when this returns."""
        if not is_integer(revision) or revision < 0:
            raise ValueError(f"revision must be a whole number >= 0 (got {revision!r})")
        document = {"format": OVERLAY_FORMAT_VERSION, "revision": revision, "changes": changes}
        try:
            text = json.dumps(document, indent=2, sort_keys=True, allow_nan=False) + "\n"
        except (TypeError, ValueError) as exc:
            raise ValueError(f"changes are not JSON data: {exc}") from exc
        try:
            _write_atomically(self.path, text.encode("utf-8"))
        except OSError as exc:
            raise ConfigOverlayError(f"{self.path}: cannot write the file: {exc}") from exc
        self.changes, self.revision = json.loads(text)["changes"], revision

    def set_aside(self, reason: str) -> Path:
        """Move the file out of the way (it no longer fits the configuration file)."""
        self.set_aside_to = _move_aside(self.path, reason)
        self.changes = {}
        return self.set_aside_to

    def _unusable(self, problem: str) -> ConfigOverlayError:
        try:
            target = self.set_aside(problem)
        except ConfigOverlayError as exc:
            return ConfigOverlayError(
                f"{self.path}: not a usable config overlay ({problem}); {exc}"
            )
        return ConfigOverlayError(
            f"{self.path}: not a usable config overlay ({problem}); moved aside to {target}"
        )


def _document_problem(document: Any) -> str | None:
    if not isinstance(document, dict):
        return "the top level is not an object"
    if document.get("format") != OVERLAY_FORMAT_VERSION:
        return f"unsupported format {document.get('format')!r}"
    revision = document.get("revision")
    if not is_integer(revision) or revision < 0:
        return f"revision must be a whole number >= 0 (got {revision!r})"
    if not isinstance(document.get("changes"), dict):
        return "changes must be an object"
    unknown = sorted(set(document) - {"format", "revision", "changes"})
    if unknown:
        return f"unknown keys {unknown}"
    return None


def _write_atomically(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with temporary.open("wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except OSError:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); not possible (nor needed) everywhere."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _move_aside(path: Path, reason: str) -> Path:
    try:
        return move_aside(path, "rejected")
    except OSError as exc:
        raise ConfigOverlayError(f"{path}: cannot move the file aside ({reason}): {exc}") from exc
