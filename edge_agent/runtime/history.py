"""The MQTT back-fill (`history/get`), without MQTT: reads the page a request asks for from
the data log, on a read-only connection beside the recorder's writer. The request itself is
parsed by `mqtt.requests`; this is the `mqtt.handlers.HistoryHandler` the link is given.

Nothing here raises, whatever the bytes or the state of the log file: a read error is a
rejected answer naming `history`.
"""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from edge_agent.mqtt.handlers import NO_LOG_REASON, HistoryPage, HistoryResult
from edge_agent.mqtt.requests import (
    HistoryRequest,
    RejectedError,
    decode_request,
    parse_history_document,
    read_request_id,
)
from edge_agent.storage.data_log import DataLogError, DataLogStore, Record, record_to_dict

_LOGGER = logging.getLogger(__name__)


class HistoryReader:
    """Answers `history/get` from the data log at `path` (None: this box keeps no log).

    The read-only connection is opened at the first request (the recorder creates the file
    at start) and again after a failure; reads run on a worker thread, never on the loop.
    """

    def __init__(self, path: Path | None, interval_s: int) -> None:
        self.path = path
        self.interval_s = interval_s
        self._store: DataLogStore | None = None

    async def answer(self, payload: bytes) -> HistoryResult:
        request_id: str | None = None
        try:
            document = decode_request(payload)
            # Read first: a rejected answer still carries the id, as for every request.
            request_id = read_request_id(document)
            request = parse_history_document(document, request_id)
            if self.path is None:
                raise RejectedError(("history", NO_LOG_REASON))
            page = await asyncio.to_thread(self._read_page, request)
        except RejectedError as rejected:
            return HistoryResult(request_id, rejected.errors)
        except Exception as exc:  # a bug or a broken file must not take the link down
            _LOGGER.exception("history/get failed")
            return HistoryResult(request_id, (("history", f"cannot read the data log: {exc}"),))
        return HistoryResult(request_id, (), page)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    def _read_page(self, request: HistoryRequest) -> HistoryPage:
        try:
            records = self._open().records(request.start, request.end, request.limit + 1)
        except DataLogError as err:
            self.close()  # reopen at the next request: the file may have been replaced
            _LOGGER.error("history/get: %s", err)
            raise RejectedError(("history", f"cannot read the data log: {err}")) from None
        return _page(records, request.limit, self.interval_s)

    def _open(self) -> DataLogStore:
        if self._store is None:
            assert self.path is not None  # answer() checked
            self._store = DataLogStore(self.path, read_only=True)
        return self._store


def _page(records: list[Record], limit: int, interval_s: int) -> HistoryPage:
    """One record more than the limit was read: its start is where the next page begins."""
    included = records[:limit]
    next_from = records[limit].start if len(records) > limit else None
    return HistoryPage(interval_s, tuple(record_to_dict(r) for r in included), next_from)
