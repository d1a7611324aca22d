"""PV diversion entities (issue 19) from `state.diversion`, fed by the fake agent through a real
broker and real Home Assistant. test_diversion_energy.py: the Energy dashboard takes them."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest
from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorDeviceClass, SensorStateClass
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    UnitOfEnergy,
    UnitOfPower,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er

from custom_components.sbms.binary_sensor import DIVERSION_SENSORS as DIVERSION_FLAGS
from custom_components.sbms.const import DOMAIN
from custom_components.sbms.models import Reading
from custom_components.sbms.sensor import DIVERSION_SENSORS
from edge_agent.mqtt.payloads import config_payload, encode, state_payload
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, example, unique_id
from tests.integration.test_history_fold import _record

SENSOR_KEYS = ("diverted_energy", "curtailed_energy", "diversion_power", "surplus_power")
FLAG_KEYS = ("diverting", "surplus_available")


def find(hass: HomeAssistant, key: str, platform: str = "sensor") -> str | None:
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id(key))


def state_of(hass: HomeAssistant, key: str, platform: str = "sensor") -> Any:
    entity_id = find(hass, key, platform)
    assert entity_id is not None, f"no {platform} {key}"
    state = hass.states.get(entity_id)
    assert state is not None
    return state


def diversion(**changes: Any) -> dict[str, Any]:
    """The documented diversion (example 2 of docs/protocol.md) with `changes`."""
    return {**example("state", 1)["diversion"], **changes}


async def publish(hass: HomeAssistant, agent: FakeAgent, **changes: Any) -> None:
    agent.state["timestamp"] += 1
    await agent.set_state(**changes)
    await wait_for(
        hass,
        lambda: (
            hass.config_entries.async_entries(DOMAIN)[
                0
            ].runtime_data.coordinator.data.state.timestamp
            == agent.state["timestamp"]
        ),
    )
    await hass.async_block_till_done()


def diversion_present(hass: HomeAssistant) -> bool:
    return all(find(hass, key) for key in SENSOR_KEYS) and all(
        find(hass, key, "binary_sensor") for key in FLAG_KEYS
    )


def test_every_numeric_diversion_sensor_has_a_display_precision() -> None:
    assert all(d.suggested_display_precision is not None for d in DIVERSION_SENSORS)
    assert {d.key for d in DIVERSION_SENSORS} >= set(SENSOR_KEYS)
    assert {d.key for d in DIVERSION_FLAGS} == set(FLAG_KEYS)


async def test_a_box_without_a_diversion_has_no_diversion_entities(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await publish(hass, agent, soc=70.0)
    for key in (*SENSOR_KEYS, "temperature_heater_tank"):
        assert find(hass, key) is None, key
    for key in FLAG_KEYS:
        assert find(hass, key, "binary_sensor") is None, key


async def test_diversion_entities_appear_with_the_first_state_that_carries_one(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    assert not diversion_present(hass)
    await publish(hass, agent, diversion=diversion())
    await wait_for(hass, lambda: diversion_present(hass))

    energy = state_of(hass, "diverted_energy")
    assert energy.state == "1.8304"  # 1830.4 Wh
    assert energy.attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.ENERGY
    assert energy.attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL_INCREASING
    assert energy.attributes[ATTR_UNIT_OF_MEASUREMENT] == UnitOfEnergy.KILO_WATT_HOUR
    assert energy.attributes["counted"] == "measured"
    assert energy.attributes["measured_energy_kwh"] == 1.8304
    assert energy.attributes["estimated_energy_kwh"] == 0.0
    curtailed = state_of(hass, "curtailed_energy")
    assert curtailed.state == "0.2129"
    assert curtailed.attributes["friendly_name"] == "SBMS shed Curtailed PV energy (estimated)"
    power = state_of(hass, "diversion_power")
    assert power.state == "512.3"
    assert power.attributes[ATTR_UNIT_OF_MEASUREMENT] == UnitOfPower.WATT
    assert power.attributes["measured"] is True
    surplus_w = state_of(hass, "surplus_power")
    assert surplus_w.state == "475.1"
    assert surplus_w.attributes["friendly_name"] == "SBMS shed Surplus power (estimated)"
    assert state_of(hass, "diverting", "binary_sensor").state == STATE_ON
    surplus = state_of(hass, "surplus_available", "binary_sensor")
    assert surplus.state == STATE_ON
    assert surplus.attributes["estimated_surplus_w"] == 475.1

    # Estimated, not diverting, no estimate: the surplus is unknown and not available.
    await publish(
        hass,
        agent,
        diversion=diversion(
            diverting=False,
            power_w=0.0,
            measured=False,
            available_w=None,
            counters={
                "diverted_wh": 2000.0,
                "diverted_measured_wh": 1830.4,
                "diverted_estimated_wh": 169.6,
                "curtailed_wh": 212.9,
            },
        ),
    )
    assert state_of(hass, "surplus_power").state == STATE_UNKNOWN
    assert state_of(hass, "surplus_available", "binary_sensor").state == STATE_OFF
    assert state_of(hass, "diverting", "binary_sensor").state == STATE_OFF
    energy = state_of(hass, "diverted_energy")
    assert energy.state == "2.0"
    assert energy.attributes["counted"] == "mixed"
    assert state_of(hass, "diversion_power").attributes["measured"] is False

    # Not diverting, but the disconnected arrays could give 120 W: surplus available.
    await publish(hass, agent, diversion=diversion(diverting=False, available_w=120.0))
    assert state_of(hass, "surplus_available", "binary_sensor").state == STATE_ON

    # Without a good measurement the powers are unavailable; the counters keep their values.
    await publish(hass, agent, measurement_ok=False)
    assert state_of(hass, "diversion_power").state == STATE_UNAVAILABLE
    assert state_of(hass, "surplus_power").state == STATE_UNAVAILABLE
    assert state_of(hass, "diverted_energy").state == "1.8304"


async def test_the_tank_temperature_appears_when_the_box_reports_one(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    assert find(hass, "temperature_heater_tank") is None
    temperatures = {**agent.state["temperatures"], "heater_tank": 48.25}
    await publish(hass, agent, temperatures=temperatures)
    await wait_for(hass, lambda: find(hass, "temperature_heater_tank") is not None)
    tank = state_of(hass, "temperature_heater_tank")
    assert float(tank.state) == pytest.approx(48.25)
    assert tank.attributes["friendly_name"] == "SBMS shed Heater tank temperature"


# --- one entity per sensor: the tank's thermistor on xT2 (issue 20) ------------------------------


def _tank_box(*, tank_on_xt2: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    """The real agent's config and state payloads for a simulated box whose xT2 reads its
    water tank (the demo's `--simulate --heater`); with `tank_on_xt2` false, the same box
    whose file does not say so: xT2 is a plain external temperature."""
    spec = BoxSpec(
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(tank=WaterTankSpec(draws=()), tank_sensor_on_xt2=True),
    )
    config = dataclasses.replace(simulated_config(spec), agent_id="shed")
    if not tank_on_xt2:
        diversion = dataclasses.replace(config.control.diversion, tank_temperature=None)
        config = dataclasses.replace(
            config, control=dataclasses.replace(config.control, diversion=diversion)
        )
    report = SimulatedSystem(spec, config).run(10.0)
    assert report is not None
    state = json.loads(
        encode(state_payload(report, tank_temperature=config.control.diversion.tank_temperature))
    )
    return config_payload(config, 1), state


async def _set_up_real_box(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, *, tank_on_xt2: bool
) -> dict[str, Any]:
    agent.config, agent.state = _tank_box(tank_on_xt2=tank_on_xt2)
    await agent.publish_all()
    entry = await setup_box(agent)
    await wait_for(
        hass,
        lambda: (
            (data := entry.runtime_data.coordinator.data).config is not None
            and data.state is not None
        ),
    )
    await hass.async_block_till_done()
    return agent.state


async def test_a_tank_on_xt2_is_one_entity_the_tanks(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The demo's box showed the same reading as External temperature 2 and Heater tank
    temperature: with `diversion.tank_temperature: external2` only the tank's is offered."""
    state = await _set_up_real_box(hass, agent, setup_box, tank_on_xt2=True)
    temperatures = state["temperatures"]
    assert temperatures["heater_tank"] is not None
    assert temperatures["external2"] == temperatures["heater_tank"]  # the agent keeps both
    await wait_for(hass, lambda: find(hass, "temperature_heater_tank") is not None)
    tank = state_of(hass, "temperature_heater_tank")
    assert float(tank.state) == pytest.approx(temperatures["heater_tank"])
    assert find(hass, "temperature_external2") is None
    # Later states do not bring it either.
    hotter = {**temperatures, "external2": 55.5, "heater_tank": 55.5}
    await publish(hass, agent, temperatures=hotter)
    assert float(state_of(hass, "temperature_heater_tank").state) == pytest.approx(55.5)
    assert find(hass, "temperature_external2") is None


async def test_xt2_without_a_tank_stays_external_temperature_2(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    state = await _set_up_real_box(hass, agent, setup_box, tank_on_xt2=False)
    assert "heater_tank" not in state["temperatures"]
    await wait_for(hass, lambda: find(hass, "temperature_external2") is not None)
    xt2 = state_of(hass, "temperature_external2")
    assert float(xt2.state) == pytest.approx(state["temperatures"]["external2"])
    assert xt2.attributes["friendly_name"] == "SBMS shed External temperature 2"
    assert find(hass, "temperature_heater_tank") is None


def test_the_tanks_statistics_gaps_are_filled_from_the_logs_xt2() -> None:
    """On a tank box the tank's entity is xT2's only one: the back-fill reads the data log's
    xT2 mean for it (the only input a tank may be read on)."""
    tank = next(d for d in DIVERSION_SENSORS if d.key == "temperature_heater_tank")
    assert tank.history_reading_fn is not None
    record = dataclasses.replace(_record(0.0, 120.0), external_temperatures=(25.0, 52.5))
    assert tank.history_reading_fn(record) == Reading.single(52.5)
