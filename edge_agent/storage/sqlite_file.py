"""What the agent's SQLite files share: one connection used from several threads (the control
loop and the MQTT task), serialized by one lock, closed once, usable as a context manager."""

from __future__ import annotations

import sqlite3
import threading
from types import TracebackType
from typing import Self


class SqliteFile:
    """Lifecycle of one SQLite connection; subclasses open `_connection` in their __init__."""

    _connection: sqlite3.Connection

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._closed = False

    def close(self) -> None:
        """Close the connection; later calls do nothing."""
        with self._lock:
            if not self._closed:
                self._closed = True
                self._connection.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()
