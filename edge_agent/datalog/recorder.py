"""Feeds the aggregator from the control loop and writes records on a thread of their own.

The loop only aggregates (microseconds); the fsync of each record happens on the writer thread,
so a slow SD card never delays a sample. Nothing here raises into the loop: a failed write is
logged and counted, and protection goes on.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

from edge_agent.config import DataLogSettings
from edge_agent.control.model import ControlReport
from edge_agent.datalog.aggregator import DataAggregator
from edge_agent.storage.data_log import DataLogError, DataLogStore, Record

_LOGGER = logging.getLogger(__name__)

# Records waiting for the disk; at 2 minutes each this is days of a hung disk.
_QUEUE_LIMIT = 4096
_CLOSE_TIMEOUT_S = 10.0


class DataRecorder:
    """Owns the aggregator, the store and the writer thread. `offer` each report; `close`."""

    def __init__(self, store: DataLogStore, interval_s: int) -> None:
        self._store = store
        self._aggregator = DataAggregator(interval_s)
        self._queue: queue.Queue[Record | None] = queue.Queue(maxsize=_QUEUE_LIMIT)
        self.written = 0
        self.write_errors = 0
        self.dropped = 0  # records lost to a full queue
        self._aggregation_failed = False
        self._thread = threading.Thread(target=self._write_forever, name="data-log", daemon=True)
        self._thread.start()

    def offer(self, report: ControlReport) -> None:
        """Aggregate one report; hand a closed record to the writer. Never raises."""
        try:
            record = self._aggregator.add(report)
        except Exception:  # a bug here must not stop protection
            if not self._aggregation_failed:
                _LOGGER.exception("Data log: cannot aggregate a report")
            self._aggregation_failed = True
            return
        if record is not None:
            self._enqueue(record)

    def close(self) -> None:
        """Write the interval in progress and every queued record, then close the store."""
        record = self._aggregator.flush()
        if record is not None:
            self._enqueue(record)
        self._queue.put(None)
        self._thread.join(_CLOSE_TIMEOUT_S)
        if self._thread.is_alive():
            _LOGGER.error("Data log: the writer did not finish within %.0f s", _CLOSE_TIMEOUT_S)
            return  # the daemon thread still owns the store
        self._store.close()

    def _enqueue(self, record: Record) -> None:
        try:
            self._queue.put_nowait(record)
        except queue.Full:
            self.dropped += 1
            _LOGGER.error("Data log: the disk is not keeping up; record %d dropped", record.start)

    def _write_forever(self) -> None:
        while (record := self._queue.get()) is not None:
            self._write(record)

    def _write(self, record: Record) -> None:
        try:
            self._store.append(record)
        except DataLogError as err:
            self.write_errors += 1
            # Logged every time: each one is a lost record, and they come every few minutes.
            _LOGGER.error("Data log: %s (%d write errors so far)", err, self.write_errors)
            return
        self.written += 1


def open_recorder(settings: DataLogSettings, path: Path) -> DataRecorder | None:
    """The recorder the configuration asks for; None when disabled or the file is unusable.

    An unusable log is logged, never fatal: the agent protects the battery without history.
    """
    if not settings.enabled:
        return None
    try:
        store = DataLogStore(
            path, retention_days=settings.retention_days, interval_s=settings.interval_s
        )
    except DataLogError as err:
        _LOGGER.error("Data log disabled: %s", err)
        return None
    _LOGGER.info("Data log: %s, a record every %d s", path, settings.interval_s)
    return DataRecorder(store, settings.interval_s)
