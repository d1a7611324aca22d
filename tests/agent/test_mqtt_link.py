"""The MQTT link against a real mosquitto started by the tests (tests/helpers/mqtt_broker.py)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import itertools
import json
import logging
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config import AgentConfig
from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.control.model import ControlEvent, ControlReport, EnergyCounters, EventKind
from edge_agent.mqtt.client import Backoff, MqttLink, _cancel_all, describe_error
from edge_agent.mqtt.payloads import announce_payload, config_payload
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.mqtt.topics import Topics
from edge_agent.runtime.loop import run_agent
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from tests.helpers.mqtt import AsyncWatcher as Watcher
from tests.helpers.mqtt_broker import (
    BrokerCertificates,
    MosquittoBroker,
    free_port,
    generate_certificates,
)
from tests.helpers.scheduling import runqueue_wait_s

AGENT_ID = "box1"
_REPO_ROOT = str(Path(__file__).resolve().parents[2])
COMMANDS = ("set_soc", "mark_full", "zero_current", "force_off", "cancel_force_off", "clear_fault")
ROOT = f"sbms/{AGENT_ID}"


pytestmark = pytest.mark.usefixtures("allow_sockets")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


@dataclasses.dataclass
class FakeResult:
    command: str
    request_id: str | None
    errors: tuple[tuple[str, str], ...] = ()
    config_revision: int | None = None
    changed: bool | None = None

    @property
    def accepted(self) -> bool:
        return not self.errors


class FakeRemote:
    """Stands in for RemoteControl: records requests, accepts config and set_soc."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, bytes]] = []
        self.revision = 1

    def handle_config_set(self, payload: bytes, now: float) -> FakeResult:
        self.requests.append(("config/set", payload))
        data = json.loads(payload)
        if "bad" in data.get("config", {}):
            return FakeResult("config/set", data.get("request_id"), (("config.bad", "unknown"),))
        self.revision += 1
        return FakeResult("config/set", data.get("request_id"), (), self.revision, True)

    async def handle_config_set_async(
        self, payload: bytes, clock: Callable[[], float]
    ) -> FakeResult:
        return self.handle_config_set(payload, clock())

    def handle_command(self, name: str, payload: bytes, now: float) -> FakeResult:
        self.requests.append((name, payload))
        request_id = json.loads(payload).get("request_id")
        if name not in COMMANDS:
            return FakeResult(name, request_id, (("command", "unknown command"),))
        return FakeResult(name, request_id)


def _config() -> AgentConfig:
    spec = BoxSpec.for_cells(4)
    return dataclasses.replace(simulated_config(spec), agent_id=AGENT_ID)


def _settings(broker: MosquittoBroker, **overrides: Any) -> MqttSettings:
    values: dict[str, Any] = {
        "host": broker.host,
        "port": broker.port,
        "agent_id": AGENT_ID,
        "backoff_initial_s": 0.1,
        "backoff_max_s": 0.5,
        "keepalive_s": 5,
        "operation_timeout_s": 3.0,
    }
    values.update(overrides)
    return MqttSettings(**values)


def _link(
    settings: MqttSettings,
    remote: FakeRemote | None = None,
    config: AgentConfig | None = None,
    policy: PublishPolicy | None = None,
) -> MqttLink:
    config = config or _config()
    topics = Topics(settings.base_topic, AGENT_ID)
    revision = remote.revision if remote else 1

    def config_factory() -> dict[str, Any]:
        return config_payload(config, remote.revision if remote else revision)

    return MqttLink(
        settings,
        topics,
        lambda: announce_payload(config, "simulator", "sim-1", COMMANDS, topics=topics),
        config_factory,
        remote,  # type: ignore[arg-type]
        policy=policy,
    )


async def _until(predicate: Callable[[], bool], within_s: float = 20.0) -> bool:
    """Poll a plain flag until it holds (returns at once when it does: no margin to tune)."""
    deadline = time.monotonic() + within_s
    while not predicate() and time.monotonic() < deadline:  # noqa: ASYNC110 (a plain flag)
        await asyncio.sleep(0.05)
    return predicate()


async def _connects(link: MqttLink, within_s: float = 10.0) -> bool:
    return await _until(lambda: link.connected, within_s)


def _logged(caplog: pytest.LogCaptureFixture, text: str) -> Callable[[], bool]:
    return lambda: any(text in r.getMessage() for r in caplog.records)


def _report(timestamp: float, *events: ControlEvent, soc: float = 50.0) -> ControlReport:
    return ControlReport(
        timestamp=timestamp,
        outputs={"extio3": True},
        soc=soc,
        remaining_ah=50.0,
        capacity_ah=100.0,
        time_to_full_s=None,
        time_to_empty_s=None,
        charge_allowed=True,
        load_allowed=True,
        faults=frozenset(),
        interlocks=frozenset(),
        dual_pv_level=None,
        counters=EnergyCounters(),
        events=events,
        measurement=None,
    )


@dataclasses.dataclass
class Running:
    link: MqttLink
    stop: asyncio.Event
    task: asyncio.Task[None]


@pytest.fixture
async def start_link() -> AsyncIterator[Callable[[MqttLink], Running]]:
    runs: list[Running] = []

    def start(link: MqttLink) -> Running:
        stop = asyncio.Event()
        running = Running(link, stop, asyncio.ensure_future(link.run(stop)))
        runs.append(running)
        return running

    yield start
    for running in runs:
        running.stop.set()
    for running in runs:
        await asyncio.wait_for(running.task, 10)


@pytest.fixture
async def start_watcher() -> AsyncIterator[Callable[..., Any]]:
    async with contextlib.AsyncExitStack() as stack:

        async def start(broker: MosquittoBroker, **client_args: Any) -> Watcher:
            watcher = Watcher(
                broker,
                ["sbms/#", "reply/#"],
                root=ROOT,
                protocol=aiomqtt.ProtocolVersion.V5,
                **client_args,
            )
            return await stack.enter_async_context(watcher.running())

        yield start


# ---------------------------------------------------------------------------------------------
# Pure parts
# ---------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_with_jitter() -> None:
    low = Backoff(1.0, 60.0, rng=lambda: 0.0)
    assert [low.next_delay() for _ in range(8)] == [0.5, 1, 2, 4, 8, 16, 30, 30]
    high = Backoff(1.0, 60.0, rng=lambda: 1.0)
    assert [high.next_delay() for _ in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    high.reset()
    assert high.next_delay() == 1


def test_settings_defaults_and_rules() -> None:
    settings = MqttSettings(host="broker", agent_id="garage")
    assert settings.port == 1883
    assert settings.protocol == 5
    assert settings.effective_client_id == "sbms-agent-garage"
    assert not settings.tls_insecure
    assert "secret" not in repr(MqttSettings(host="h", username="u", password="secret"))
    with pytest.raises(ValueError, match="password: needs a username"):
        MqttSettings(host="h", password="p")
    with pytest.raises(ValueError, match="tls"):
        MqttSettings(host="h", tls_insecure=True)
    with pytest.raises(ValueError, match="base_topic"):
        MqttSettings(host="h", base_topic="a/#")


def test_offer_report_keeps_the_newest_events_and_counts_the_dropped() -> None:
    settings = MqttSettings(host="127.0.0.1", event_queue_size=3)

    async def build() -> MqttLink:
        return MqttLink(settings, Topics("sbms", "x"), dict, dict, None)

    link = asyncio.run(build())
    events = [ControlEvent(EventKind.SOC_SYNC, float(i)) for i in range(5)]
    link.offer_report(_report(1.0, *events))
    assert link.queued_events == 3
    assert link.dropped_events == 2
    link.offer_report(None)  # type: ignore[arg-type]  # a bug upstream must not raise here


def test_errors_are_described_for_an_installer() -> None:
    auth = aiomqtt.MqttCodeError(5, "Connection refused")
    assert describe_error(auth).startswith("not authorised: check username/password")
    refused = aiomqtt.MqttError("[Errno 111] Connection refused")
    assert "refuses connections" in describe_error(refused)


# ---------------------------------------------------------------------------------------------
# Against mosquitto
# ---------------------------------------------------------------------------------------------


async def test_retained_status_announce_config_then_state_and_offline_at_stop(
    broker: MosquittoBroker, start_link: Callable[[MqttLink], Running], start_watcher: Any
) -> None:
    running = start_link(_link(_settings(broker)))
    early = await start_watcher(broker)
    running.link.offer_report(_report(1000.0, soc=50.0))
    await early.wait_for(lambda w: w.on("state"), what="the first state")
    # A client that arrives later still learns everything from the retained topics, the
    # latest state included (it need not wait for the next one).
    watcher = await start_watcher(broker)
    await watcher.wait_for(
        lambda w: w.on("status") and w.on("announce") and w.on("config") and w.on("state"),
        what="retained",
    )
    assert [m.payload for m in watcher.on("status")] == [b"online"]
    retained = watcher.on("status") + watcher.on("announce") + watcher.on("config")
    assert all(m.retain for m in [*retained, *watcher.on("state")])
    assert watcher.on("state")[0].json()["soc"] == pytest.approx(50.0)
    announce = watcher.on("announce")[0].json()
    assert announce["protocol_version"] == 1
    assert announce["agent_id"] == AGENT_ID
    assert announce["capabilities"]["commands"] == list(COMMANDS)
    assert watcher.on("config")[0].json()["config_revision"] == 1

    running.link.offer_report(_report(1010.0, soc=60.0))  # significant: published at once
    await watcher.wait_for(
        lambda w: w.on("state")[-1].json()["soc"] == pytest.approx(60.0), what="new state"
    )
    state = watcher.on("state")[-1].json()
    assert state["link_stats"] == {
        "requests_received": 0,
        "requests_dropped": 0,
        "dropped_by_kind": {},
    }
    assert running.link.connected

    running.stop.set()
    await asyncio.wait_for(running.task, 10)
    await watcher.wait_for(lambda w: w.on("status")[-1].payload == b"offline", what="offline")


async def test_requests_are_answered_with_correlation(
    broker: MosquittoBroker, start_link: Callable[[MqttLink], Running], start_watcher: Any
) -> None:
    remote = FakeRemote()
    start_link(_link(_settings(broker), remote))
    watcher = await start_watcher(broker)
    await watcher.wait_for(lambda w: w.on("config"), what="config")

    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ResponseTopic = f"sbms/{AGENT_ID}/reply/ha"
    properties.CorrelationData = b"\x01corr"
    await watcher.publish(
        f"{ROOT}/cmd/set_soc",
        b'{"request_id": "r-1", "soc": 40}',
        properties=properties,
    )
    await watcher.wait_for(lambda w: w.on("cmd/set_soc/result") and w.on("reply/ha"), what="res")
    result = watcher.on("cmd/set_soc/result")[0].json()
    assert result["request_id"] == "r-1"
    assert result["status"] == "accepted"
    assert result["command"] == "set_soc"
    response = watcher.on("reply/ha")[0]
    assert response.json() == result
    assert response.properties.CorrelationData == b"\x01corr"

    await watcher.publish(f"{ROOT}/cmd/explode", b'{"request_id": "r-2"}')
    await watcher.wait_for(lambda w: w.on("cmd/explode/result"), what="unknown command")
    rejected = watcher.on("cmd/explode/result")[0].json()
    assert rejected["status"] == "rejected"
    assert rejected["errors"] == [{"field": "command", "reason": "unknown command"}]

    await watcher.publish(f"{ROOT}/config/set", b'{"request_id": "c-1", "config": {"bad": 1}}')
    await watcher.wait_for(lambda w: w.on("config/result"), what="config rejected")
    assert watcher.on("config/result")[0].json()["status"] == "rejected"
    assert len(watcher.on("config")) == 1  # nothing changed: no new config

    await watcher.publish(f"{ROOT}/config/set", b'{"request_id": "c-2", "config": {}}')
    await watcher.wait_for(lambda w: len(w.on("config/result")) == 2, what="config accepted")
    accepted = watcher.on("config/result")[1].json()
    assert accepted["status"] == "accepted"
    assert accepted["config_revision"] == 2
    await watcher.wait_for(lambda w: len(w.on("config")) == 2, what="new config")
    assert watcher.on("config")[-1].json()["config_revision"] == 2


@pytest.mark.parametrize(
    "response_topic",
    ["state", "status", "announce", "config", "event", "../other/reply/x"],
)
async def test_a_response_topic_outside_the_reply_tree_is_refused_and_not_run(
    broker: MosquittoBroker,
    start_link: Callable[[MqttLink], Running],
    start_watcher: Any,
    response_topic: str,
) -> None:
    """A requester could make the agent publish as the agent, where the ACL forbids the
    requester to: the request is refused on its own result topic and not executed."""
    remote = FakeRemote()
    running = start_link(_link(_settings(broker), remote))
    watcher = await start_watcher(broker)
    await watcher.wait_for(lambda w: w.on("config"), what="config")
    target = f"{ROOT}/{response_topic}" if not response_topic.startswith("..") else "other/x"
    before = len([m for m in watcher.messages if m.topic == target])
    properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
    properties.ResponseTopic = target
    await watcher.publish(
        f"{ROOT}/cmd/set_soc", b'{"request_id": "x", "soc": 40}', properties=properties
    )
    await watcher.wait_for(lambda w: w.on("cmd/set_soc/result"), what="refusal")
    refusal = watcher.on("cmd/set_soc/result")[0].json()
    assert refusal["status"] == "rejected"
    assert refusal["errors"][0]["field"] == "response_topic"
    assert f"must be below {ROOT}/reply/" in refusal["errors"][0]["reason"]
    assert remote.requests == []  # never executed
    # A fresh request after it is answered: the link went on (and published nothing there).
    await watcher.publish(f"{ROOT}/cmd/mark_full", b'{"request_id": "next"}')
    await watcher.wait_for(lambda w: w.on("cmd/mark_full/result"), what="next result")
    assert len([m for m in watcher.messages if m.topic == target]) == before
    assert running.link.link_stats.requests_received == 2


async def test_a_retained_request_is_refused_once_per_connection_never_run(
    broker: MosquittoBroker, start_link: Callable[[MqttLink], Running], start_watcher: Any
) -> None:
    watcher = await start_watcher(broker)
    # Left retained by a careless client: replaying it at every reconnect would be wrong.
    await watcher.publish(f"{ROOT}/cmd/set_soc", b'{"soc": 10}', retain=True)
    remote = FakeRemote()
    start_link(_link(_settings(broker), remote))
    await watcher.wait_for(lambda w: w.on("cmd/set_soc/result"), what="the refusal")
    refusal = watcher.on("cmd/set_soc/result")[0].json()
    assert refusal["status"] == "rejected"
    assert refusal["errors"][0]["field"] == "payload"
    assert "retained request is never executed" in refusal["errors"][0]["reason"]
    await watcher.publish(f"{ROOT}/cmd/mark_full", b'{"request_id": "fresh"}')
    await watcher.wait_for(lambda w: w.on("cmd/mark_full/result"), what="result")
    assert [name for name, _ in remote.requests] == ["mark_full"]
    assert len(watcher.on("cmd/set_soc/result")) == 1
    await watcher.publish(f"{ROOT}/cmd/set_soc", b"", retain=True)  # clear it: no answer
    await watcher.publish(f"{ROOT}/cmd/mark_full", b'{"request_id": "after"}')
    await watcher.wait_for(lambda w: len(w.on("cmd/mark_full/result")) == 2, what="result 2")
    assert len(watcher.on("cmd/set_soc/result")) == 1


async def test_mqtt_311_works_too(
    broker: MosquittoBroker, start_link: Callable[[MqttLink], Running], start_watcher: Any
) -> None:
    remote = FakeRemote()
    start_link(_link(_settings(broker, protocol=4), remote))
    watcher = await start_watcher(broker)
    await watcher.wait_for(lambda w: w.on("config"), what="config")
    await watcher.publish(f"{ROOT}/cmd/mark_full", b'{"request_id": "m"}')
    await watcher.wait_for(lambda w: w.on("cmd/mark_full/result"), what="result")


async def test_a_stop_during_connect_ends_the_run(
    broker: MosquittoBroker, start_watcher: Any
) -> None:
    """Stop arriving while the retained messages go out: the session then starts serving with
    its publish loop woken and the stop already set. On Python 3.11 asyncio.wait_for swallowed
    that cancel every time (CPython gh-86296) and the run never returned."""
    watcher = await start_watcher(broker)
    stop = asyncio.Event()
    config = _config()
    topics = Topics("sbms", AGENT_ID)

    def announce_then_stop() -> dict[str, Any]:
        stop.set()  # called at connect, before the link serves
        return announce_payload(config, "simulator", "sim-1", COMMANDS, topics=topics)

    link = MqttLink(_settings(broker), topics, announce_then_stop, dict, None)
    run = asyncio.ensure_future(link.run(stop))
    done, _ = await asyncio.wait({run}, timeout=10)
    if not done:
        run.cancel()
    assert run in done, "run() did not return after stop"
    run.result()
    assert link.connections == 1
    await watcher.wait_for(
        lambda w: bool(w.on("status")) and w.on("status")[-1].payload == b"offline",
        what="offline",
    )


async def test_session_tasks_end_even_if_one_swallows_a_cancel() -> None:
    """What Python 3.11's wait_for does in a race (CPython gh-86296), done on purpose here."""
    swallowed = asyncio.Event()

    async def swallows_the_first_cancel() -> None:
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            swallowed.set()
        await asyncio.sleep(60)

    task = asyncio.ensure_future(swallows_the_first_cancel())
    await asyncio.sleep(0)  # let it reach its first await
    await asyncio.wait_for(_cancel_all([task]), 10)
    assert swallowed.is_set()
    assert task.cancelled()


_CHILD = """
import asyncio, sys
sys.path.insert(0, {root!r})
from edge_agent.mqtt.client import MqttLink
from edge_agent.config.link import MqttSettings
from edge_agent.mqtt.topics import Topics

async def main():
    settings = MqttSettings(host="127.0.0.1", port={port}, agent_id={agent!r}, keepalive_s=5)
    link = MqttLink(settings, Topics("sbms", {agent!r}), dict, dict, None)
    stop = asyncio.Event()
    task = asyncio.ensure_future(link.run(stop))
    while not link.connected:
        await asyncio.sleep(0.05)
    print("connected", flush=True)
    await task

asyncio.run(main())
"""


async def test_last_will_when_the_agent_dies(broker: MosquittoBroker, start_watcher: Any) -> None:
    child = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        _CHILD.format(root=_REPO_ROOT, port=broker.port, agent=AGENT_ID),
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        assert child.stdout is not None
        line = await asyncio.wait_for(child.stdout.readline(), 20)
        assert line.strip() == b"connected"
        watcher = await start_watcher(broker)
        await watcher.wait_for(lambda w: w.on("status"), what="online")
        assert watcher.on("status")[-1].payload == b"online"
        child.send_signal(signal.SIGKILL)  # no goodbye: only the broker's will can tell
        await watcher.wait_for(
            lambda w: w.on("status")[-1].payload == b"offline", within_s=15, what="will"
        )
    finally:
        if child.returncode is None:
            child.kill()
        await child.wait()


async def test_broker_restart_keeps_cadence_reconnects_and_delivers_queued_events(
    broker: MosquittoBroker,
    start_link: Callable[[MqttLink], Running],
    start_watcher: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.mqtt")
    spec = BoxSpec.for_cells(4)
    config = dataclasses.replace(simulated_config(spec, sample_interval_s=0.1), agent_id=AGENT_ID)
    system = SimulatedSystem(spec, config)
    # A state every second: the state the link republishes on reconnecting is not retained,
    # and a subscriber to the restarted broker may join after it (1 run in 20 under load).
    policy = PublishPolicy(PublishSettings(interval_s=1.0))
    running = start_link(_link(_settings(broker), config=config, policy=policy))
    link = running.link
    sample_times: list[float] = []
    waits_for_cpu: list[float] = []
    inject: list[ControlEvent] = []

    def on_report(report: ControlReport) -> None:
        sample_times.append(time.monotonic())
        waits_for_cpu.append(runqueue_wait_s())
        if inject:
            report = dataclasses.replace(report, events=(*report.events, *inject))
            inject.clear()
        link.offer_report(report)

    loop_stop = asyncio.Event()
    clock = SimulatedClock(system.box, speed=1.0)
    loop_task = asyncio.ensure_future(
        run_agent(system.agent, clock, 0.1, loop_stop, on_report=on_report)
    )
    try:
        watcher = await start_watcher(broker)
        await watcher.wait_for(lambda w: w.on("state"), what="first state")

        await asyncio.to_thread(broker.kill)  # (in a thread: the test must not stall the loop)
        assert await _until(lambda: not link.connected), "the link did not notice the kill"
        inject.extend(
            ControlEvent(EventKind.LVD_TRIP, system.box.now + i, {"n": i}) for i in range(3)
        )
        assert await _until(lambda: link.queued_events == 3), "the events were not queued"
        # Several failed reconnects while the loop keeps sampling (counted below).
        outage_start = len(sample_times)
        attempts = link.failed_attempts
        assert await _until(lambda: link.failed_attempts >= attempts + 3), "retries stopped"
        assert any("still unavailable" in r.getMessage() for r in caplog.records)
        samples_during_outage = len(sample_times) - outage_start
        assert not link.connected
        assert link.queued_events == 3
        connections = link.connections
        await asyncio.to_thread(broker.start)

        watcher = await start_watcher(broker)  # the old watcher lost its broker too
        await watcher.wait_for(
            lambda w: w.on("status") and w.on("announce") and w.on("config") and w.on("state"),
            within_s=15,
            what="republished",
        )
        assert watcher.on("status")[-1].payload == b"online"
        assert link.connections == connections + 1
        # Proof of delivery is the emptied queue: an event leaves it only on the broker's
        # PUBACK, and none was dropped. A new subscriber can only subscribe once the restarted
        # (non-persistent) broker is up, and the link may reconnect and flush first: what the
        # watcher saw must be the queue's tail, in order.
        await watcher.wait_for(lambda _: link.queued_events == 0, within_s=15, what="flushed")
        assert link.dropped_events == 0
        seen = [m.json()["detail"]["n"] for m in watcher.on("event")]
        assert seen == [0, 1, 2][3 - len(seen) :]
        await asyncio.sleep(0.5)
    finally:
        loop_stop.set()
        await asyncio.wait_for(loop_task, 10)

    # The control loop never waits for the broker: no gap between its samples (0.1 s apart)
    # beyond 0.35 s, not counting what the loaded machine made the loop wait for a CPU.
    gaps = [
        (b - a) - (wait_b - wait_a)
        for (a, wait_a), (b, wait_b) in itertools.pairwise(
            zip(sample_times, waits_for_cpu, strict=True)
        )
    ]
    assert len(sample_times) > 10
    assert max(gaps) < 0.35, f"control loop stalled: {max(gaps):.3f} s"
    assert samples_during_outage >= 3, f"{samples_during_outage} samples during the outage"
    # The agent's own lines: the test's watcher (aiomqtt's "mqtt" logger) logs an ERROR of
    # its own when the killed broker resets its socket instead of closing it.
    unavailable = [
        r for r in caplog.records if r.levelno >= logging.ERROR and r.name.startswith("edge_agent")
    ]
    assert len(unavailable) == 1  # one line per outage, retries at debug
    assert "connection lost" in unavailable[0].getMessage()
    assert any("connected again" in r.getMessage() for r in caplog.records)


async def test_password_auth(
    tmp_path: Path,
    start_link: Callable[[MqttLink], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="edge_agent.mqtt")
    with MosquittoBroker(tmp_path / "b", users={"agent": "s3cret"}) as broker:
        good = start_link(_link(_settings(broker, username="agent", password="s3cret")))
        bad = start_link(
            _link(_settings(broker, username="agent", password="wrong", client_id="bad"))
        )
        assert await _connects(good.link)
        # Refused, then retried at least twice more: still one error line, never connected.
        assert await _until(_logged(caplog, "not authorised")), "no refusal logged"
        assert await _until(
            lambda: sum("still unavailable" in r.getMessage() for r in caplog.records) >= 2
        ), "the link must keep retrying"
        assert bad.link.connections == 0
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert len(errors) == 1, errors
        assert "not authorised: check username/password" in errors[0]
        good.stop.set()
        bad.stop.set()
        await asyncio.wait_for(asyncio.gather(good.task, bad.task), 10)


def _tls_broker(directory: Path, certificates: BrokerCertificates) -> MosquittoBroker:
    return MosquittoBroker(directory, tls=certificates)


async def test_tls_with_the_ca_connects_and_a_foreign_certificate_is_refused(
    tmp_path: Path,
    start_link: Callable[[MqttLink], Running],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="edge_agent.mqtt")
    ours = generate_certificates(tmp_path / "ours", "ours")
    foreign = generate_certificates(tmp_path / "foreign", "foreign")
    with _tls_broker(tmp_path / "b", foreign) as broker:
        trusting = start_link(
            _link(_settings(broker, tls=True, ca_file=ours.ca_file, client_id="checks"))
        )
        assert await _until(_logged(caplog, "TLS certificate check failed")), "no refusal"
        assert await _until(lambda: trusting.link.failed_attempts >= 3), "no retries"
        assert trusting.link.connections == 0
        errors = [r.getMessage() for r in caplog.records]
        assert len(errors) == 1, errors
        assert "TLS certificate check failed" in errors[0]
        # The refused link keeps retrying next to one that connects.
        insecure = start_link(
            _link(_settings(broker, tls=True, tls_insecure=True, client_id="insecure"))
        )
        assert await _connects(insecure.link)
    with _tls_broker(tmp_path / "c", ours) as broker:
        mutual = start_link(
            _link(
                _settings(
                    broker,
                    tls=True,
                    ca_file=ours.ca_file,
                    cert_file=ours.client_cert,
                    key_file=ours.client_key,
                )
            )
        )
        assert await _connects(mutual.link)
        for running in (trusting, insecure, mutual):
            running.stop.set()
        await asyncio.wait_for(asyncio.gather(trusting.task, insecure.task, mutual.task), 10)


async def test_a_link_that_failed_tls_connects_once_the_broker_presents_a_trusted_certificate(
    tmp_path: Path,
    start_link: Callable[[MqttLink], Running],
) -> None:
    """Failed TLS handshakes must leave nothing behind that breaks the next connection."""
    ours = generate_certificates(tmp_path / "ours", "ours")
    foreign = generate_certificates(tmp_path / "foreign", "foreign")
    port = free_port()
    with MosquittoBroker(tmp_path / "b", tls=foreign, port=port) as broker:
        running = start_link(_link(_settings(broker, tls=True, ca_file=ours.ca_file)))
        assert await _until(lambda: running.link.failed_attempts >= 3), "no refused handshakes"
        assert running.link.connections == 0
    with MosquittoBroker(tmp_path / "c", tls=ours, port=port):
        assert await _connects(running.link)
