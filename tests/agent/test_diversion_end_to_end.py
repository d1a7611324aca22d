"""PV diversion end to end (issue 19): the simulated box with a heat path on a sunny day with
a nearly full battery, the real agent, a real mosquitto, and an ordinary MQTT client."""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import HEAT_PRIMARY_OUTPUT, SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec
from edge_agent.simulator.pv import CloudSpec
from tests.helpers.mqtt import PahoWatcher
from tests.helpers.mqtt_broker import MosquittoBroker

AGENT_ID = "heat-box"
STATE = f"sbms/{AGENT_ID}/state"
SCHEMA = Path(__file__).parents[2] / "docs" / "schemas" / "state.schema.json"
BATTERY_PATH = "extio4"
SAMPLE_S = 5.0

pytestmark = pytest.mark.usefixtures("allow_sockets")


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


def _system() -> SimulatedSystem:
    spec = BoxSpec(
        start=BoxSpec().start + 10 * 3600,  # mid-morning in June: the pack fills, then the sun
        clouds=CloudSpec(sunny_probability=1.0, sunny_passing_clouds_per_day=0),
        initial_soc=0.97,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, tank=WaterTankSpec(draws=())),
    )
    config = simulated_config(spec, sample_interval_s=SAMPLE_S)
    config = dataclasses.replace(config, agent_id=AGENT_ID, publish=PublishSettings.every_sample())
    return SimulatedSystem(spec, config)


async def test_a_sunny_full_day_diverts_and_the_state_counts_it(broker: MosquittoBroker) -> None:
    system = _system()
    remote = RemoteControl(system.agent, system.config, None, system.box.now)
    settings = MqttSettings(host=broker.host, port=broker.port, agent_id=AGENT_ID)
    link = build_link(settings, remote, Identity("simulator", "test"))
    stop = asyncio.Event()
    task = asyncio.ensure_future(link.run(stop))
    watcher = PahoWatcher(broker.port, [STATE], client_id="diversion-watcher")
    try:
        for _ in range(600):
            if link.serving:  # subscribed and connected: what it publishes now arrives
                break
            await asyncio.sleep(0.05)
        assert link.serving
        last = None
        for _ in range(int(2 * 3600 / SAMPLE_S)):  # two hours of the box's time
            system.box.advance(SAMPLE_S)
            last = system.agent.step(system.box.now)
            # Never both paths of the DSSR20, in any decision (published or superseded).
            assert not (last.outputs[HEAT_PRIMARY_OUTPUT] and last.outputs[BATTERY_PATH])
            link.offer_report(last)
            await asyncio.sleep(0)  # the link publishes what is due; the latest wins
        assert last is not None
        final = await asyncio.to_thread(watcher.find, STATE, timestamp=last.timestamp)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        watcher.close()

    states: list[dict[str, Any]] = [
        seen.json() for seen in watcher.messages if seen.topic == STATE and seen.payload
    ]
    assert final.json() == states[-1]
    schema = json.loads(SCHEMA.read_text("utf-8"))
    for state in states[:: max(1, len(states) // 50)]:
        jsonschema.validate(state, schema)
    outputs = [state["outputs"] for state in states]
    # The heat output conducts only while the battery path is off, and both regimes were seen.
    assert not any(o[HEAT_PRIMARY_OUTPUT] and o[BATTERY_PATH] for o in outputs)
    assert any(o[BATTERY_PATH] for o in outputs)
    assert sum(o[HEAT_PRIMARY_OUTPUT] for o in outputs) > len(outputs) // 4
    assert all(s["diversion"]["diverting"] == s["outputs"][HEAT_PRIMARY_OUTPUT] for s in states)
    # The counters rise and never go backwards.
    for name in ("diverted_wh", "diverted_estimated_wh", "diverted_measured_wh", "curtailed_wh"):
        series = [state["diversion"]["counters"][name] for state in states]
        assert all(b >= a for a, b in itertools.pairwise(series)), name
    diverted = [state["diversion"]["counters"]["diverted_wh"] for state in states]
    assert diverted[-1] > diverted[0] + 200.0  # about 500 W for most of an hour and more
    # Estimated (no heat-path shunt in this box), close to the energy the element took.
    assert states[-1]["diversion"]["measured"] is False
    truth = system.box.truth
    assert truth.heat_overlap_s == 0.0
    assert diverted[-1] == pytest.approx(truth.heat_wh, rel=0.25)
