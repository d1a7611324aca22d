"""The agent client on its own: requests matched to their answers by request id, without Home
Assistant or a broker (the coordinator tests cover it through both); and the id mapping of the
migration, pure as well."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest

from custom_components.sbms.agent_client import (
    AgentClient,
    RequestRejectedError,
    RequestTimeoutError,
)
from custom_components.sbms.identity import migrate_unique_id
from custom_components.sbms.models import ProtocolError


class Wire:
    """Records what the client publishes; `sent` is set once a request went out."""

    def __init__(self) -> None:
        self.published: list[tuple[str, dict[str, Any]]] = []
        self.sent = asyncio.Event()

    async def publish(self, topic: str, payload: str) -> None:
        self.published.append((topic, json.loads(payload)))
        self.sent.set()

    async def request_id(self) -> str:
        await self.sent.wait()
        return str(self.published[-1][1]["request_id"])


def _result(request_id: str | None, *, status: str = "accepted", **extra: Any) -> str:
    errors = [] if status == "accepted" else [{"field": "config.thresholds.hvd", "reason": "no"}]
    return json.dumps(
        {
            "request_id": request_id,
            "command": "config/set",
            "status": status,
            "errors": errors,
            "timestamp": 1.0,
            **extra,
        }
    )


async def test_an_accepted_request_returns_the_agents_result() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=3600)
    request = asyncio.ensure_future(client.set_config({"thresholds": {"hvd": 3.55}}))
    request_id = await wire.request_id()
    client.handle_result(_result("someone-else"))  # another client's answer: not ours
    assert not request.done()
    client.handle_result(_result(request_id, config_revision=7))
    result = await request
    assert result.accepted
    assert result.config_revision == 7
    topic, body = wire.published[0]
    assert topic == "sbms/shed/config/set"
    assert body["config"] == {"thresholds": {"hvd": 3.55}}
    assert client.waiting == 0


async def test_a_rejection_raises_with_the_agents_reasons() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=3600)
    request = asyncio.ensure_future(client.command("mark_full", {}))
    client.handle_result(_result(await wire.request_id(), status="rejected"))
    with pytest.raises(RequestRejectedError) as caught:
        await request
    assert caught.value.result.describe() == "config.thresholds.hvd: no"
    assert wire.published[0][0] == "sbms/shed/cmd/mark_full"


async def test_no_answer_times_out_and_leaves_nothing_waiting() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=0.01)
    with pytest.raises(RequestTimeoutError):
        await client.set_config({"publish": {"interval_s": 10}})
    assert client.waiting == 0


async def test_a_malformed_history_answer_fails_its_request_at_once() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=3600)
    request = asyncio.ensure_future(client.history(0.0, 3600.0, 120))
    request_id = await wire.request_id()
    bad = _result(request_id, interval_s=120, records=[{"start": 0}], next_from=None)
    with pytest.raises(ProtocolError):
        client.handle_history_result(bad)
    with pytest.raises(ProtocolError, match=r"history\.records\[0\]"):
        await request
    assert client.waiting == 0


async def test_unloading_cancels_what_waits() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=3600)
    request = asyncio.ensure_future(client.set_config({}))
    await wire.request_id()
    client.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert client.waiting == 0


async def test_an_unreadable_history_answer_settles_nothing() -> None:
    wire = Wire()
    client = AgentClient("sbms/shed", wire.publish, timeout_s=3600)
    request = asyncio.ensure_future(client.history(0.0, 3600.0, 120))
    await wire.request_id()
    for payload in ("not json", "[1]", json.dumps({"request_id": 5})):
        with pytest.raises(ProtocolError):
            client.handle_history_result(payload)
    assert not request.done()
    client.cancel_all()
    with pytest.raises(asyncio.CancelledError):
        await request


def test_only_the_agents_own_version_1_ids_are_migrated() -> None:
    assert migrate_unique_id("shed_soc", "shed", "rpi-1") == "rpi-1_soc"
    assert migrate_unique_id("shed_cell_voltage_3", "shed", "rpi-1") == "rpi-1_cell_voltage_3"
    assert migrate_unique_id("shed2_soc", "shed", "rpi-1") is None
    assert migrate_unique_id("garage_soc", "shed", "rpi-1") is None
