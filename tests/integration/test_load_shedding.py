"""Load shedding in Home Assistant: a fake agent's SoC, alarm and LVD walk the loads (two
input_booleans) through their bands; the switching is read from the service calls on the bus.

Time is moved by the test: the manager's clock is patched to run ahead by a test-controlled
offset, and `async_fire_time_changed` fires the timers that end minimum on/off times.
"""

from __future__ import annotations

import time
from typing import Any

import pytest
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
)

from custom_components.sbms.const import (
    CONF_PESSIMISTIC_SOC,
    EVENT_LOAD_SHEDDING,
    SUBENTRY_LOAD,
)
from custom_components.sbms.diagnostics import async_get_config_entry_diagnostics
from custom_components.sbms.load_shedding import LoadStatus
from custom_components.sbms.logbook import describe
from custom_components.sbms.shedding_manager import LOAD_STATE_KEY, storage_key
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent
from tests.integration.switched_loads import (
    Calls,
    Clock,
    Kind,
    input_boolean_loads,
    state,
    subentry,
)

HEATER = "input_boolean.heater"
PUMP = "input_boolean.pump"


def load_subentry(
    subentry_id: str, entity_id: str, *, priority: int, shed: float, restore: float, **times: float
) -> dict[str, Any]:
    return subentry(
        SUBENTRY_LOAD,
        subentry_id,
        entity_id,
        {
            "priority": priority,
            "shed_below": shed,
            "restore_above": restore,
            "min_off_time": times.get("min_off", 0.0),
            "min_on_time": times.get("min_on", 0.0),
        },
    )


def two_loads(*, min_off: float = 0.0, min_on: float = 0.0) -> list[dict[str, Any]]:
    """Heater goes first (priority 1, below 40 %), the pump later (priority 5, below 25 %)."""
    return [
        load_subentry(
            "pump", PUMP, priority=5, shed=25, restore=45, min_off=min_off, min_on=min_on
        ),
        load_subentry(
            "heater", HEATER, priority=1, shed=40, restore=60, min_off=min_off, min_on=min_on
        ),
    ]


@pytest.fixture
async def loads(hass: HomeAssistant) -> Calls:
    """Two input_boolean loads, both on; every switching of them is recorded."""
    return await input_boolean_loads(hass, ("heater", "pump"), on=True)


async def set_soc(
    hass: HomeAssistant, agent: FakeAgent, entry: MockConfigEntry, soc: float
) -> None:
    agent.state["timestamp"] += 1
    await agent.set_state(soc=soc)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state.soc == soc)
    await hass.async_block_till_done()


KIND = Kind(LOAD_STATE_KEY, "load_shedding", EVENT_LOAD_SHEDDING)
load_sensor = KIND.load_sensor
master_switch = KIND.master_switch
events_of = KIND.events_of


async def test_soc_walk_sheds_in_priority_order_and_restores_in_reverse(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    logged = events_of(hass)
    entry = await setup_box(agent, subentries_data=two_loads())
    heater_sensor = load_sensor(hass, "heater")
    assert state(hass, heater_sensor) == "normal"
    assert loads.take() == []
    await set_soc(hass, agent, entry, 39)
    assert loads.take() == [("turn_off", HEATER)]
    assert state(hass, HEATER) == STATE_OFF
    assert state(hass, heater_sensor) == "shed"
    assert hass.states.get(heater_sensor).attributes["reason"] == "soc_below"  # type: ignore[union-attr]
    await set_soc(hass, agent, entry, 30)
    await set_soc(hass, agent, entry, 24)
    assert loads.take() == [("turn_off", PUMP)]
    for soc in (44, 59, 45.5):  # the hysteresis band of the heater; the pump returns above 45
        await set_soc(hass, agent, entry, soc)
    assert loads.take() == [("turn_on", PUMP)]
    assert state(hass, heater_sensor) == "shed"
    await set_soc(hass, agent, entry, 61)
    assert loads.take() == [("turn_on", HEATER)]
    assert state(hass, heater_sensor) == "normal"
    assert [(event["action"], event["entity_id"], event["reason"]) for event in logged] == [
        ("shed", HEATER, "soc_below"),
        ("shed", PUMP, "soc_below"),
        ("restore", PUMP, "soc_above"),
        ("restore", HEATER, "soc_above"),
    ]
    entry_text = describe(Event(EVENT_LOAD_SHEDDING, logged[0]))
    assert entry_text == {
        "name": "Heater",
        "message": "switched off by load shedding: "
        "the battery's state of charge fell below its shed level",
        "entity_id": HEATER,
    }


# --- the pessimistic SoC (issue 16) -----------------------------------------------------------


def one_pump() -> list[dict[str, Any]]:
    """The pump goes off below 20 % and comes back above 30 %."""
    return [load_subentry("pump", PUMP, priority=5, shed=20, restore=30)]


async def set_band(
    hass: HomeAssistant,
    agent: FakeAgent,
    entry: MockConfigEntry,
    soc: float,
    uncertainty: float | None,
) -> None:
    """A state with this SoC and uncertainty (None: null, as from an agent without it)."""
    agent.state["timestamp"] += 1
    await agent.set_state(soc=soc, soc_uncertainty=uncertainty)
    await wait_for(
        hass,
        lambda: (
            entry.runtime_data.coordinator.data.state.soc == soc
            and entry.runtime_data.coordinator.data.state.soc_uncertainty == uncertainty
        ),
    )
    await hass.async_block_till_done()


async def test_pessimistic_soc_sheds_earlier_and_restores_later(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=one_pump(), options={CONF_PESSIMISTIC_SOC: True})
    await set_band(hass, agent, entry, 25, 6)  # 25 - 6 = 19: below the shed level of 20
    assert loads.take() == [("turn_off", PUMP)]
    assert hass.states.get(load_sensor(hass, "pump")).attributes["reason"] == "soc_below"  # type: ignore[union-attr]
    await set_band(hass, agent, entry, 33, 6)  # above 30, but 33 - 6 = 27 is not
    assert loads.take() == []
    assert state(hass, load_sensor(hass, "pump")) == "shed"
    await set_band(hass, agent, entry, 36.5, 6)  # 30.5
    assert loads.take() == [("turn_on", PUMP)]
    shedding = (await async_get_config_entry_diagnostics(hass, entry))["load_shedding"]
    assert (shedding["pessimistic_soc"], shedding["decision_soc"]) == (True, 30.5)


async def test_without_the_option_shedding_uses_the_soc_as_it_is(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    """Entries from before the option have no such key: off."""
    entry = await setup_box(agent, subentries_data=one_pump())
    assert CONF_PESSIMISTIC_SOC not in entry.options
    await set_band(hass, agent, entry, 25, 6)
    assert loads.take() == []
    await set_band(hass, agent, entry, 19, 6)
    assert loads.take() == [("turn_off", PUMP)]
    await set_band(hass, agent, entry, 33, 6)
    assert loads.take() == [("turn_on", PUMP)]


async def test_pessimistic_soc_without_an_uncertainty_falls_back_to_the_soc(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=one_pump(), options={CONF_PESSIMISTIC_SOC: True})
    await set_band(hass, agent, entry, 25, None)
    assert loads.take() == []
    del agent.state["soc_uncertainty"]  # an agent from before issue 16
    await set_soc(hass, agent, entry, 21)
    assert loads.take() == []
    await set_soc(hass, agent, entry, 19)
    assert loads.take() == [("turn_off", PUMP)]
    await set_soc(hass, agent, entry, 31)
    assert loads.take() == [("turn_on", PUMP)]


async def test_turning_the_option_on_in_the_options_flow_applies_at_once(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=one_pump())
    await set_band(hass, agent, entry, 25, 6)
    assert loads.take() == []
    manager = entry.runtime_data.shedding
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert "load_shedding" in result["menu_options"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "load_shedding"}
    )
    assert result["type"] is FlowResultType.FORM
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {CONF_PESSIMISTIC_SOC: False}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_PESSIMISTIC_SOC: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_PESSIMISTIC_SOC] is True
    await hass.async_block_till_done()
    # No new state needed, and no reload: the running manager decides again.
    assert loads.take() == [("turn_off", PUMP)]
    assert state(hass, load_sensor(hass, "pump")) == "shed"
    assert entry.runtime_data.shedding is manager  # the same manager, not a reloaded entry's


async def test_minimum_times_hold_until_the_clock_passes_them(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads(min_off=10, min_on=5))
    # Both loads were switched on (by the fixture) just now: 5 minutes before they may go off.
    await set_soc(hass, agent, entry, 20)
    assert loads.take() == []
    clock.advance(hass, 4 * 60)
    await hass.async_block_till_done()
    assert loads.take() == []
    clock.advance(hass, 61)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", HEATER), ("turn_off", PUMP)]
    await set_soc(hass, agent, entry, 90)
    assert loads.take() == []
    assert state(hass, load_sensor(hass, "heater")) == "waiting_to_restore"
    clock.advance(hass, 9 * 60)
    await hass.async_block_till_done()
    assert loads.take() == []
    clock.advance(hass, 61)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_on", PUMP), ("turn_on", HEATER)]


async def test_lvd_trip_sheds_everything_at_once_and_release_lets_soc_decide(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads(min_on=60))
    await agent.send_event("lvd_trip")
    await wait_for(hass, lambda: len(loads.log) == 2)
    assert loads.take() == [("turn_off", HEATER), ("turn_off", PUMP)]
    sensor = hass.states.get(load_sensor(hass, "pump"))
    assert sensor is not None
    assert sensor.attributes["reason"] == "lvd_trip"
    await set_soc(hass, agent, entry, 95)  # a state without the lvd interlock: released
    assert loads.take() == [("turn_on", PUMP), ("turn_on", HEATER)]


async def test_low_soc_alarm_event_sheds_and_its_clear_restores(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    await setup_box(agent, subentries_data=two_loads())
    await agent.send_event("low_soc_alarm")
    await wait_for(hass, lambda: len(loads.log) == 2)
    assert loads.take() == [("turn_off", HEATER), ("turn_off", PUMP)]
    await agent.send_event("low_soc_clear")
    await wait_for(hass, lambda: len(loads.log) == 2)
    assert loads.take() == [("turn_on", PUMP), ("turn_on", HEATER)]


async def test_agent_offline_freezes_shed_loads_until_data_returns(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    await set_soc(hass, agent, entry, 30)
    assert loads.take() == [("turn_off", HEATER)]
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.available)
    agent.state["soc"] = 90  # published while HA cannot trust it: the agent is offline
    await agent.publish("state", agent.state)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state.soc == 90)
    clock.advance(hass, 3600)
    await hass.async_block_till_done()
    assert loads.take() == []
    # Its sensor follows the agent (unavailable); shedding still holds the heater as shed.
    assert state(hass, load_sensor(hass, "heater")) == "unavailable"
    assert entry.runtime_data.shedding.state_of("heater").status is LoadStatus.SHED
    await agent.set_online(True)
    await wait_for(hass, lambda: len(loads.log) == 1)
    assert loads.take() == [("turn_on", HEATER)]


async def test_a_load_switched_on_by_hand_is_not_fought(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    await set_soc(hass, agent, entry, 30)
    assert loads.take() == [("turn_off", HEATER)]
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": HEATER}, blocking=True)
    await hass.async_block_till_done()
    loads.take()
    assert state(hass, load_sensor(hass, "heater")) == "overridden"
    for soc in (28, 35, 26):
        await set_soc(hass, agent, entry, soc)
    assert loads.take() == []
    assert state(hass, HEATER) == STATE_ON
    await set_soc(hass, agent, entry, 65)  # the restore cycle ends the override
    assert state(hass, load_sensor(hass, "heater")) == "normal"
    await set_soc(hass, agent, entry, 35)
    assert loads.take() == [("turn_off", HEATER)]


async def test_master_switch_off_switches_nothing_and_is_kept(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    switch = master_switch(hass)
    assert state(hass, switch) == STATE_ON
    await hass.services.async_call("switch", "turn_off", {"entity_id": switch}, blocking=True)
    assert state(hass, switch) == STATE_OFF
    await set_soc(hass, agent, entry, 10)
    assert loads.take() == []
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert loads.take() == []
    assert state(hass, switch) == STATE_OFF
    await hass.services.async_call("switch", "turn_on", {"entity_id": switch}, blocking=True)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", HEATER), ("turn_off", PUMP)]


async def test_restart_restores_shed_state_and_timers_without_switching(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    loads: Calls,
    stored_clock: tuple[Clock, dict[str, Any]],
) -> None:
    clock, hass_storage = stored_clock
    entry = await setup_box(agent, subentries_data=two_loads(min_off=10))
    await set_soc(hass, agent, entry, 30)
    assert loads.take() == [("turn_off", HEATER)]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert stored["loads"]["heater"]["status"] == "shed"
    # Home Assistant comes back a few minutes later; the retained SoC is above the restore level.
    agent.state["soc"] = 80
    await agent.publish("state", agent.state)
    clock.advance(hass, 5 * 60)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state.soc == 80)
    assert loads.take() == []  # the minimum off time still runs: no burst at start-up
    assert state(hass, load_sensor(hass, "heater")) == "waiting_to_restore"
    clock.advance(hass, 5 * 60 + 1)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_on", HEATER)]


async def test_stored_state_from_before_the_restart_is_used_at_setup(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    loads: Calls,
    stored_clock: tuple[Clock, dict[str, Any]],
) -> None:
    """A fresh start with the heater recorded as shed and off: it is not switched at start."""
    clock, hass_storage = stored_clock
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": HEATER}, blocking=True
    )
    loads.take()
    entry = agent.config_entry(subentries_data=two_loads(min_off=30))
    now = time.time()
    hass_storage[storage_key(entry.entry_id)] = {
        "version": 1,
        "key": storage_key(entry.entry_id),
        "data": {
            "enabled": True,
            "loads": {
                "heater": {
                    "status": "shed",
                    "reason": "lvd_trip",
                    "observed_on": False,
                    "changed_at": now - 60,
                    "switched_at": now - 60,
                }
            },
        },
    }
    agent.state["soc"] = 90
    await agent.publish("state", agent.state)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    await hass.async_block_till_done()
    heater = hass.states.get(load_sensor(hass, "heater"))
    assert heater is not None
    assert heater.state == "waiting_to_restore"
    assert heater.attributes["reason"] == "lvd_trip"
    assert loads.take() == []
    clock.advance(hass, 29 * 60 + 1)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_on", HEATER)]


async def test_removing_a_load_removes_its_sensor_and_diagnostics_show_shedding(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    pump_sensor = load_sensor(hass, "pump")
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    shedding = diagnostics["load_shedding"]
    assert shedding["enabled"] is True
    assert [load["entity_id"] for load in shedding["loads"]] == [PUMP, HEATER]
    assert hass.config_entries.async_remove_subentry(entry, "pump")
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert er.async_get(hass).async_get(pump_sensor) is None
    assert hass.states.get(load_sensor(hass, "heater")) is not None
