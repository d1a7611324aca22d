"""What answers the link's requests: the interfaces the link calls and the answers it gets.

The link (`client.py`) knows requests only by these Protocols; the runtime implements them
(`runtime.remote.RemoteControl` for `config/set` and `cmd/<name>`, `runtime.history.
HistoryReader` for `history/get`) and hands them in when it composes the agent. So this
package never imports the runtime, and a link can be tested with any object of this shape.
Pure: no socket, file or clock here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from edge_agent.mqtt.requests import (
    Problem,
    RejectedError,
    decode_request,
    parse_history_document,
    read_request_id,
)

NO_LOG_REASON = "no data log on this box"


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """The answer to one `config/set` or command: accepted when there are no errors."""

    command: str  # "config/set" or the command name
    request_id: str | None
    errors: tuple[Problem, ...]
    config_revision: int | None = None  # accepted config/set only
    changed: bool | None = None  # accepted config/set only: False when nothing changed

    @property
    def accepted(self) -> bool:
        return not self.errors


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


class RemoteHandler(Protocol):
    """Answers `config/set` and `cmd/<name>`; never raises, whatever the bytes."""

    async def handle_config_set_async(
        self, payload: bytes, clock: Callable[[], float]
    ) -> RemoteResult:
        """`clock` gives the agent's time when an accepted change is applied."""
        ...

    def handle_command(self, name: str, payload: bytes, now: float) -> RemoteResult: ...


class HistoryHandler(Protocol):
    """Answers `history/get`; never raises, whatever the bytes or the state of its files."""

    async def answer(self, payload: bytes) -> HistoryResult: ...

    def close(self) -> None:
        """The link has stopped: release what the answers held open."""
        ...


class NoHistory:
    """A box that keeps no data log: a valid request is rejected naming `history`, a bad one
    with its own problems first, like every request."""

    async def answer(self, payload: bytes) -> HistoryResult:
        request_id: str | None = None
        try:
            document = decode_request(payload)
            request_id = read_request_id(document)  # a rejected answer still carries the id
            parse_history_document(document, request_id)
        except RejectedError as rejected:
            return HistoryResult(request_id, rejected.errors)
        return HistoryResult(request_id, (("history", NO_LOG_REASON),))

    def close(self) -> None:
        pass
