"""Property: no request, of any shape, size, topic or flag, changes the answer to the next
valid request, and what the agent logs about clients stays within its budget.

The link's request handling (MqttLink._handle) is driven directly with aiomqtt messages and a
client that records what is published: the same code path as on a broker, without one, so
hypothesis can try hundreds of messages. The remote side is the real RemoteControl on a
simulated box."""

from __future__ import annotations

import asyncio
import json
import logging
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.link import MqttSettings
from edge_agent.mqtt.client import MqttLink
from edge_agent.mqtt.limits import LogBudget
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem

AGENT_ID = "prop"
ROOT = f"sbms/{AGENT_ID}"


@dataclass
class RecordingClient:
    published: list[tuple[str, bytes, bool]] = field(default_factory=list)

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        self.published.append((topic, payload, bool(kwargs.get("retain"))))


def _message(topic: str, payload: bytes, *, retain: bool, response: str | None) -> Any:
    properties = None
    if response is not None:
        properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
        properties.ResponseTopic = response
    return aiomqtt.Message(topic, payload, 1, retain, 1, properties)


def _rig() -> tuple[MqttLink, RecordingClient]:
    system = SimulatedSystem(BoxSpec.for_cells(4))
    system.run(3.0)
    config = system.config
    remote = RemoteControl(system.agent, config, None, system.box.now)
    mqtt = MqttSettings(host="127.0.0.1", port=1, agent_id=config.agent_id, base_topic="sbms")
    link = build_link(mqtt, remote, Identity("simulator", "p"), clock=_BoxClock(system))
    return link, RecordingClient()


@dataclass
class _BoxClock:
    system: SimulatedSystem

    def now(self) -> float:
        return self.system.box.now


VALID = json.dumps({"request_id": "valid", "config": {"thresholds": {"hvd": 3.56}}}).encode()

topics = st.sampled_from(
    ["config/set", "cmd/set_soc", "cmd/force_off", "cmd/nonsense", "history/get", "state"]
)
payloads = st.one_of(
    st.binary(max_size=300),
    st.recursive(
        st.none() | st.booleans() | st.floats() | st.integers() | st.text(max_size=20),
        lambda children: (
            st.lists(children, max_size=4)
            | st.dictionaries(st.text(max_size=12), children, max_size=4)
        ),
        max_leaves=20,
    ).map(lambda value: json.dumps(value).encode()),
    st.sampled_from(
        [
            b'{"config": {"soc": {}}}',
            b'{"config": {"thresholds": {"hvd: 3.5": 1}}}',
            b'{"from": 0, "to": 10, "limit": NaN}',
            b'{"config": {"thresholds": {"hvd": 9}}}',
            b"x" * 20000,
            # lone surrogates: valid JSON escapes with no UTF-8 form (they once ended the
            # session when an answer echoed them)
            b'{"config": {"outputs": {"\\ud800": {"type": 1}}}, "request_id": "\\udfff"}',
            b'{"output": "\\ud800", "seconds": 5}',
        ]
    ),
)
responses = st.one_of(st.none(), st.sampled_from([f"{ROOT}/state", f"{ROOT}/reply/a", "x/+"]))


@settings(
    max_examples=60,
    deadline=None,
    # caplog is cleared at the start of every example
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
@given(
    junk=st.lists(st.tuples(topics, payloads, st.booleans(), responses), min_size=1, max_size=12)
)
def test_junk_never_changes_the_answer_to_the_next_valid_request(
    junk: list[tuple[str, bytes, bool, str | None]], caplog: pytest.LogCaptureFixture
) -> None:
    link, client = _rig()
    root = link.topics.root
    expected_revision = link._remote.revision + 1 if link._remote else 1
    caplog.clear()
    with caplog.at_level(logging.DEBUG, logger="edge_agent"):

        async def drive() -> None:
            for suffix, payload, retain, response in junk:
                topic = f"{root}/{suffix}"
                reply = response.replace(ROOT, root) if response else None
                await link._handle(client, _message(topic, payload, retain=retain, response=reply))
            client.published.clear()
            await link._handle(
                client, _message(f"{root}/config/set", VALID, retain=False, response=None)
            )

        asyncio.run(drive())
    results = [json.loads(p) for t, p, _ in client.published if t == f"{root}/config/result"]
    assert len(results) == 1
    result = results[0]
    assert result["request_id"] == "valid"
    assert result["errors"] == []
    # A junk request that happened to be a valid change moved the revision on by one at most
    # per accepted change; the valid one is a change unless hvd was already 3.56.
    assert result["config_revision"] >= expected_revision - 1
    assert link._remote is not None
    assert link._remote.config.control.cells.hvd == pytest.approx(3.56)
    assert not any(topic == f"{root}/state" for topic, _, _ in client.published)
    per_kind = LogBudget().per_minute
    client_lines = [r for r in caplog.records if r.name.startswith("edge_agent.mqtt")]
    assert len(client_lines) <= per_kind * 4 + 4, [r.getMessage() for r in client_lines]


def test_the_rig_answers_a_valid_request() -> None:
    """The property's own control: the valid request alone is accepted and applied."""
    link, client = _rig()
    root = link.topics.root
    asyncio.run(
        link._handle(client, _message(f"{root}/config/set", VALID, retain=False, response=None))
    )
    (topic, payload, _), *_ = client.published
    assert topic == f"{root}/config/result"
    assert json.loads(payload)["status"] == "accepted"
