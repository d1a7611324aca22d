"""Persisted control state (SoC, learned capacity, counters) in a small SQLite file.

One row holds the latest state as JSON. WAL journal with synchronous=FULL: each save is durable
when `save` returns, and a crash or power cut mid-save leaves the previous state intact (the
transaction is simply not there). A file that is not a healthy SQLite database is never
replaced silently: the caller must ask for `recover=True`, and the bad file is kept aside.
"""

from __future__ import annotations

import json
import math
import sqlite3
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from edge_agent.storage.files import move_aside
from edge_agent.storage.sqlite_file import SqliteFile

STATE_SCHEMA_VERSION = 1  # format of the JSON document; bump when the control state changes
_DATABASE_VERSION = 1  # PRAGMA user_version: layout of the tables

_CREATE_TABLE = """
CREATE TABLE IF NOT EXISTS control_state (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    schema_version INTEGER NOT NULL,
    written_at REAL NOT NULL,
    state_json TEXT NOT NULL
)
"""
_UPSERT = """
INSERT INTO control_state (id, schema_version, written_at, state_json) VALUES (1, ?, ?, ?)
ON CONFLICT (id) DO UPDATE SET
    schema_version = excluded.schema_version,
    written_at = excluded.written_at,
    state_json = excluded.state_json
"""
_SQLITE_HEADER = b"SQLite format 3\x00"
_SIDE_FILE_SUFFIXES = ("-wal", "-shm", "-journal")


class StateStoreError(Exception):
    """The state file cannot be opened, read or written. The message names the file."""


class StateStore(SqliteFile):
    """The latest control state, saved atomically. Thread-safe; use as a context manager."""

    def __init__(self, path: Path, *, recover: bool = False) -> None:
        self.path = path
        self.recovered_from: Path | None = None  # where a corrupt file was moved, if it was
        super().__init__()
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StateStoreError(f"{path}: cannot create the directory: {exc}") from exc
        try:
            self._connection = _connect(path)
        except _CorruptDatabaseError as exc:
            if not recover:
                raise StateStoreError(
                    f"{path}: not a usable state database ({exc}); "
                    "open it with recover=True to keep it aside and start fresh"
                ) from exc
            self.recovered_from = _move_aside(path)
            try:
                self._connection = _connect(path)
            except _CorruptDatabaseError as retry_exc:
                raise StateStoreError(f"{path}: cannot create a new database: {retry_exc}") from (
                    retry_exc
                )

    @classmethod
    def open(cls, path: Path, *, recover: bool = False) -> StateStore:
        return cls(path, recover=recover)

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when nothing was ever saved."""
        with self._lock:
            self._check_open()
            try:
                row = self._connection.execute(
                    "SELECT schema_version, state_json FROM control_state WHERE id = 1"
                ).fetchone()
            except sqlite3.Error as exc:
                raise StateStoreError(f"{self.path}: cannot read the state: {exc}") from exc
        if row is None:
            return None
        schema_version, state_json = row
        if schema_version != STATE_SCHEMA_VERSION:
            raise StateStoreError(
                f"{self.path}: state schema version {schema_version} is not supported "
                f"(this agent reads version {STATE_SCHEMA_VERSION})"
            )
        try:
            state = json.loads(state_json)
        except (TypeError, ValueError) as exc:
            raise StateStoreError(f"{self.path}: the saved state is not valid JSON") from exc
        if not isinstance(state, dict):
            raise StateStoreError(f"{self.path}: the saved state is not a JSON object")
        return state

    def save(self, state: Mapping[str, Any], now: float) -> None:
        """Replace the saved state in one transaction; durable when this returns."""
        try:
            # allow_nan=False: NaN/inf would be written as non-standard JSON and read back as
            # poison values for the SoC estimator.
            state_json = json.dumps(dict(state), allow_nan=False, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise StateStoreError(f"{self.path}: the state is not JSON-serialisable: {exc}") from (
                exc
            )
        if not math.isfinite(now):
            raise StateStoreError(f"{self.path}: the save time must be finite (got {now})")
        with self._lock:
            self._check_open()
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    self._connection.execute(_UPSERT, (STATE_SCHEMA_VERSION, now, state_json))
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise StateStoreError(f"{self.path}: cannot save the state: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise StateStoreError(f"{self.path}: the state store is closed")


class _CorruptDatabaseError(Exception):
    """The file exists but is not a healthy SQLite database (recoverable on request)."""


def _connect(path: Path) -> sqlite3.Connection:
    """Open, configure and check the database.

    Raises _CorruptDatabaseError for a damaged or foreign file, StateStoreError for anything
    else (permissions, a directory in the way, a locked file): those are never "recovered" by
    moving the file aside.
    """
    _check_header(path)
    try:
        # isolation_level=None: no implicit transactions, `save` issues BEGIN/COMMIT itself.
        # check_same_thread=False: the daemon may save from a worker thread; a lock serialises.
        connection = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    except sqlite3.Error as exc:
        raise StateStoreError(f"{path}: cannot open: {exc}") from exc
    try:
        _configure(connection, path)
    except sqlite3.OperationalError as exc:
        connection.close()
        raise StateStoreError(f"{path}: cannot open: {exc}") from exc
    except sqlite3.DatabaseError as exc:  # "file is not a database", "malformed", ...
        connection.close()
        raise _CorruptDatabaseError(str(exc)) from exc
    except BaseException:
        connection.close()
        raise
    return connection


def _check_header(path: Path) -> None:
    """Refuse a foreign file before SQLite touches it: on close SQLite would delete the WAL
    and SHM files beside it, which belong to whatever the file really is."""
    try:
        with path.open("rb") as file:
            header = file.read(len(_SQLITE_HEADER))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateStoreError(f"{path}: cannot open: {exc}") from exc
    if header and header != _SQLITE_HEADER:
        raise _CorruptDatabaseError("file is not a database (no SQLite header)")


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    journal_mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(journal_mode).lower() != "wal":
        raise StateStoreError(f"{path}: cannot switch to the WAL journal (got {journal_mode})")
    connection.execute("PRAGMA synchronous=FULL")
    check = connection.execute("PRAGMA quick_check").fetchall()
    if check != [("ok",)]:
        raise _CorruptDatabaseError(f"integrity check failed: {check[:3]}")
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > _DATABASE_VERSION:
        # Written by a newer agent: not corrupt, so never moved aside.
        raise StateStoreError(
            f"{path}: database version {version} is newer than this agent's {_DATABASE_VERSION}"
        )
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(_CREATE_TABLE)
    connection.execute(f"PRAGMA user_version = {_DATABASE_VERSION}")
    connection.execute("COMMIT")


def _move_aside(path: Path) -> Path:
    """Rename a bad database (and its WAL/SHM files, which belong to it) out of the way."""
    try:
        return move_aside(path, "corrupt", _SIDE_FILE_SUFFIXES)
    except OSError as exc:
        raise StateStoreError(f"{path}: cannot move the corrupt file aside: {exc}") from exc
