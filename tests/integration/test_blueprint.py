"""The optional-load-shedding blueprint, loaded through Home Assistant's blueprint machinery:
an automation made from it switches two input_booleans off below the level and back on above
the higher one, after its delays, and leaves them alone while SoC is unavailable."""

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

BLUEPRINT = "sbms/optional_load_shedding.yaml"
SOC = "sensor.battery_soc"
LOADS = ["input_boolean.heater", "input_boolean.pump"]


def test_blueprint_file_declares_what_users_and_home_assistant_need() -> None:
    meta = blueprint_meta(BLUEPRINT)
    assert meta["domain"] == "automation"
    assert meta["homeassistant"]["min_version"] == "2025.4.0"
    assert set(meta["input"]) == {
        "soc_sensor",
        "loads",
        "shed_below",
        "restore_above",
        "shed_delay",
        "restore_delay",
    }
    assert meta["input"]["soc_sensor"]["selector"]["entity"]["filter"] == [
        {"domain": "sensor", "device_class": "battery"}
    ]
    assert meta["input"]["loads"]["selector"]["entity"]["multiple"] is True
    assert meta["source_url"].endswith("blueprints/automation/sbms/optional_load_shedding.yaml")


async def set_soc(hass: HomeAssistant, value: str) -> None:
    hass.states.async_set(SOC, value, {"device_class": "battery", "unit_of_measurement": "%"})
    await hass.async_block_till_done()


def loads_state(hass: HomeAssistant) -> list[str]:
    return states_of(hass, LOADS)


@pytest.fixture
async def automation_from_blueprint(hass: HomeAssistant, tmp_path: Path) -> dict[str, Any]:
    """The blueprint copied where Home Assistant looks for it, and an automation using it."""
    await install_blueprint(hass, tmp_path, BLUEPRINT)
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"heater": {"initial": True}, "pump": {}}}
    )
    await hass.services.async_call("input_boolean", "turn_on", {"entity_id": LOADS[1]})
    await set_soc(hass, "70")
    return await set_up_automation(
        hass,
        "shedding",
        "Shed optional loads",
        BLUEPRINT,
        {
            "soc_sensor": SOC,
            "loads": LOADS,
            "shed_below": 30,
            "restore_above": 55,
            "shed_delay": {"seconds": 30},
            "restore_delay": {"minutes": 5},
        },
    )


async def test_automation_from_blueprint_sheds_and_restores(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    state = hass.states.get("automation.shed_optional_loads")
    assert state is not None
    assert state.state == STATE_ON
    assert loads_state(hass) == [STATE_ON, STATE_ON]
    await set_soc(hass, "29")
    await hass.async_block_till_done()
    await later(hass, 20)
    assert loads_state(hass) == [STATE_ON, STATE_ON]  # the switch-off delay runs
    await later(hass, 31)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
    for soc in ("40", "54.9", "35"):  # inside the band: nothing happens
        await set_soc(hass, soc)
        await later(hass, 600)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
    await set_soc(hass, "56")
    await later(hass, 4 * 60)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]  # the switch-on delay runs
    await later(hass, 5 * 60 + 1)
    assert loads_state(hass) == [STATE_ON, STATE_ON]


async def test_unavailable_soc_switches_nothing(
    hass: HomeAssistant, automation_from_blueprint: dict[str, Any]
) -> None:
    await set_soc(hass, "20")
    await later(hass, 31)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
    await set_soc(hass, STATE_UNAVAILABLE)
    await later(hass, 3600)
    assert loads_state(hass) == [STATE_OFF, STATE_OFF]
    await set_soc(hass, "90")
    await later(hass, 5 * 60 + 1)
    assert loads_state(hass) == [STATE_ON, STATE_ON]
