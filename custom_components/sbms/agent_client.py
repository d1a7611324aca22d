"""Requests to one agent over MQTT and their answers (docs/protocol.md), without Home Assistant.

`config/set`, `cmd/<name>` and `history/get` each carry a request id; the agent answers on
`config/result`, `cmd/<name>/result` and `history/result` with the same id. `AgentClient`
publishes through the function it is given and matches the answers the coordinator hands it
(`handle_result`, `handle_history_result`), so the coordinator only subscribes and holds data,
and this module is tested and read without Home Assistant. Nothing is shown as applied until
the agent says so: a request returns the agent's acceptance or raises.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from .models import HistoryAnswer, Payload, ProtocolError, RequestResult

# Publishes `payload` on `topic`, never retained: a retained request would be replayed at
# every reconnect of the agent.
Publish = Callable[[str, str], Awaitable[None]]


class AgentClientError(Exception):
    """The base of what a request can end in, other than the agent's acceptance."""


class RequestTimeoutError(AgentClientError):
    """No answer within the client's timeout."""


class RequestRejectedError(AgentClientError):
    """The agent answered and rejected the request; `result` holds its reasons."""

    def __init__(self, result: RequestResult) -> None:
        super().__init__(result.describe())
        self.result = result


class AgentClient:
    """Sends one agent's requests under `<prefix>/` and waits for the matching answers."""

    def __init__(self, prefix: str, publish: Publish, *, timeout_s: float) -> None:
        self.prefix = prefix
        self._publish = publish
        self.timeout_s = timeout_s
        # Requests waiting for their answer, by request id: a RequestResult, or a
        # HistoryAnswer for history/get.
        self._pending: dict[str, asyncio.Future[Any]] = {}

    def topic(self, suffix: str) -> str:
        return f"{self.prefix}/{suffix}"

    @property
    def waiting(self) -> int:
        """How many requests wait for their answer (0 once each has ended)."""
        return len(self._pending)

    async def set_config(self, changes: Mapping[str, Any]) -> RequestResult:
        """Send a partial configuration; raises unless the agent accepts all of it."""
        return await self._request("config/set", {"config": dict(changes)})

    async def command(self, name: str, arguments: Mapping[str, Any]) -> RequestResult:
        """Send `cmd/<name>`; raises unless the agent accepts it."""
        return await self._request(f"cmd/{name}", arguments)

    async def history(self, start: float, end: float, limit: int) -> HistoryAnswer:
        """One page of the agent's data log (`history/get`); raises unless it is answered."""
        answer: HistoryAnswer = await self._exchange(
            "history/get", {"from": start, "to": end, "limit": limit}
        )
        if not answer.result.accepted:
            raise RequestRejectedError(answer.result)
        return answer

    def handle_result(self, payload: Payload) -> None:
        """An answer on `config/result` or `cmd/<name>/result`; raises ProtocolError if bad."""
        result = RequestResult.from_payload(payload)
        self._settle(result.request_id, result=result)

    def handle_history_result(self, payload: Payload) -> None:
        """An answer on `history/result`. A bad one fails its request at once with the reason,
        rather than letting it time out, and raises ProtocolError for the caller to log."""
        try:
            answer = HistoryAnswer.from_payload(payload)
        except ProtocolError as err:
            self._settle(_request_id_of(payload), error=err)
            raise
        self._settle(answer.result.request_id, result=answer)

    def cancel_all(self) -> None:
        """Fail every request still waiting (the entry is unloading)."""
        for future in self._pending.values():
            if not future.done():
                future.cancel()

    async def _request(self, suffix: str, body: Mapping[str, Any]) -> RequestResult:
        result: RequestResult = await self._exchange(suffix, body)
        if not result.accepted:
            raise RequestRejectedError(result)
        return result

    async def _exchange(self, suffix: str, body: Mapping[str, Any]) -> Any:
        """Publish one request and wait for the answer carrying its request id."""
        request_id = f"ha-{uuid.uuid4().hex[:16]}"
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._pending[request_id] = future
        try:
            await self._publish(
                self.topic(suffix),
                json.dumps({**body, "request_id": request_id}, separators=(",", ":")),
            )
            async with asyncio.timeout(self.timeout_s):
                return await future
        except TimeoutError as err:
            raise RequestTimeoutError(f"no answer to {suffix} in {self.timeout_s:g} s") from err
        finally:
            self._pending.pop(request_id, None)

    def _settle(
        self, request_id: str | None, *, result: Any = None, error: Exception | None = None
    ) -> None:
        future = self._pending.get(request_id or "")
        if future is None or future.done():
            return  # another client's request, or one that already ended
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(result)


def _request_id_of(payload: Payload) -> str | None:
    """The request id of an answer that did not parse, if it can be read at all."""
    try:
        request_id = json.loads(payload).get("request_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return request_id if isinstance(request_id, str) else None
