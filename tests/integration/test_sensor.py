"""Sensors of the sbms integration, fed by the fake agent through a real broker and real HA."""

from __future__ import annotations

import logging
from types import SimpleNamespace
from typing import Any

import pytest
from homeassistant.components.sensor import (
    ATTR_STATE_CLASS,
    SensorDeviceClass,
    SensorStateClass,
)
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
    UnitOfEnergy,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN
from custom_components.sbms.models import Reading
from custom_components.sbms.sensor import LOAD_STATE, SENSORS, cell_descriptions
from edge_agent.config import parse_config
from edge_agent.mqtt.payloads import config_payload
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, example, unique_id


def entity_id(hass: HomeAssistant, key: str, platform: str = "sensor") -> str:
    """The entity id of the box `shed`'s entity with unique id `shed_<key>`."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id(key))
    assert found is not None, f"no {platform} with unique id shed_{key}"
    return found


def value(hass: HomeAssistant, key: str) -> str:
    state = hass.states.get(entity_id(hass, key))
    assert state is not None
    return state.state


def has_entity(hass: HomeAssistant, key: str) -> bool:
    return er.async_get(hass).async_get_entity_id("sensor", DOMAIN, unique_id(key)) is not None


async def enable(hass: HomeAssistant, entry: MockConfigEntry, *keys: str) -> None:
    """Enable disabled-by-default entities the way a user does, then reload the entry."""
    registry = er.async_get(hass)
    for key in keys:
        registry.async_update_entity(entity_id(hass, key), disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    await hass.async_block_till_done()


async def test_values_map_the_documented_state(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    expected = {
        "soc": "63.4",
        "soc_uncertainty": "2.4",
        "voltage": "26.71",
        "battery_current": "21.37",
        "battery_power": "570.8",
        "battery_power_discharging": "-570.8",  # the Energy dashboard's sign: charging here
        "pv_current": "24.95",
        "pv_power": "666.4",
        "load_current": "3.58",
        "load_power": "95.6",
        "cell_min": "3.337",
        "cell_max": "3.34",
        "temperature_internal": "31.2",
        "temperature_battery": "26.4",
        "remaining_ah": "63.41",
        "capacity_ah": "100.0",
        "time_to_empty": STATE_UNKNOWN,  # charging: no time to empty
        "interlocks": "none",
        # The agent's seconds and watt-hours as h and kWh at their resolution: no state like
        # 1.7133333333333334 h or 3.6601999999999997 kWh (issue 20).
        "time_to_full": "1.71",
        "battery_in_energy": "4.0105",
        "battery_out_energy": "3.6602",
        "pv_energy": "7.9501",
        "load_energy": "3.9017",
    }
    assert {key: value(hass, key) for key in expected} == expected
    # The agent's volts shown as mV.
    assert float(value(hass, "cell_delta")) == pytest.approx(3.0)
    # xT2 is null in this state: a box without that sensor has no entity for it.
    assert not has_entity(hass, "temperature_external2")
    units = {
        key: hass.states.get(entity_id(hass, key)).attributes.get(ATTR_UNIT_OF_MEASUREMENT)  # type: ignore[union-attr]
        for key in (
            "soc",
            "soc_uncertainty",
            "voltage",
            "cell_delta",
            "time_to_full",
            "remaining_ah",
            "pv_energy",
        )
    }
    assert units == {
        "soc": "%",
        "soc_uncertainty": "%",
        "voltage": "V",
        "cell_delta": "mV",
        "time_to_full": "h",
        "remaining_ah": "Ah",
        "pv_energy": "kWh",
    }
    # No type 6 output in the documented box: no dual-PV level.
    assert not has_entity(hass, "dual_pv_level")


def test_every_numeric_sensor_has_a_display_precision() -> None:
    """Issue 20: a unit or a state class makes a sensor numeric; each says its precision."""
    descriptions = [*SENSORS, *cell_descriptions(16), LOAD_STATE]
    numeric = [
        d
        for d in descriptions
        if d.native_unit_of_measurement is not None or d.state_class is not None
    ]
    assert len(numeric) > 20
    assert [d.key for d in numeric if d.suggested_display_precision is None] == []


async def test_a_temperature_sensor_appears_when_the_box_first_reads_it(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """xT2 may be unfitted: its entity is added with its first reading, and stays."""
    entry = await setup_box(agent)
    assert not has_entity(hass, "temperature_external2")
    await agent.set_state(temperatures={"internal": 31.2, "battery": 26.4, "external2": 18.25})
    await wait_for(hass, lambda: has_entity(hass, "temperature_external2"))
    await wait_for(hass, lambda: value(hass, "temperature_external2") == "18.25")
    await agent.set_state(temperatures={"internal": 31.2, "battery": 26.4, "external2": None})
    await wait_for(hass, lambda: value(hass, "temperature_external2") == STATE_UNKNOWN)
    # It stays after a restart of Home Assistant (the registry keeps it) and reads again.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await agent.set_state(temperatures={"internal": 31.2, "battery": 26.4, "external2": 18.5})
    await wait_for(hass, lambda: value(hass, "temperature_external2") == "18.5")


async def test_energy_counters_fit_the_energy_dashboard(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    for key in ("battery_in_energy", "battery_out_energy", "pv_energy", "load_energy"):
        attributes = hass.states.get(entity_id(hass, key)).attributes  # type: ignore[union-attr]
        assert attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.ENERGY
        assert attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL_INCREASING
        assert attributes[ATTR_UNIT_OF_MEASUREMENT] == UnitOfEnergy.KILO_WATT_HOUR
    # Battery power as Home Assistant's Energy dashboard takes it (2025.12): W, a
    # measurement, positive while discharging; the box's own sensor keeps its sign.
    power = hass.states.get(entity_id(hass, "battery_power_discharging"))
    assert power is not None
    assert power.attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.POWER
    assert power.attributes[ATTR_STATE_CLASS] == SensorStateClass.MEASUREMENT
    assert power.attributes[ATTR_UNIT_OF_MEASUREMENT] == "W"
    assert power.name == "SBMS shed Battery power (discharging positive)"
    await agent.set_state(battery_current=-4.0, battery_power=-106.8)
    await wait_for(hass, lambda: value(hass, "battery_power_discharging") == "106.8")
    assert value(hass, "battery_power") == "-106.8"
    soc = hass.states.get(entity_id(hass, "soc")).attributes  # type: ignore[union-attr]
    assert soc[ATTR_DEVICE_CLASS] == SensorDeviceClass.BATTERY
    assert soc[ATTR_STATE_CLASS] == SensorStateClass.MEASUREMENT


async def test_noisy_sensors_are_registered_but_disabled(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    registry = er.async_get(hass)
    noisy = [f"cell_voltage_{cell}" for cell in range(1, 9)] + ["cell_monitor_flags"]
    for key in noisy:
        entry = registry.async_get(entity_id(hass, key))
        assert entry is not None
        assert entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert entry.entity_category is EntityCategory.DIAGNOSTIC
        assert hass.states.get(entry.entity_id) is None
    assert not has_entity(hass, "cell_voltage_9")
    for key in ("temperature_internal", "capacity_ah", "soc_uncertainty", "interlocks"):
        entry = registry.async_get(entity_id(hass, key))
        assert entry is not None
        assert entry.entity_category is EntityCategory.DIAGNOSTIC
        assert entry.disabled_by is None


async def test_enabled_cell_voltages_and_flags_show_each_value(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await enable(
        hass, entry, "cell_voltage_1", "cell_voltage_4", "cell_voltage_8", "cell_monitor_flags"
    )
    assert value(hass, "cell_voltage_1") == "3.339"
    assert value(hass, "cell_voltage_4") == "3.34"
    assert value(hass, "cell_voltage_8") == "3.338"
    assert value(hass, "cell_monitor_flags") == "CHING"
    state = hass.states.get(entity_id(hass, "cell_voltage_4"))
    assert state is not None
    assert state.name == "SBMS shed Cell 4 voltage"
    # A state with fewer cells than announced leaves the missing ones unknown, not wrong.
    await agent.set_state(cells=[3.3, 3.31], flags=["CHING", "EOCHG"])
    await wait_for(hass, lambda: value(hass, "cell_voltage_8") == STATE_UNKNOWN)
    assert value(hass, "cell_voltage_1") == "3.3"
    assert value(hass, "cell_monitor_flags") == "CHING, EOCHG"


async def test_entities_follow_the_announced_box(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """4 cells, no PV shunt, only a battery sensor, and a dual-PV output."""
    agent.announce.update(cells=4)
    agent.announce["measurements"] = {"pv_current": False, "temperatures": ["battery"]}
    agent.announce["outputs"][2] = {"name": "extio5", "type": 6, "type_name": "dual_pv"}
    agent.state.update(
        cells=[3.3, 3.31, 3.32, 3.33],
        balancing=[False] * 4,
        pv_current=None,
        pv_power=None,
        load_current=None,
        load_power=None,
        dual_pv_level=2,
    )
    await agent.publish_all()
    await setup_box(agent)
    for key in (
        "pv_current",
        "pv_power",
        "load_current",
        "load_power",
        "pv_energy",
        "load_energy",
        "temperature_internal",
        "temperature_external2",
        "cell_voltage_5",
    ):
        assert not has_entity(hass, key), key
    for key in ("battery_in_energy", "battery_out_energy", "temperature_battery", "cell_voltage_4"):
        assert has_entity(hass, key), key
    assert value(hass, "dual_pv_level") == "2"


async def test_availability_follows_agent_status(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    keys = ("soc", "voltage", "battery_in_energy", "interlocks")
    await agent.set_online(False)
    await wait_for(hass, lambda: value(hass, "soc") == STATE_UNAVAILABLE)
    assert {key: value(hass, key) for key in keys} == dict.fromkeys(keys, STATE_UNAVAILABLE)
    await agent.set_online(True)
    await wait_for(hass, lambda: value(hass, "soc") == "63.4")
    assert value(hass, "voltage") == "26.71"


async def test_measured_sensors_unavailable_without_a_good_measurement(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    # The agent repeats the last good values with measurement_ok false: they must not pass
    # for live readings. Estimates and counters carry on.
    await agent.set_state(measurement_ok=False, soc=63.3)
    await wait_for(hass, lambda: value(hass, "voltage") == STATE_UNAVAILABLE)
    for key in ("battery_current", "pv_power", "cell_delta", "temperature_battery", "time_to_full"):
        assert value(hass, key) == STATE_UNAVAILABLE, key
    assert value(hass, "soc") == "63.3"
    assert value(hass, "soc_uncertainty") == "2.4"  # an estimate, like the SoC
    assert value(hass, "remaining_ah") == "63.41"
    assert value(hass, "capacity_ah") == "100.0"
    assert float(value(hass, "battery_in_energy")) == pytest.approx(4.0105)
    await agent.set_state(measurement_ok=True, voltage=26.8)
    await wait_for(hass, lambda: value(hass, "voltage") == "26.8")


async def test_state_before_the_first_measurement(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The documented "no measurement yet" state: SoC and counters only."""
    agent.state = example("state", 2)  # the third: no measurement yet
    await agent.publish_all()
    await setup_box(agent)
    await wait_for(hass, lambda: value(hass, "soc") == "50.0")
    assert value(hass, "soc_uncertainty") == "49.0"  # a new install: anywhere
    assert value(hass, "voltage") == STATE_UNAVAILABLE
    assert float(value(hass, "battery_in_energy")) == 0.0
    assert value(hass, "interlocks") == "forced off, measurement stale"


async def test_soc_uncertainty_sensor(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Half the SoC's ~95 % band (issue 16): unavailable, not unknown, while the agent sends
    null or nothing (it does not estimate it), back with the next number."""
    await setup_box(agent)
    state = hass.states.get(entity_id(hass, "soc_uncertainty"))
    assert state is not None
    assert state.name == "SBMS shed State of charge uncertainty"
    assert state.attributes[ATTR_STATE_CLASS] == SensorStateClass.MEASUREMENT
    assert ATTR_DEVICE_CLASS not in state.attributes  # not a battery level
    entry = er.async_get(hass).async_get(entity_id(hass, "soc_uncertainty"))
    assert entry is not None
    assert entry.options["sensor"]["suggested_display_precision"] == 1
    await agent.set_state(soc_uncertainty=None, soc=63.2)
    await wait_for(hass, lambda: value(hass, "soc") == "63.2")
    assert value(hass, "soc_uncertainty") == STATE_UNAVAILABLE
    await agent.set_state(soc_uncertainty=3.75, soc=63.1)
    await wait_for(hass, lambda: value(hass, "soc_uncertainty") == "3.75")
    del agent.state["soc_uncertainty"]  # an agent from before issue 16
    await agent.set_state(soc=63.0)
    await wait_for(hass, lambda: value(hass, "soc") == "63.0")
    assert value(hass, "soc_uncertainty") == STATE_UNAVAILABLE


# A datasheet's resting-voltage table (docs/soc.md's example), as a box's file gives it.
DATASHEET_CURVE = [[0, 2.80], [10, 3.184], [25, 3.235], [40, 3.271], [65, 3.294], [100, 3.40]]


def real_config_payload(revision: int, **battery: Any) -> dict[str, Any]:
    """The real agent's `config` payload for an 8-cell box whose file's battery section has
    `battery` on top of its cell count."""
    config = parse_config({"agent_id": "shed", "battery": {"cells": 8, **battery}})
    return config_payload(config, revision)


async def test_soc_uncertainty_says_which_curve_the_soc_reads_near_empty(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Issue 16: without the cells' own curve the band stays wide near empty; the attribute
    `ocv_curve` says which curve the estimate reads, from the config's `battery.ocv_curve`."""

    def curve() -> Any:
        state = hass.states.get(entity_id(hass, "soc_uncertainty"))
        assert state is not None
        return state.attributes.get("ocv_curve")

    assert "ocv_curve" not in agent.config["battery"]  # the documented box: the built-in one
    await setup_box(agent)
    await wait_for(hass, lambda: curve() == "built_in")
    await agent.publish("config", real_config_payload(10, ocv_curve=DATASHEET_CURVE))
    await wait_for(hass, lambda: curve() == "configured")
    await agent.publish("config", real_config_payload(11))
    await wait_for(hass, lambda: curve() == "built_in")


async def test_no_soc_uncertainty_sensor_for_a_stock_sbms(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """A stock SBMS0's own SoC comes without an uncertainty: no always-unavailable entity."""
    agent.announce["source"] = "sbms0"
    agent.state["soc_uncertainty"] = None
    await agent.publish_all()
    await setup_box(agent)
    assert has_entity(hass, "soc")
    assert not has_entity(hass, "soc_uncertainty")


# A full state with one bad field, and payloads that are no state at all.
BAD_SOC = "bad soc"


@pytest.mark.parametrize(
    "case",
    [
        (BAD_SOC, "state.soc: expected a number, got 'abc'"),
        ("not json", "state: not JSON"),
        ("[1, 2]", "state: not a JSON object"),
    ],
)
async def test_bad_state_is_ignored_with_a_warning(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, str],
) -> None:
    payload, named = case
    await setup_box(agent)
    caplog.set_level(logging.WARNING)
    if payload == BAD_SOC:
        # The rest of the message is fine (and different): none of it may be applied.
        await agent.publish("state", {**agent.state, "soc": "abc", "voltage": 99.0})
    else:
        await agent.publish("state", payload)
    await wait_for(hass, lambda: named in caplog.text)
    warning = next(r for r in caplog.records if named in r.getMessage())
    assert warning.levelno == logging.WARNING
    assert "SBMS agent shed: ignoring state" in warning.getMessage()
    # The entities keep the last good values and stay available.
    assert value(hass, "soc") == "63.4"
    assert value(hass, "voltage") == "26.71"
    # And the next good state is shown again.
    await agent.set_state(soc=64.0)
    await wait_for(hass, lambda: value(hass, "soc") == "64.0")


def test_discharging_power_is_back_filled_with_its_own_sign() -> None:
    """The log keeps the box's battery power (positive charging): the Energy dashboard's
    sensor gets it negated, its extremes swapped."""
    description = next(item for item in SENSORS if item.key == "battery_power_discharging")
    assert description.history_reading_fn is not None
    record = SimpleNamespace(series={"battery_power": Reading(-17.0, -40.0, 5.0)})
    assert description.history_reading_fn(record) == Reading(17.0, -5.0, 40.0)  # type: ignore[arg-type]
    assert description.history_reading_fn(SimpleNamespace(series={})) is None  # type: ignore[arg-type]
