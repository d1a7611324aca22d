"""What a request on the MQTT link may be (docs/protocol.md, "Bad input", "Limits" and
"History"), without MQTT: the bytes become a JSON object or a (field, reason) problem, and
`history/get` is read into a request. Pure: nothing here touches a socket, a file or a clock,
and nothing raises but `RejectedError`, whatever the bytes.

The runtime's handlers (`runtime/remote.py`, `runtime/history.py`) check their own fields with
these helpers, so every request kind words its problems the same way.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.control.values import is_number
from edge_agent.problems import unknown_key

MAX_PAYLOAD_BYTES = 16384
MAX_NESTING = 16  # objects/arrays inside one another
CONFIG_SET = "config/set"
HISTORY_GET = "history/get"
DEFAULT_LIMIT = 100
# A page of 200 records of an 8S box is 161 KiB of JSON (~825 bytes a record): over the
# 128 KiB that keeps one message small for every broker and client. 120 records: ~97 KiB.
MAX_LIMIT = 120
MAX_SPAN_S = 400 * 86400
# UNIX seconds the log can hold: 1970 to about 2286 (anything else is a client bug).
TIME_RANGE = (0.0, 1e10)
_REQUIRED = ("from", "to")
_ALLOWED = frozenset({*_REQUIRED, "limit", "request_id"})

_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUEST_ID_RULE = "must be 1 to 64 letters, digits, '_', '.', ':' or '-'"

Problem = tuple[str, str]  # (field, reason)


class RejectedError(Exception):
    """A request refused, with every problem found."""

    def __init__(self, *errors: Problem) -> None:
        super().__init__(errors)
        self.errors = errors


class _DuplicateKeyError(ValueError):
    pass


def decode_request(payload: bytes) -> dict[str, Any]:
    """Bytes -> a JSON object, or RejectedError naming the payload's problem."""
    untrusted: object = payload
    if not isinstance(untrusted, bytes | bytearray | memoryview):
        raise RejectedError(("payload", f"must be bytes (got {type(untrusted).__name__})"))
    data = bytes(untrusted)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise RejectedError(
            ("payload", f"too large: {len(data)} bytes (at most {MAX_PAYLOAD_BYTES})")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RejectedError(
            ("payload", f"not UTF-8 text (byte {exc.start}: {exc.reason})")
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_json_int)
    except _DuplicateKeyError as exc:
        raise RejectedError(("payload", str(exc))) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise RejectedError(("payload", f"invalid JSON at {where}: {exc.msg}")) from None
    except RecursionError:
        raise RejectedError(("payload", f"nested more than {MAX_NESTING} levels deep")) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise RejectedError(("payload", f"invalid JSON: {exc}")) from None
    if not isinstance(document, dict):
        raise RejectedError(("payload", f"must be a JSON object (got {json_kind(document)})"))
    if _too_deep(document):
        raise RejectedError(("payload", f"nested more than {MAX_NESTING} levels deep"))
    return document


def _too_deep(document: object) -> bool:
    """Iterative, so the check itself cannot overflow the stack. Valid requests nest 4 deep;
    refusing deeper ones keeps recursion (repr, validation) safe further on."""
    level: list[object] = [document]
    for _ in range(MAX_NESTING):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


# Every key the protocol uses is a word: a key with ": ", "." or anything else would make the
# dotted field paths of the answer ambiguous, so it is refused before any check reads it.
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if not _KEY.match(key):
            raise _DuplicateKeyError(
                f"key {show_value(key)} is not a key of this protocol (keys are 1 to 64 letters, "
                "digits, '_' or '-')"
            )
        if key in document:
            raise _DuplicateKeyError(f"duplicate key {show_value(key)}")
        document[key] = value
    return document


def _json_int(text: str) -> int | float:
    """Integers beyond what a float holds become +-inf, which every number check rejects
    naming the field (instead of an OverflowError deep in a comparison)."""
    value = int(text)
    if abs(value) <= 2**53:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def read_request_id(document: Mapping[str, Any]) -> str | None:
    """The request's `request_id`, None when it has none."""
    if "request_id" not in document:
        return None
    value = document["request_id"]
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    raise RejectedError(("request_id", f"{_REQUEST_ID_RULE} (got {show_value(value)})"))


def check_keys(document: Mapping[str, Any], required: tuple[str, ...]) -> None:
    allowed = {*required, "request_id"}
    errors = [(key, unknown_key(key, allowed)) for key in document if key not in allowed]
    errors += [(key, "required key is missing") for key in required if key not in document]
    if errors:
        raise RejectedError(*errors)


def number_field(document: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = document[key]
    if not is_number(value):
        raise RejectedError((key, f"must be a number (got {show_value(value)})"))
    if not math.isfinite(value):
        raise RejectedError((key, f"must be a finite number (got {value!r})"))
    if not low <= value <= high:
        raise RejectedError((key, f"must be between {low:g} and {high:g} (got {value:g})"))
    return float(value)


def json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def show_value(value: Any, limit: int = 40) -> str:
    """A value for an error message: short, so a hostile payload cannot bloat the result."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # huge ints, deep nesting
        text = f"<{json_kind(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


# --- history/get -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class HistoryRequest:
    request_id: str | None
    start: float  # "from": records whose start is in [start, end)
    end: float  # "to"
    limit: int


def parse_history_request(payload: bytes) -> HistoryRequest:
    """Bytes -> a request, or RejectedError naming every field at fault."""
    document = decode_request(payload)
    return parse_history_document(document, read_request_id(document))


def parse_history_document(document: Mapping[str, Any], request_id: str | None) -> HistoryRequest:
    # Every problem in one answer: unknown and missing keys, and each present field's own.
    errors = [(key, unknown_key(key, _ALLOWED)) for key in document if key not in _ALLOWED]
    errors += [(key, "required key is missing") for key in _REQUIRED if key not in document]
    try:
        start, end, limit = _collect(
            lambda: number_field(document, "from", *TIME_RANGE) if "from" in document else 0.0,
            lambda: number_field(document, "to", *TIME_RANGE) if "to" in document else 0.0,
            lambda: _limit(document),
        )
    except RejectedError as rejected:
        errors += rejected.errors
    if errors:
        raise RejectedError(*errors)
    if not end > start:
        raise RejectedError(("to", f"must be after from (got {end:g} <= {start:g})"))
    if end - start > MAX_SPAN_S:
        days = MAX_SPAN_S // 86400
        raise RejectedError(("to", f"at most {days} days after from (got {end - start:g} s)"))
    return HistoryRequest(request_id, start, end, limit)


def _collect(*checks: Any) -> list[Any]:
    """Run every field check, so one answer names all the bad fields, not just the first."""
    values: list[Any] = []
    errors: list[Problem] = []
    for check in checks:
        try:
            values.append(check())
        except RejectedError as rejected:
            errors += rejected.errors
    if errors:
        raise RejectedError(*errors)
    return values


def _limit(document: Mapping[str, Any]) -> int:
    if "limit" not in document:
        return DEFAULT_LIMIT
    value = document["limit"]
    # 100.0 is an integer for JSON Schema too; true is not; NaN and Infinity are no integers
    # (checked first: math.floor raises on them).
    if not is_number(value) or not math.isfinite(value) or value != math.floor(value):
        raise RejectedError(("limit", f"must be an integer (got {value!r:.40})"))
    if not 1 <= value <= MAX_LIMIT:
        raise RejectedError(("limit", f"must be between 1 and {MAX_LIMIT} (got {value:g})"))
    return int(value)
