"""Saves the control state on a thread of its own, so a slow fsync never delays a sample.

The control loop hands each snapshot to `StateWriter.offer`, which only stores it (latest
wins) and returns; the writer thread commits it with `StateStore.save` (one transaction,
`synchronous=FULL`). A snapshot offered while a commit is in flight waits in the one slot; a
newer one replaces it (`superseded` counts them), because only the latest state matters.

What a power cut can lose: the saves not yet committed, i.e. the last save interval plus the
commit in flight. With a disk slower than the save interval, the database lags the controller
by at most one commit time plus one interval; every commit is still whole or absent.

Nothing here raises into the loop: a failed commit is logged (the first of a run of failures
and the recovery, not every sample), counted in `write_errors` and kept in `last_error`.
`close` commits the latest snapshot before closing the store.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from typing import Any, Protocol

_LOGGER = logging.getLogger(__name__)

CLOSE_TIMEOUT_S = 10.0


class StateSink(Protocol):
    """What the agent needs of a state store (`StateStore`, or a test's slow one)."""

    def load(self) -> dict[str, Any] | None: ...

    def save(self, state: Mapping[str, Any], now: float) -> None: ...

    def close(self) -> None: ...


class StateWriter:
    """One writer thread for one store. `offer` from the loop; `flush`/`close` to wait."""

    def __init__(self, store: StateSink, *, name: str = "state-store") -> None:
        self._store = store
        self._condition = threading.Condition()
        self._pending: tuple[Mapping[str, Any], float] | None = None
        self._offered = 0  # snapshots offered so far
        self._finished = 0  # the offer number the last finished commit (or failure) covered
        self._closing = False
        self.written = 0
        self.superseded = 0  # snapshots replaced by a newer one before their commit
        self.write_errors = 0
        self.last_error: str | None = None
        self._failing = False
        self._thread = threading.Thread(target=self._write_forever, name=name, daemon=True)
        self._thread.start()

    def offer(self, state: Mapping[str, Any], now: float) -> None:
        """Queue `state` for the writer (replacing one not yet started). Never blocks on the
        disk: the lock is only held by `offer` and by the writer's hand-over, never by a
        commit."""
        with self._condition:
            if self._closing:
                _LOGGER.warning("State store: a save after close is dropped")
                return
            if self._pending is not None:
                self.superseded += 1
            self._pending = (state, now)
            self._offered += 1
            self._condition.notify_all()

    @property
    def offered(self) -> int:
        """How many snapshots were offered so far."""
        with self._condition:
            return self._offered

    def flush(self, timeout_s: float | None = None) -> bool:
        """Wait until everything offered so far is committed (or has failed); False on
        timeout."""
        with self._condition:
            target = self._offered
            return self._condition.wait_for(lambda: self._finished >= target, timeout_s)

    def close(self, timeout_s: float = CLOSE_TIMEOUT_S) -> bool:
        """Commit the latest offered state, stop the thread and close the store.

        False when the writer did not finish within `timeout_s` (a hung disk): the store is
        then left to the still running daemon thread and the error is logged.
        """
        with self._condition:
            if self._closing:
                return not self._thread.is_alive()
            self._closing = True
            self._condition.notify_all()
        self._thread.join(timeout_s)
        if self._thread.is_alive():
            _LOGGER.error(
                "State store: the last save did not finish within %.0f s; the state on disk "
                "may be older than the last sample",
                timeout_s,
            )
            return False
        self._store.close()
        return True

    def _write_forever(self) -> None:
        while True:
            with self._condition:
                self._condition.wait_for(lambda: self._pending is not None or self._closing)
                if self._pending is None:
                    return  # closing, nothing left
                state, now = self._pending
                self._pending = None
                covers = self._offered
            self._write(state, now)
            with self._condition:
                self._finished = covers
                self._condition.notify_all()

    def _write(self, state: Mapping[str, Any], now: float) -> None:
        try:
            self._store.save(state, now)
        except Exception as err:  # a failing disk or a bug: logged, never raised into the loop
            self.write_errors += 1
            self.last_error = str(err)
            if not self._failing:
                _LOGGER.error("State store: cannot save the state: %s", err)
            self._failing = True
            return
        self.written += 1
        if self._failing:
            _LOGGER.warning("State store: saving again (%d saves failed so far)", self.write_errors)
        self._failing = False
