"""PV diversion and a surplus load end to end (issue 19): the real agent on a simulated box with a
heat path (tests/integration/heat_box_agent.py, its own process) -> a real mosquitto -> Home
Assistant, over a sunny June late morning.

The box is discovered and confirmed, a surplus load (an input_boolean standing for a 1.5 kW
water heater on the inverter: the box draws it while it is on) is added through its subentry
flow, then the sun runs. The pack fills, the agent switches the panels to the element, Home
Assistant sees the surplus and switches the load on; the load makes the battery discharge
beyond its limit, and Home Assistant switches it off again for that reason. The tank's
thermistor is on xT2 and configured as the tank's: Home Assistant's Heater tank temperature
shows the simulated tank's temperature, which the diverted energy raises.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import async_track_state_change_event
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import (
    CONF_SERIAL,
    DOMAIN,
    EVENT_SURPLUS_LOAD,
    SUBENTRY_SURPLUS_LOAD,
)
from custom_components.sbms.identity import entity_unique_id
from custom_components.sbms.models import BoxState
from tests.helpers.hass import mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.integration.agent_process import agent_process, discover_and_confirm

AGENT_ID = "sunny"
WAIT_S = 240.0  # a safety net against hanging, never a measurement
BOILER = "input_boolean.boiler"
MAX_DISCHARGE_W = 300.0
SURPLUS_LOAD = {
    "entity_id": BOILER,
    "priority": 5,
    "min_soc": 90,
    "max_discharge_power": MAX_DISCHARGE_W,
    "discharge_time": 0,
    "min_on_time": 0,
    "min_off_time": 0,
}


@pytest.fixture
def control(tmp_path: Path) -> Path:
    folder = tmp_path / "control"
    folder.mkdir()
    return folder


@pytest.fixture
def heat_box(
    mqtt_broker: MosquittoBroker, tmp_path: Path, control: Path
) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / "agent.log"
    command = [
        sys.executable,
        "-m",
        "tests.integration.heat_box_agent",
        "--host",
        mqtt_broker.host,
        "--port",
        str(mqtt_broker.port),
        "--agent-id",
        AGENT_ID,
        "--control",
        str(control),
    ]
    with agent_process(command, log_path) as process:
        yield process


class Timeline:
    """Every state Home Assistant took in, and each switching of the surplus load with the state
    the integration had then."""

    def __init__(self) -> None:
        self.states: list[BoxState] = []
        self.switched: list[tuple[str, str, BoxState | None]] = []
        self.entry: MockConfigEntry | None = None

    def latest(self) -> BoxState | None:
        return self.entry.runtime_data.coordinator.data.state if self.entry else None

    @callback
    def on_update(self) -> None:
        state = self.latest()
        if state is not None and (not self.states or self.states[-1] is not state):
            self.states.append(state)

    @callback
    def on_surplus_load(self, event: Event[Any]) -> None:
        self.switched.append((event.data["action"], event.data["reason"], self.latest()))


def _entity(hass: HomeAssistant, platform: str, key: str) -> str:
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    unique_id = entity_unique_id(entry.data[CONF_SERIAL], key)
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id)
    assert entity_id is not None, f"no {platform} {key}"
    return entity_id


async def test_a_sunny_day_diverts_and_a_surplus_load_comes_on_and_goes_off(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    heat_box: subprocess.Popen[bytes],
    control: Path,
) -> None:
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"boiler": {}}})
    timeline = Timeline()
    hass.bus.async_listen(EVENT_SURPLUS_LOAD, timeline.on_surplus_load)

    async def follow_load(event: Event[EventStateChangedData]) -> None:
        """The box draws the load while it is on, as a heater on the inverter would."""
        new = event.data["new_state"]
        on = "1" if new is not None and new.state == STATE_ON else "0"
        await hass.async_add_executor_job((control / "load").write_text, on)

    async_track_state_change_event(hass, [BOILER], follow_load)
    await mqtt_settled(hass)

    entry = await discover_and_confirm(hass, timeout_s=WAIT_S)
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_SURPLUS_LOAD), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(result["flow_id"], SURPLUS_LOAD)
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    await wait_for(
        hass,
        lambda: (
            entry.runtime_data.coordinator.data.available
            and entry.runtime_data.coordinator.data.state is not None
        ),
        timeout_s=WAIT_S,
    )
    timeline.entry = entry
    entry.async_on_unload(entry.runtime_data.coordinator.async_add_listener(timeline.on_update))
    first = entry.runtime_data.coordinator.data.state
    assert first is not None
    assert first.diversion is not None
    assert not first.diversion.diverting  # the pack is not full yet
    assert hass.states.get(BOILER).state == STATE_OFF  # type: ignore[union-attr]

    await hass.async_add_executor_job((control / "go").write_text, "")  # the sun runs
    await wait_for(hass, lambda: len(timeline.switched) >= 2, timeout_s=WAIT_S)

    await wait_for(
        hass,
        lambda: any(s.diversion and s.diversion.diverting for s in timeline.states),
        timeout_s=WAIT_S,
    )
    # The agent diverted once the pack was full (HVD), never with the battery path on.
    states = timeline.states
    assert all(not (s.outputs["heat1"] and s.outputs["extio4"]) for s in states)
    first_diverting = next(i for i, s in enumerate(states) if s.diversion and s.diversion.diverting)
    assert "hvd" in states[first_diverting].interlocks
    (on_action, on_reason, on_state), (off_action, off_reason, off_state) = timeline.switched[:2]
    # On for the surplus (the panels off because the pack is full, the heat path waiting out
    # its dead time or conducting), while the box reported it.
    assert (on_action, on_reason) == ("on", "surplus")
    assert on_state is not None
    assert on_state.diversion is not None
    assert on_state.diversion.surplus
    assert "hvd" in on_state.interlocks
    assert on_state.soc >= SURPLUS_LOAD["min_soc"]
    # Off because the battery then paid for it beyond the limit.
    assert (off_action, off_reason) == ("off", "discharge")
    assert off_state is not None
    assert off_state.battery_power is not None
    assert off_state.battery_power < -MAX_DISCHARGE_W
    assert hass.states.get(BOILER).state == STATE_OFF  # type: ignore[union-attr]
    # With the load off the pack fills again and the element takes the PV: the diverted energy
    # rises on its entity, estimated (no heat-path shunt in this box).
    diverted_energy = _entity(hass, "sensor", "diverted_energy")

    def diverted_kwh() -> float:
        state = hass.states.get(diverted_energy)
        return float(state.state) if state is not None else 0.0

    await wait_for(hass, lambda: diverted_kwh() > 0.01, timeout_s=WAIT_S)
    diverted = hass.states.get(diverted_energy)
    assert diverted is not None
    assert diverted.attributes["counted"] == "estimated"
    assert hass.states.get(_entity(hass, "binary_sensor", "diverting")) is not None

    # Issue 19: xT2 labelled as the tank (`diversion.tank_temperature: external2`).
    tank_entity = _entity(hass, "sensor", "temperature_heater_tank")
    first_tank = timeline.states[0].temperatures["heater_tank"]
    assert first_tank is not None
    shown: list[tuple[float, BoxState]] = []

    def tank_warmed_and_shown() -> bool:
        """The entity shows the integration's latest state (snapshot taken together), once
        the diverted energy warmed the tank by a degree."""
        entity, latest = hass.states.get(tank_entity), timeline.latest()
        if entity is None or latest is None or latest.temperatures.get("heater_tank") is None:
            return False
        value = float(entity.state)
        if value != latest.temperatures["heater_tank"] or value < first_tank + 1.0:
            return False
        shown.append((value, latest))
        return True

    await wait_for(hass, tank_warmed_and_shown, timeout_s=WAIT_S)
    value, latest = shown[-1]
    assert latest.temperatures["external2"] == value  # the input keeps its own key too
    lines = await hass.async_add_executor_job((control / "tank").read_text)
    truth = [tuple(map(float, line.split())) for line in lines.splitlines()]
    when, tank_c = min(truth, key=lambda row: abs(row[0] - latest.timestamp))
    assert when == pytest.approx(latest.timestamp, abs=1e-3)  # the very sample shown
    assert value == pytest.approx(tank_c, abs=0.5)  # the thermistor through the ISL94203

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
