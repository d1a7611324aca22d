"""`sbms-agent --simulate` talking to a real mosquitto, seen by an ordinary MQTT client.

The agent runs as the user would start it (a subprocess of the console entry point); the
client checks the documented payload shapes against docs/schemas and drives config/set and
commands through the real RemoteControl.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem
from tests.helpers.mqtt import PahoWatcher
from tests.helpers.mqtt_broker import MosquittoBroker

SCHEMAS = Path(__file__).parents[2] / "docs" / "schemas"
AGENT_ID = "e2e-box"
ROOT = f"sbms/{AGENT_ID}"

pytestmark = pytest.mark.usefixtures("allow_sockets")


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def _watcher(port: int) -> PahoWatcher:
    """A paho client that records every message under the agent's topics."""
    return PahoWatcher(port, [f"{ROOT}/#"], client_id="e2e-watcher")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


def _start_agent(broker: MosquittoBroker, state: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "--simulate",
            "--speed",
            "20",
            "--quiet",
            "--agent-id",
            AGENT_ID,
            "--mqtt-host",
            broker.host,
            "--mqtt-port",
            str(broker.port),
            "--state",
            str(state),
            "--log-level",
            "WARNING",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _stop(agent: subprocess.Popen[bytes]) -> str:
    agent.send_signal(signal.SIGTERM)
    _out, err = agent.communicate(timeout=20)
    return err.decode()


def test_the_simulated_agent_publishes_the_documented_topics_and_obeys_requests(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    watcher = _watcher(broker.port)
    agent = _start_agent(broker, tmp_path / "state.db")
    try:
        assert watcher.next(f"{ROOT}/status").payload == b"online"
        announce = watcher.next(f"{ROOT}/announce").json()
        jsonschema.validate(announce, _schema("announce"))
        assert announce["source"] == "simulator"
        assert "force_off" in announce["capabilities"]["commands"]
        config = watcher.next(f"{ROOT}/config").json()
        jsonschema.validate(config, _schema("config"))
        state = watcher.next(f"{ROOT}/state").json()
        jsonschema.validate(state, _schema("state"))
        assert len(state["cells"]) == 8
        assert state["outputs"]["extio3"] is True

        # A good change is applied, announced in config, and numbered.
        watcher.publish(
            f"{ROOT}/config/set",
            {"request_id": "r1", "config": {"soc_alarms": {"low": 30, "low_release": 35}}},
        )
        result = watcher.next(f"{ROOT}/config/result", request_id="r1").json()
        jsonschema.validate(result, _schema("result"))
        assert result["status"] == "accepted", result
        revision = result["config_revision"]
        new_config = watcher.next(f"{ROOT}/config", config_revision=revision).json()
        assert new_config["soc_alarms"]["low"] == 30

        # A bad one names the field and changes nothing.
        watcher.publish(
            f"{ROOT}/config/set",
            {"request_id": "r2", "config": {"thresholds": {"hvd": 3.9}}},
        )
        result = watcher.next(f"{ROOT}/config/result", request_id="r2").json()
        assert result["status"] == "rejected"
        assert any(e["field"].startswith("config.thresholds") for e in result["errors"])

        # Commands: a charge output forced off shows as off; the fault output cannot be.
        watcher.publish(
            f"{ROOT}/cmd/force_off", {"request_id": "c1", "output": "extio4", "seconds": 600}
        )
        result = watcher.next(f"{ROOT}/cmd/force_off/result", request_id="c1").json()
        assert result["status"] == "accepted", result
        forced = watcher.next(f"{ROOT}/state").json()
        deadline = time.monotonic() + 20
        while forced["outputs"]["extio4"] and time.monotonic() < deadline:
            forced = watcher.next(f"{ROOT}/state").json()
        assert forced["outputs"]["extio4"] is False
        assert "forced_off" in forced["interlocks"]
        # One clock: the hold ends 600 s after the request on the simulated box's clock (June
        # 2026), not on the wall clock, which is months away from it.
        assert forced["forced_off"]["extio4"] == pytest.approx(forced["timestamp"] + 600, abs=60)
        # ...and zero_current's freshness check reads the same clock: it never finds the
        # measurement "old" (the current itself may still be too large at 07:00).
        watcher.publish(f"{ROOT}/cmd/zero_current", {"request_id": "z1"})
        result = watcher.next(f"{ROOT}/cmd/zero_current/result", request_id="z1").json()
        reasons = [error["reason"] for error in result["errors"]]
        assert not any("no good measurement" in reason for reason in reasons), reasons
        watcher.publish(
            f"{ROOT}/cmd/force_off", {"request_id": "c2", "output": "extio6", "seconds": 600}
        )
        result = watcher.next(f"{ROOT}/cmd/force_off/result", request_id="c2").json()
        assert result["status"] == "rejected"
        assert result["errors"][0]["field"] == "output"
        watcher.publish(f"{ROOT}/cmd/self_destruct", {"request_id": "c3"})
        result = watcher.next(f"{ROOT}/cmd/self_destruct/result", request_id="c3").json()
        assert result["status"] == "rejected"
    finally:
        errors = _stop(agent)
    assert agent.returncode == 0, errors
    assert watcher.next(f"{ROOT}/status").payload == b"offline"
    watcher.close()

    # The accepted change survives a restart of the agent.
    watcher = _watcher(broker.port)
    agent = _start_agent(broker, tmp_path / "state.db")
    try:
        config = watcher.next(f"{ROOT}/config", config_revision=revision).json()
        assert config["soc_alarms"]["low"] == 30
    finally:
        _stop(agent)
        watcher.close()


async def test_the_configured_publish_policy_is_in_force_from_the_first_connection(
    broker: MosquittoBroker,
) -> None:
    every_change = PublishSettings.every_sample()
    system = SimulatedSystem(BoxSpec.for_cells(4))
    config = dataclasses.replace(system.config, agent_id=AGENT_ID, publish=every_change)
    remote = RemoteControl(system.agent, config, None, system.box.now)
    settings = MqttSettings(host=broker.host, port=broker.port, agent_id=AGENT_ID)
    link = build_link(settings, remote, Identity("simulator", "test"))
    stop = asyncio.Event()
    task = asyncio.ensure_future(link.run(stop))
    watcher = _watcher(broker.port)
    try:
        for _ in range(100):
            if link.serving:  # subscribed: requests sent now are not lost
                break
            await asyncio.sleep(0.05)
        for _ in range(5):
            system.box.advance(1.0)
            link.offer_report(system.agent.step(system.box.now))
            await asyncio.sleep(0.1)
        # The default policy (30 s, deadbands) would have sent one state in half a second.
        # Waited for, not counted after the sleeps: on a busy machine they arrive later.
        await asyncio.to_thread(watcher.wait_count, f"{ROOT}/state", 5)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        watcher.close()
