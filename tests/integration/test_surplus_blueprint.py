"""The surplus-loads blueprint (issue 19), loaded through Home Assistant's blueprint machinery:
an automation made from it switches two input_booleans on once the surplus has lasted its
delay, off when the battery discharges beyond the limit for its time or SoC falls below the
level or the battery power has been unknown for that time; nothing comes on while the sensors
are unavailable."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component

from tests.integration.blueprints import (
    blueprint_meta,
    install_blueprint,
    later,
    set_up_automation,
    states_of,
)

BLUEPRINT = "sbms/surplus_loads.yaml"
SURPLUS = "binary_sensor.sbms_surplus_available"
DISCHARGE = "sensor.sbms_battery_power_discharging"
SOC = "sensor.sbms_soc"
LOADS = ["input_boolean.boiler", "input_boolean.pump"]


def test_blueprint_file_declares_what_users_and_home_assistant_need() -> None:
    meta = blueprint_meta(BLUEPRINT)
    assert meta["domain"] == "automation"
    assert meta["homeassistant"]["min_version"] == "2025.4.0"
    assert set(meta["input"]) == {
        "surplus_sensor",
        "battery_discharge_sensor",
        "soc_sensor",
        "loads",
        "min_soc",
        "max_discharge",
        "discharge_delay",
        "surplus_delay",
    }
    assert all(item.get("description") for item in meta["input"].values())
    assert meta["input"]["loads"]["selector"]["entity"]["multiple"] is True
    assert meta["source_url"].endswith("blueprints/automation/sbms/surplus_loads.yaml")


async def set_state(hass: HomeAssistant, entity_id: str, value: str) -> None:
    hass.states.async_set(entity_id, value)
    await hass.async_block_till_done()


def loads_state(hass: HomeAssistant) -> list[str]:
    return states_of(hass, LOADS)


@pytest.fixture
async def automation_from_blueprint(hass: HomeAssistant, tmp_path: Path) -> dict[str, Any]:
    """The blueprint copied where Home Assistant looks for it, and an automation using it."""
    await install_blueprint(hass, tmp_path, BLUEPRINT)
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"boiler": {}, "pump": {}}}
    )
    await set_state(hass, SURPLUS, STATE_OFF)
    await set_state(hass, DISCHARGE, "20")
    await set_state(hass, SOC, "97")
    return await set_up_automation(
        hass,
        "surplus",
        "Surplus loads",
        BLUEPRINT,
        {
            "surplus_sensor": SURPLUS,
            "battery_discharge_sensor": DISCHARGE,
            "soc_sensor": SOC,
            "loads": LOADS,
            "min_soc": 90,
            "max_discharge": 200,
            "discharge_delay": {"minutes": 2},
            "surplus_delay": {"seconds": 30},
        },
    )


async def test_surplus_switches_on_and_a_long_discharge_switches_off(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    state = hass.states.get("automation.surplus_loads")
    assert state is not None
    assert state.state == STATE_ON
    await set_state(hass, SURPLUS, STATE_ON)
    await later(hass, 20)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]  # the switch-on delay runs
    await later(hass, 31)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_state(hass, DISCHARGE, "500")
    await later(hass, 60)
    await set_state(hass, DISCHARGE, "50")  # a passing cloud, shorter than the time
    await later(hass, 600)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_state(hass, DISCHARGE, "500")
    await later(hass, 121)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]


async def test_soc_below_the_level_switches_off_and_blocks_switching_on(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    await set_state(hass, SURPLUS, STATE_ON)
    await later(hass, 31)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_state(hass, SOC, "89")
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
    await set_state(hass, SURPLUS, STATE_OFF)
    await set_state(hass, SURPLUS, STATE_ON)
    await later(hass, 31)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]


async def test_unavailable_sensors_switch_nothing_on(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    await set_state(hass, SOC, STATE_UNAVAILABLE)
    await set_state(hass, SURPLUS, STATE_ON)
    await later(hass, 31)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]


async def test_battery_power_unknown_for_the_discharge_time_switches_off(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    await set_state(hass, SURPLUS, STATE_ON)
    await later(hass, 31)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_state(hass, DISCHARGE, STATE_UNAVAILABLE)  # a blip shorter than the time
    await later(hass, 60)
    await set_state(hass, DISCHARGE, "20")
    await later(hass, 600)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_state(hass, DISCHARGE, STATE_UNAVAILABLE)
    await later(hass, 121)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
