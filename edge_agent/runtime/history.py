"""The MQTT back-fill (`history/get`), without MQTT: parses a paged request for data-log
records and reads the page, on a read-only connection beside the recorder's writer.

Requests are checked with the same helpers as `config/set` and `cmd/<name>` (remote.py), so a
bad one is answered with the same (field, reason) errors. Nothing here raises, whatever the
bytes or the state of the log file: a read error is a rejected answer naming `history`.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.problems import unknown_key
from edge_agent.runtime.remote import (
    Problem,
    _number,
    _RejectedError,
    _request_id,
    decode_request,
)
from edge_agent.storage.data_log import DataLogError, DataLogStore, Record, record_to_dict

_LOGGER = logging.getLogger(__name__)

HISTORY_GET = "history/get"
DEFAULT_LIMIT = 100
# A page of 200 records of an 8S box is 161 KiB of JSON (~825 bytes a record): over the
# 128 KiB that keeps one message small for every broker and client. 120 records: ~97 KiB.
MAX_LIMIT = 120
MAX_SPAN_S = 400 * 86400
# UNIX seconds the log can hold: 1970 to about 2286 (anything else is a client bug).
TIME_RANGE = (0.0, 1e10)
NO_LOG_REASON = "no data log on this box"
_REQUIRED = ("from", "to")
_ALLOWED = frozenset({*_REQUIRED, "limit", "request_id"})


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    request_id: str | None
    start: float  # "from": records whose start is in [start, end)
    end: float  # "to"
    limit: int


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """One accepted page: records oldest first; next_from None when the range is exhausted."""

    interval_s: int
    records: tuple[dict[str, Any], ...]
    next_from: int | None


@dataclass(frozen=True, slots=True)
class HistoryResult:
    """The answer to one `history/get`: a page when accepted, errors when rejected."""

    request_id: str | None
    errors: tuple[Problem, ...]
    page: HistoryPage | None = None

    @property
    def accepted(self) -> bool:
        return not self.errors


def parse_history_request(payload: bytes) -> HistoryRequest:
    """Bytes -> a request, or _RejectedError naming every field at fault."""
    document = decode_request(payload)
    return _parse_document(document, _request_id(document))


def _parse_document(document: Mapping[str, Any], request_id: str | None) -> HistoryRequest:
    # Every problem in one answer: unknown and missing keys, and each present field's own.
    errors = [(key, unknown_key(key, _ALLOWED)) for key in document if key not in _ALLOWED]
    errors += [(key, "required key is missing") for key in _REQUIRED if key not in document]
    try:
        start, end, limit = _collect(
            lambda: _number(document, "from", *TIME_RANGE) if "from" in document else 0.0,
            lambda: _number(document, "to", *TIME_RANGE) if "to" in document else 0.0,
            lambda: _limit(document),
        )
    except _RejectedError as rejected:
        errors += rejected.errors
    if errors:
        raise _RejectedError(*errors)
    if not end > start:
        raise _RejectedError(("to", f"must be after from (got {end:g} <= {start:g})"))
    if end - start > MAX_SPAN_S:
        days = MAX_SPAN_S // 86400
        raise _RejectedError(("to", f"at most {days} days after from (got {end - start:g} s)"))
    return HistoryRequest(request_id, start, end, limit)


def _collect(*checks: Any) -> list[Any]:
    """Run every field check, so one answer names all the bad fields, not just the first."""
    values: list[Any] = []
    errors: list[Problem] = []
    for check in checks:
        try:
            values.append(check())
        except _RejectedError as rejected:
            errors += rejected.errors
    if errors:
        raise _RejectedError(*errors)
    return values


def _limit(document: Mapping[str, Any]) -> int:
    if "limit" not in document:
        return DEFAULT_LIMIT
    value = document["limit"]
    # 100.0 is an integer for JSON Schema too; true is not; NaN and Infinity are no integers
    # (checked first: math.floor raises on them).
    if (
        isinstance(value, bool)
        or not isinstance(value, int | float)
        or not math.isfinite(value)
        or value != math.floor(value)
    ):
        raise _RejectedError(("limit", f"must be an integer (got {value!r:.40})"))
    if not 1 <= value <= MAX_LIMIT:
        raise _RejectedError(("limit", f"must be between 1 and {MAX_LIMIT} (got {value:g})"))
    return int(value)


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
            request_id = _request_id(document)
            request = _parse_document(document, request_id)
            if self.path is None:
                raise _RejectedError(("history", NO_LOG_REASON))
            page = await asyncio.to_thread(self._read_page, request)
        except _RejectedError as rejected:
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
            raise _RejectedError(("history", f"cannot read the data log: {err}")) from None
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
