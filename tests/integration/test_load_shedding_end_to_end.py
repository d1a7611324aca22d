"""Load shedding end to end: the real agent (a subprocess on the simulated box, starting in the
evening at 50 % and discharging through the night) -> a real mosquitto -> Home Assistant. The box
is discovered and confirmed, two optional loads (input_booleans) are added through the subentry
flow, and Home Assistant must shed them, lowest priority first, before the agent trips its LVD.

The simulated pack is small (20 Ah) so the night's discharge reaches LVD within a minute.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.const import STATE_OFF
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import EVENT_LOAD_SHEDDING, EVENT_SBMS, SUBENTRY_LOAD
from custom_components.sbms.coordinator import SbmsCoordinator
from tests.helpers.hass import mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.integration.agent_process import agent_process, discover_and_confirm

AGENT_ID = "night"
WAIT_S = 150.0  # a safety net against hanging, never a measurement
SPEED = 100.0  # simulated seconds per real second: 50 % to LVD in about 45 s
HEATER = "input_boolean.heater"
PUMP = "input_boolean.pump"
LOADS = (
    {"entity_id": HEATER, "priority": 1, "shed_below": 35, "restore_above": 60},
    # Above the agent's own low-SoC alarm (20 %), which would shed everything optional.
    {"entity_id": PUMP, "priority": 5, "shed_below": 25, "restore_above": 50},
)


@pytest.fixture
def night_agent(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    log_path = tmp_path / "agent.log"
    command = [
        sys.executable,
        "-m",
        "edge_agent.cli",
        "--simulate",
        "--agent-id",
        AGENT_ID,
        "--mqtt-host",
        mqtt_broker.host,
        "--mqtt-port",
        str(mqtt_broker.port),
        "--speed",
        str(SPEED),
        "--start-hour",
        "20",  # evening: no sun, the household draws from the battery
        "--capacity",
        "20",
        "--quiet",
    ]
    with agent_process(command, log_path) as process:
        yield process


class Timeline:
    """Sheds (with the SoC the integration knew) and the agent's LVD trip, in arrival order."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self.entries: list[tuple[str, str, float | None]] = []
        self.coordinator: SbmsCoordinator | None = None
        self.reasons: list[str] = []

    def _soc(self) -> float | None:
        coordinator = self.coordinator
        state = coordinator.data.state if coordinator is not None else None
        return None if state is None else state.soc

    @callback
    def on_shedding(self, event: Event[Any]) -> None:
        self.entries.append((event.data["action"], event.data["entity_id"], self._soc()))
        self.reasons.append(event.data["reason"])

    @callback
    def on_box_event(self, event: Event[Any]) -> None:
        if event.data.get("kind") == "lvd_trip":
            self.entries.append(("lvd_trip", AGENT_ID, self._soc()))

    def kinds(self) -> list[tuple[str, str]]:
        return [(kind, what) for kind, what, _ in self.entries]


async def _add_load(hass: HomeAssistant, entry: MockConfigEntry, load: dict[str, Any]) -> None:
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, SUBENTRY_LOAD), context={"source": SOURCE_USER}
    )
    result = await hass.config_entries.subentries.async_configure(
        result["flow_id"], {**load, "min_off_time": 0, "min_on_time": 0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")


@pytest.mark.slow  # about 40 s: a simulated discharge down to the LVD
async def test_loads_are_shed_in_priority_order_before_the_agents_lvd_trips(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    night_agent: subprocess.Popen[bytes],
) -> None:
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"heater": {"initial": True}, "pump": {}}}
    )
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": PUMP}, blocking=True)
    timeline = Timeline(hass)
    hass.bus.async_listen(EVENT_LOAD_SHEDDING, timeline.on_shedding)
    hass.bus.async_listen(EVENT_SBMS, timeline.on_box_event)
    await mqtt_settled(hass)

    entry = await discover_and_confirm(hass, timeout_s=WAIT_S)
    for load in LOADS:
        await _add_load(hass, entry, load)
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    timeline.coordinator = entry.runtime_data.coordinator
    await wait_for(
        hass,
        lambda: (
            entry.runtime_data.coordinator.data.state is not None
            and entry.runtime_data.coordinator.data.available
        ),
        timeout_s=WAIT_S,
    )
    start_soc = entry.runtime_data.coordinator.data.state.soc
    assert start_soc > LOADS[0]["shed_below"], "the run must cross both bands from above"

    await wait_for(hass, lambda: ("lvd_trip", AGENT_ID) in timeline.kinds(), timeout_s=WAIT_S)
    assert timeline.kinds()[:3] == [("shed", HEATER), ("shed", PUMP), ("lvd_trip", AGENT_ID)]
    assert timeline.reasons[:2] == ["soc_below", "soc_below"]
    (_, _, heater_soc), (_, _, pump_soc) = timeline.entries[:2]
    assert heater_soc is not None
    assert heater_soc < LOADS[0]["shed_below"]
    assert pump_soc is not None
    assert pump_soc < LOADS[1]["shed_below"]
    assert hass.states.get(HEATER).state == STATE_OFF  # type: ignore[union-attr]
    assert hass.states.get(PUMP).state == STATE_OFF  # type: ignore[union-attr]

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
