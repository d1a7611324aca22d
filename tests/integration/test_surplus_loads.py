"""Surplus loads in Home Assistant (issue 19): a fake agent's diversion, battery power and SoC
walk two input_booleans through their rules; the switching is read from the service calls on
the bus. The manager's clock is patched to run ahead by a test-controlled offset, and
`async_fire_time_changed` fires the timers (settling, discharge time, minimum times)."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.const import STATE_OFF, STATE_ON
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import EVENT_SURPLUS_LOAD, SUBENTRY_SURPLUS_LOAD
from custom_components.sbms.diagnostics import async_get_config_entry_diagnostics
from custom_components.sbms.logbook import describe_surplus
from custom_components.sbms.surplus_loads import SETTLE_S
from custom_components.sbms.surplus_manager import SURPLUS_STATE_KEY, storage_key
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, example
from tests.integration.switched_loads import (
    Calls,
    Clock,
    Kind,
    input_boolean_loads,
    state,
    subentry,
)

BOILER = "input_boolean.boiler"
PUMP = "input_boolean.pump"


def surplus_subentry(
    subentry_id: str, entity_id: str, *, priority: int, **values: float
) -> dict[str, Any]:
    return subentry(
        SUBENTRY_SURPLUS_LOAD,
        subentry_id,
        entity_id,
        {
            "priority": priority,
            "min_soc": values.get("min_soc", 90.0),
            "max_discharge_power": values.get("max_discharge_power", 100.0),
            "discharge_time": values.get("discharge_time", 60.0),
            "min_off_time": values.get("min_off", 0.0),
            "min_on_time": values.get("min_on", 0.0),
        },
    )


def two_loads(**values: float) -> list[dict[str, Any]]:
    """The boiler comes on first (priority 9), the pump (priority 2) after it, goes first."""
    return [
        surplus_subentry("pump", PUMP, priority=2, **values),
        surplus_subentry("boiler", BOILER, priority=9, **values),
    ]


@pytest.fixture
async def loads(hass: HomeAssistant) -> Calls:
    """Two input_boolean loads, both off; every switching of them is recorded."""
    return await input_boolean_loads(hass, ("boiler", "pump"), on=False)


async def box_state(
    hass: HomeAssistant,
    agent: FakeAgent,
    entry: MockConfigEntry,
    *,
    diverting: bool = False,
    available_w: float | None = 0.0,
    battery_power: float = 0.0,
    soc: float = 100.0,
) -> None:
    """Publish a state with a diversion and wait until the integration has it."""
    agent.state["timestamp"] += 1
    diversion = {**example("state", 1)["diversion"], "diverting": diverting}
    diversion["available_w"] = available_w
    await agent.set_state(diversion=diversion, battery_power=battery_power, soc=soc)
    await wait_for(
        hass,
        lambda: entry.runtime_data.coordinator.data.state.timestamp == agent.state["timestamp"],
    )
    await hass.async_block_till_done()


KIND = Kind(SURPLUS_STATE_KEY, "surplus_loads", EVENT_SURPLUS_LOAD)
load_sensor = KIND.load_sensor
master_switch = KIND.master_switch
events_of = KIND.events_of


async def test_surplus_switches_loads_on_in_priority_order_and_a_discharge_off_in_reverse(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    logged = events_of(hass)
    entry = await setup_box(agent, subentries_data=two_loads())
    boiler_sensor = load_sensor(hass, "boiler")
    assert state(hass, boiler_sensor) == "idle"
    await box_state(hass, agent, entry, diverting=True, available_w=480.0)
    assert loads.take() == [("turn_on", BOILER)]
    assert state(hass, BOILER) == STATE_ON
    assert state(hass, boiler_sensor) == "on"
    assert hass.states.get(boiler_sensor).attributes["reason"] == "surplus"  # type: ignore[union-attr]
    assert state(hass, load_sensor(hass, "pump")) == "waiting"  # settling after the boiler
    clock.advance(hass, SETTLE_S)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_on", PUMP)]
    # The sun goes: the battery pays for both. After the discharge time the pump goes first,
    # and the boiler only once its own timer, started again, has run out.
    await box_state(hass, agent, entry, battery_power=-400.0, soc=99.0)
    clock.advance(hass, 59)
    await hass.async_block_till_done()
    assert loads.take() == []
    clock.advance(hass, 1)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", PUMP)]
    clock.advance(hass, 60)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", BOILER)]
    assert state(hass, boiler_sensor) == "idle"
    assert hass.states.get(boiler_sensor).attributes["reason"] == "discharge"  # type: ignore[union-attr]
    assert [(event["action"], event["entity_id"], event["reason"]) for event in logged] == [
        ("on", BOILER, "surplus"),
        ("on", PUMP, "surplus"),
        ("off", PUMP, "discharge"),
        ("off", BOILER, "discharge"),
    ]
    assert describe_surplus(Event(EVENT_SURPLUS_LOAD, logged[0])) == {
        "name": "Boiler",
        "message": "switched on by surplus loads: the battery is full and PV would be thrown away",
        "entity_id": BOILER,
    }
    assert describe_surplus(Event(EVENT_SURPLUS_LOAD, logged[2]))["message"] == (
        "switched off by surplus loads: "
        "the battery discharged more than its set power for its set time"
    )


async def test_soc_below_the_floor_switches_off_at_once(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads(min_on=60))
    await box_state(hass, agent, entry, diverting=True)
    assert loads.take() == [("turn_on", BOILER)]
    await box_state(hass, agent, entry, diverting=False, soc=85.0)
    assert loads.take() == [("turn_off", BOILER)]
    assert hass.states.get(load_sensor(hass, "boiler")).attributes["reason"] == "soc_below"  # type: ignore[union-attr]


async def test_a_full_battery_holding_pv_off_is_a_surplus_without_a_diversion(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    agent.state["timestamp"] += 1
    await agent.set_state(interlocks=["hvd"], soc=100.0, battery_power=0.0)
    await wait_for(hass, lambda: loads.log != [])
    assert loads.take() == [("turn_on", BOILER)]
    assert entry.runtime_data.coordinator.data.state.diversion is None


async def test_a_load_switched_off_by_hand_is_left_off_until_the_surplus_ends(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=[two_loads()[1]])
    await box_state(hass, agent, entry, diverting=True)
    assert loads.take() == [("turn_on", BOILER)]
    await hass.services.async_call(
        "input_boolean", "turn_off", {"entity_id": BOILER}, blocking=True
    )
    loads.take()
    await hass.async_block_till_done()
    assert state(hass, load_sensor(hass, "boiler")) == "overridden"
    clock.advance(hass, 10 * SETTLE_S)
    await box_state(hass, agent, entry, diverting=True)
    assert loads.take() == []
    await box_state(hass, agent, entry, diverting=False)  # the surplus ends
    assert state(hass, load_sensor(hass, "boiler")) == "idle"
    await box_state(hass, agent, entry, diverting=True)  # the next one
    assert loads.take() == [("turn_on", BOILER)]


async def test_a_load_someone_else_switched_on_is_never_switched_off(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": BOILER}, blocking=True)
    loads.take()
    entry = await setup_box(agent, subentries_data=[two_loads()[1]])
    await box_state(hass, agent, entry, battery_power=-900.0, soc=95.0)
    clock.advance(hass, 3600)
    await box_state(hass, agent, entry, battery_power=-900.0, soc=20.0)
    assert loads.take() == []
    assert state(hass, BOILER) == STATE_ON


async def test_master_switch_off_switches_nothing_and_is_kept(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    loads: Calls,
    stored_clock: tuple[Clock, dict[str, Any]],
) -> None:
    _, hass_storage = stored_clock
    entry = await setup_box(agent, subentries_data=two_loads())
    switch = master_switch(hass)
    assert state(hass, switch) == STATE_ON
    await hass.services.async_call("switch", "turn_off", {"entity_id": switch}, blocking=True)
    await box_state(hass, agent, entry, diverting=True)
    assert loads.take() == []
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert state(hass, master_switch(hass)) == STATE_OFF
    assert hass_storage[storage_key(entry.entry_id)]["data"]["enabled"] is False


async def test_restart_restores_the_runtime_without_switching(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    loads: Calls,
    stored_clock: tuple[Clock, dict[str, Any]],
) -> None:
    clock, hass_storage = stored_clock
    entry = await setup_box(agent, subentries_data=two_loads(min_on=30))
    await box_state(hass, agent, entry, diverting=True)
    assert loads.take() == [("turn_on", BOILER)]
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    stored = hass_storage[storage_key(entry.entry_id)]["data"]
    assert stored["loads"]["boiler"]["status"] == "on"
    # Home Assistant comes back; the sun has gone and the battery pays for the boiler.
    agent.state["battery_power"] = -500.0
    agent.state["diversion"]["diverting"] = False
    await agent.publish("state", agent.state)
    clock.advance(hass, 5 * 60)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    await hass.async_block_till_done()
    assert loads.take() == []  # still ours, its minimum on time runs: nothing at start-up
    assert state(hass, load_sensor(hass, "boiler")) == "on"
    assert state(hass, load_sensor(hass, "pump")) == "idle"
    clock.advance(hass, 25 * 60)
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", BOILER)]


async def test_removing_a_load_removes_its_sensor_and_diagnostics_show_it(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    entry = await setup_box(agent, subentries_data=two_loads())
    pump_sensor = load_sensor(hass, "pump")
    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    surplus = diagnostics["surplus_loads"]
    assert surplus["enabled"] is True
    assert [load["entity_id"] for load in surplus["loads"]] == [PUMP, BOILER]
    assert hass.config_entries.async_remove_subentry(entry, "pump")
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert er.async_get(hass).async_get(pump_sensor) is None
    assert hass.states.get(load_sensor(hass, "boiler")) is not None


async def test_an_agent_gone_offline_switches_a_surplus_load_off_after_its_discharge_time(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, loads: Calls, clock: Clock
) -> None:
    """Left on blind, a surplus load could run the pack to the LVD (which cuts every load)."""
    logged = events_of(hass)
    entry = await setup_box(agent, subentries_data=two_loads())
    await box_state(hass, agent, entry, diverting=True, available_w=480.0)
    assert loads.take() == [("turn_on", BOILER)]
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.available)
    clock.advance(hass, 59)  # the boiler's discharge time is 60 s
    await hass.async_block_till_done()
    assert loads.take() == []
    clock.advance(hass, SETTLE_S)  # past the settling time too: the pump stays off
    await hass.async_block_till_done()
    assert loads.take() == [("turn_off", BOILER)]
    assert [(event["action"], event["entity_id"], event["reason"]) for event in logged] == [
        ("on", BOILER, "surplus"),
        ("off", BOILER, "no_data"),
    ]
