"""Threshold and setting numbers against a fake agent on a real broker."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.number import NumberDeviceClass, NumberMode
from homeassistant.components.number.const import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.components.number.const import DOMAIN as NUMBER_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_registry import RegistryEntryDisabler
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    mock_restore_cache_with_extra_data,
)

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id

# key -> (section, setting, value in the documented config example)
SETTINGS = {
    "threshold_hvd": ("thresholds", "hvd", 3.6),
    "threshold_hvd_reconnect": ("thresholds", "hvd_reconnect", 3.4),
    "threshold_eoc": ("thresholds", "eoc", 3.53),
    "threshold_lvd": ("thresholds", "lvd", 3.0),
    "threshold_lvd_reconnect": ("thresholds", "lvd_reconnect", 3.2),
    "threshold_ovlo": ("thresholds", "ovlo", 3.75),
    "threshold_uvlo": ("thresholds", "uvlo", 2.5),
    "threshold_lvd_delay_s": ("thresholds", "lvd_delay_s", 5.0),
    "threshold_hvd_delay_s": ("thresholds", "hvd_delay_s", 1.0),
    "soc_alarm_high": ("soc_alarms", "high", 95.0),
    "soc_alarm_high_release": ("soc_alarms", "high_release", 90.0),
    "soc_alarm_low": ("soc_alarms", "low", 20.0),
    "soc_alarm_low_release": ("soc_alarms", "low_release", 25.0),
    "temperature_charge_min": ("temperature", "charge_min", 0.0),
    "temperature_charge_max": ("temperature", "charge_max", 45.0),
    "temperature_discharge_min": ("temperature", "discharge_min", -20.0),
    "temperature_discharge_max": ("temperature", "discharge_max", 55.0),
    "max_soc": ("max_soc", "max_soc", 90.0),
    "publish_interval": ("publish", "interval_s", 30.0),
}
DISABLED_BY_DEFAULT = {
    "threshold_ovlo",
    "threshold_uvlo",
    "threshold_hvd_delay_s",
    "publish_interval",
}
REASON = "must be at least 0.1 V below thresholds.hvd, HVD hysteresis (got 3.5 and 3.6)"
# (min, max) of each number in the fake agent's remote window, and without one.
WINDOW = {
    "threshold_hvd": (3.45, 3.6),
    "threshold_lvd": (3.0, 3.2),
    "threshold_lvd_delay_s": (1.0, 30.0),
    "threshold_hvd_delay_s": (0.0, 5.0),
    "temperature_charge_min": (0.0, 10.0),
    "temperature_discharge_min": (-20.0, 0.0),
    "temperature_discharge_max": (45.0, 55.0),
    "soc_alarm_low": (0.0, 100.0),
    "max_soc": (10.0, 100.0),
}
OWN_RANGES = {
    "threshold_hvd": (2.0, 4.3),
    "threshold_lvd": (2.0, 4.3),
    "temperature_charge_min": (-40.0, 125.0),
    "soc_alarm_low": (0.0, 100.0),
    "max_soc": (10.0, 100.0),
}


def _entity_id(hass: HomeAssistant, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(NUMBER_DOMAIN, DOMAIN, unique_id(key))
    assert entity_id is not None, key
    return entity_id


def _state(hass: HomeAssistant, key: str) -> State:
    state = hass.states.get(_entity_id(hass, key))
    assert state is not None, key
    return state


async def _set(hass: HomeAssistant, key: str, value: float) -> None:
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: _entity_id(hass, key), ATTR_VALUE: value},
        blocking=True,
    )


async def _enable_all(hass: HomeAssistant, entry_id: str) -> None:
    """Enable the numbers that are disabled by default, and reload so they exist."""
    registry = er.async_get(hass)
    for key in DISABLED_BY_DEFAULT:
        registry.async_update_entity(_entity_id(hass, key), disabled_by=None)
    await hass.config_entries.async_reload(entry_id)
    await wait_for(hass, lambda: hass.states.get(_entity_id(hass, "threshold_ovlo")) is not None)
    # After the reload, status, announce, config and state arrive one by one: wait for all.
    await wait_for(
        hass,
        lambda: (
            _state(hass, "threshold_ovlo").state not in (STATE_UNAVAILABLE, STATE_UNKNOWN)
            and _state(hass, "publish_interval").state not in (STATE_UNAVAILABLE, STATE_UNKNOWN)
        ),
    )


def _revision(entry: MockConfigEntry) -> int | None:
    config = entry.runtime_data.coordinator.data.config
    return None if config is None else int(config.revision)


def _reject_hvd_reconnect(suffix: str, request: dict[str, Any]) -> list[dict[str, str]]:
    if request.get("config", {}).get("thresholds", {}).get("hvd_reconnect") is not None:
        return [{"field": "config.thresholds.hvd_reconnect", "reason": REASON}]
    return []


async def test_numbers_show_the_config_in_force(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    registry = er.async_get(hass)
    for key in DISABLED_BY_DEFAULT:
        registry_entry = registry.async_get(_entity_id(hass, key))
        assert registry_entry is not None
        assert registry_entry.disabled_by is RegistryEntryDisabler.INTEGRATION
        assert hass.states.get(_entity_id(hass, key)) is None
    await _enable_all(hass, entry.entry_id)

    for key, (_section, _setting, value) in SETTINGS.items():
        state = _state(hass, key)
        assert float(state.state) == value, key
        assert state.attributes["mode"] == NumberMode.BOX
        registry_entry = registry.async_get(state.entity_id)
        assert registry_entry is not None
        assert registry_entry.translation_key == key
        expected = EntityCategory.DIAGNOSTIC if key == "publish_interval" else EntityCategory.CONFIG
        assert registry_entry.entity_category is expected, key

    hvd = _state(hass, "threshold_hvd")
    assert hvd.attributes["friendly_name"] == "SBMS shed High voltage disconnect (HVD)"
    assert hvd.attributes["device_class"] == NumberDeviceClass.VOLTAGE
    assert hvd.attributes[ATTR_UNIT_OF_MEASUREMENT] == "V"
    # The range is the box's remote window.
    assert (hvd.attributes["min"], hvd.attributes["max"], hvd.attributes["step"]) == (
        3.45,
        3.6,
        0.001,
    )
    assert _state(hass, "temperature_charge_max").attributes[ATTR_UNIT_OF_MEASUREMENT] == "°C"
    assert _state(hass, "soc_alarm_low").attributes[ATTR_UNIT_OF_MEASUREMENT] == "%"
    # The window has no `publish` section: the integration's own range.
    assert _state(hass, "publish_interval").attributes["max"] == 3600

    for key in ("threshold_lvd_delay_s", "threshold_hvd_delay_s"):
        delay = _state(hass, key)
        assert delay.attributes["device_class"] == NumberDeviceClass.DURATION, key
        assert delay.attributes[ATTR_UNIT_OF_MEASUREMENT] == "s", key
    assert _state(hass, "threshold_lvd_delay_s").attributes["friendly_name"] == (
        "SBMS shed LVD delay"
    )
    discharge = _state(hass, "temperature_discharge_max")
    assert discharge.attributes["friendly_name"] == "SBMS shed Maximum discharge temperature"
    assert discharge.attributes["device_class"] == NumberDeviceClass.TEMPERATURE
    assert discharge.attributes[ATTR_UNIT_OF_MEASUREMENT] == "°C"


def _range(hass: HomeAssistant, key: str) -> tuple[float, float]:
    attributes = _state(hass, key).attributes
    return attributes["min"], attributes["max"]


async def test_ranges_follow_the_remote_window(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    for key, window in WINDOW.items():
        if key not in DISABLED_BY_DEFAULT:
            assert _range(hass, key) == window, key

    # The file's window changed (the agent restarted with it): the ranges follow.
    agent.config["remote_window"]["thresholds"]["lvd"] = [2.9, 3.1]
    agent.config["config_revision"] += 1
    await agent.publish("config", agent.config)
    await wait_for(hass, lambda: _range(hass, "threshold_lvd") == (2.9, 3.1))
    assert _range(hass, "threshold_hvd") == (3.45, 3.6)

    # A setting the window leaves out, or a malformed entry: the integration's own range.
    del agent.config["remote_window"]["thresholds"]["hvd"]
    agent.config["remote_window"]["thresholds"]["lvd"] = [3.1, 2.9]  # lowest above highest
    agent.config["remote_window"]["temperature"]["charge_min"] = "0-10"
    agent.config["config_revision"] += 1
    await agent.publish("config", agent.config)
    revision = agent.config["config_revision"]
    await wait_for(hass, lambda: _revision(entry) == revision)
    assert _range(hass, "threshold_hvd") == OWN_RANGES["threshold_hvd"]
    assert _range(hass, "threshold_lvd") == OWN_RANGES["threshold_lvd"]
    assert _range(hass, "temperature_charge_min") == OWN_RANGES["temperature_charge_min"]


async def test_an_older_agent_keeps_the_integrations_ranges(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """No remote window, no trip delays, no discharge window: the numbers work as before,
    and the ones it has no setting for are unavailable, not unknown."""
    agent.as_older_agent()
    await agent.publish_all()
    await setup_box(agent)
    for key, window in OWN_RANGES.items():
        assert _range(hass, key) == window, key
    assert float(_state(hass, "threshold_hvd").state) == 3.6
    for key in ("threshold_lvd_delay_s", "temperature_discharge_min", "temperature_discharge_max"):
        assert _state(hass, key).state == STATE_UNAVAILABLE, key
    await _set(hass, "threshold_hvd", 3.7)  # inside the old range: the agent decides
    assert agent.requests[-1][1]["config"] == {"thresholds": {"hvd": 3.7}}


async def test_trip_delays_and_discharge_limits_are_sent_to_the_agent(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await _set(hass, "threshold_lvd_delay_s", 12.5)
    assert agent.requests[-1][1]["config"] == {"thresholds": {"lvd_delay_s": 12.5}}
    assert float(_state(hass, "threshold_lvd_delay_s").state) == 12.5
    await _set(hass, "temperature_discharge_min", -10)
    assert agent.requests[-1][1]["config"] == {"temperature": {"discharge_min": -10}}
    assert float(_state(hass, "temperature_discharge_min").state) == -10.0
    with pytest.raises(ServiceValidationError):
        await _set(hass, "threshold_lvd_delay_s", 0.5)  # the window starts at 1 s
    with pytest.raises(ServiceValidationError):
        await _set(hass, "temperature_discharge_max", 60)
    assert len(agent.requests) == 2


async def test_setting_a_threshold_sends_config_set_and_follows_the_agent(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await _set(hass, "threshold_hvd", 3.55)
    suffix, request = agent.requests[-1]
    assert suffix == "config/set"
    assert request["config"] == {"thresholds": {"hvd": 3.55}}
    assert float(_state(hass, "threshold_hvd").state) == 3.55

    await _set(hass, "soc_alarm_low", 15)
    assert agent.requests[-1][1]["config"] == {"soc_alarms": {"low": 15}}
    assert float(_state(hass, "soc_alarm_low").state) == 15.0


async def test_number_follows_the_agent_not_the_wish(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The agent accepted, but its configuration in force says otherwise: that is shown."""
    await setup_box(agent)
    original_merge = agent._merge_config

    def merge_clamped(changes: dict[str, Any]) -> None:
        original_merge(changes)
        agent.config["thresholds"]["lvd"] = 3.05  # e.g. the agent rounded to its own grid

    agent._merge_config = merge_clamped  # type: ignore[method-assign]
    await _set(hass, "threshold_lvd", 3.04)
    assert agent.requests[-1][1]["config"] == {"thresholds": {"lvd": 3.04}}
    assert float(_state(hass, "threshold_lvd").state) == 3.05


async def test_rejected_threshold_raises_the_agents_reason_and_keeps_the_value(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    agent.responder = _reject_hvd_reconnect
    with pytest.raises(HomeAssistantError) as caught:
        await _set(hass, "threshold_hvd_reconnect", 3.5)
    assert caught.value.translation_key == "agent_rejected"
    assert REASON in str(caught.value)
    await mqtt_settled(hass)
    assert float(_state(hass, "threshold_hvd_reconnect").state) == 3.4
    assert agent.config["thresholds"]["hvd_reconnect"] == 3.4


async def test_out_of_range_value_is_refused_before_the_agent(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    with pytest.raises(ServiceValidationError):
        await _set(hass, "threshold_hvd", 5.0)
    with pytest.raises(ServiceValidationError) as caught:
        await _set(hass, "threshold_hvd", 3.62)  # within the cells' limits, not the window
    # What the user reads (docs/integration.md quotes it).
    assert caught.value.translation_placeholders == {
        "value": 3.62,
        "entity_id": "number.sbms_shed_high_voltage_disconnect_hvd",
        "min_value": "3.45",
        "max_value": "3.6",
    }
    with pytest.raises(ServiceValidationError):
        await _set(hass, "soc_alarm_high", 101)
    assert agent.requests == []


async def test_offline_agent_makes_numbers_unavailable_and_refuses_changes(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: _state(hass, "threshold_hvd").state == STATE_UNAVAILABLE)
    assert _state(hass, "hold_duration").state == STATE_UNAVAILABLE
    entity = hass.data[NUMBER_DOMAIN].get_entity(_entity_id(hass, "threshold_hvd"))
    with pytest.raises(HomeAssistantError) as caught:
        await entity.async_set_native_value(3.55)
    assert caught.value.translation_key == "agent_offline"
    assert agent.requests == []


async def test_malformed_and_missing_settings_are_unknown(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    agent.config["thresholds"]["hvd"] = "high"
    agent.config["thresholds"]["eoc"] = True
    del agent.config["soc_alarms"]
    agent.config["config_revision"] += 1
    await agent.publish("config", agent.config)
    revision = agent.config["config_revision"]
    await wait_for(hass, lambda: _revision(entry) == revision)
    assert _state(hass, "threshold_hvd").state == STATE_UNKNOWN
    assert _state(hass, "threshold_eoc").state == STATE_UNKNOWN
    assert _state(hass, "soc_alarm_high").state == STATE_UNKNOWN
    assert float(_state(hass, "threshold_lvd").state) == 3.0


async def test_imax_only_with_a_dual_pv_output_and_temperatures_only_with_a_battery_sensor(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    registry = er.async_get(hass)
    entry = await setup_box(agent)
    # The documented box has no type 6 output.
    assert registry.async_get_entity_id(NUMBER_DOMAIN, DOMAIN, unique_id("dual_pv_imax")) is None
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_remove(entry.entry_id)

    agent.announce["outputs"][2] = {"name": "extio5", "type": 6, "type_name": "dual_pv"}
    agent.config["outputs"][2]["type"] = 6
    agent.announce["measurements"]["temperatures"] = ["internal"]
    await agent.publish_all()
    await mqtt_settled(hass)
    await setup_box(agent)
    assert float(_state(hass, "dual_pv_imax").state) == 50.0
    assert _state(hass, "dual_pv_imax").attributes[ATTR_UNIT_OF_MEASUREMENT] == "A"
    for key in ("charge_min", "charge_max", "discharge_min", "discharge_max"):
        assert (
            registry.async_get_entity_id(NUMBER_DOMAIN, DOMAIN, unique_id(f"temperature_{key}"))
            is None
        ), key
    # The trip delays do not depend on a sensor.
    assert _entity_id(hass, "threshold_lvd_delay_s")
    await _set(hass, "dual_pv_imax", 40)
    assert agent.requests[-1][1]["config"] == {"dual_pv": {"imax": 40}}
    assert float(_state(hass, "dual_pv_imax").state) == 40.0


async def test_no_setting_numbers_without_remote_configuration(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["capabilities"]["config_set"] = False
    agent.announce["capabilities"]["commands"] = ["mark_full"]
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    assert hass.states.async_entity_ids(NUMBER_DOMAIN) == []


async def test_hold_duration_is_a_home_assistant_setting_restored_after_restart(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    state = _state(hass, "hold_duration")
    assert float(state.state) == 8.0
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == "h"
    assert state.attributes["max"] == 168.0
    await _set(hass, "hold_duration", 2.5)
    assert float(_state(hass, "hold_duration").state) == 2.5
    assert agent.requests == []  # nothing goes to the agent
    with pytest.raises(ServiceValidationError):
        await _set(hass, "hold_duration", 200)


@pytest.mark.parametrize(("stored", "shown"), [(3.0, 3.0), (500.0, 168.0)])
async def test_hold_duration_restores_its_value_within_the_limits(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, stored: float, shown: float
) -> None:
    mock_restore_cache_with_extra_data(
        hass,
        [
            (
                State("number.sbms_shed_hold_duration", str(stored)),
                {
                    "native_max_value": 168.0,
                    "native_min_value": 0.25,
                    "native_step": 0.25,
                    "native_unit_of_measurement": "h",
                    "native_value": stored,
                },
            )
        ],
    )
    await setup_box(agent)
    assert _entity_id(hass, "hold_duration") == "number.sbms_shed_hold_duration"
    assert float(_state(hass, "hold_duration").state) == shown
