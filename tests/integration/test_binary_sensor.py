"""Binary sensors of the sbms integration, fed by the fake agent through a real broker."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import partial

from homeassistant.components.binary_sensor import BinarySensorDeviceClass
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import HomeAssistant, State
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id


def entity_id(hass: HomeAssistant, key: str) -> str:
    found = er.async_get(hass).async_get_entity_id("binary_sensor", DOMAIN, unique_id(key))
    assert found is not None, f"no binary sensor with unique id shed_{key}"
    return found


def state_of(hass: HomeAssistant, key: str) -> State:
    state = hass.states.get(entity_id(hass, key))
    assert state is not None
    return state


def value(hass: HomeAssistant, key: str) -> str:
    return state_of(hass, key).state


async def test_values_map_the_documented_state(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    expected = {
        "connected": STATE_ON,
        "charge_allowed": STATE_ON,
        "load_allowed": STATE_ON,
        "problem": STATE_OFF,
        "output_extio3": STATE_ON,
        "output_extio4": STATE_ON,
        "output_extio5": STATE_OFF,
        "output_extio6": STATE_OFF,
        "low_soc_alarm": STATE_OFF,  # 63.4 % is above low_release (25 %)
        "high_soc_alarm": STATE_OFF,  # and below high_release (90 %)
    }
    assert {key: value(hass, key) for key in expected} == expected
    assert state_of(hass, "problem").attributes["faults"] == []
    assert (
        state_of(hass, "problem").attributes[ATTR_DEVICE_CLASS] == BinarySensorDeviceClass.PROBLEM
    )
    assert state_of(hass, "connected").attributes[ATTR_DEVICE_CLASS] == (
        BinarySensorDeviceClass.CONNECTIVITY
    )
    # One wording for both SoC alarms: on/off, no device class (issue 20).
    for alarm in ("low_soc_alarm", "high_soc_alarm"):
        assert ATTR_DEVICE_CLASS not in state_of(hass, alarm).attributes, alarm
    assert state_of(hass, "low_soc_alarm").name == "SBMS shed Low SoC alarm"
    assert state_of(hass, "high_soc_alarm").name == "SBMS shed High SoC alarm"
    assert "held_off_until" not in state_of(hass, "output_extio3").attributes
    # Outputs: on/off (not "power detected") and named with what they switch; the entity ids
    # stay those of the names without it.
    names = {
        entity_id(hass, f"output_{name}"): state_of(hass, f"output_{name}").name
        for name in ("extio3", "extio4", "extio5", "extio6")
    }
    assert names == {
        "binary_sensor.sbms_shed_output_extio3": "SBMS shed Output extio3 (loads)",
        "binary_sensor.sbms_shed_output_extio4": "SBMS shed Output extio4 (charge sources)",
        "binary_sensor.sbms_shed_output_extio5": "SBMS shed Output extio5 (signal)",
        "binary_sensor.sbms_shed_output_extio6": "SBMS shed Output extio6 (fault signal)",
    }
    assert ATTR_DEVICE_CLASS not in state_of(hass, "output_extio3").attributes
    assert state_of(hass, "charge_allowed").name == "SBMS shed Charging allowed"
    registry = er.async_get(hass)
    connected = registry.async_get(entity_id(hass, "connected"))
    assert connected is not None
    assert connected.entity_category is EntityCategory.DIAGNOSTIC


async def test_outputs_follow_the_announce(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["outputs"] = agent.announce["outputs"][:2]
    await agent.publish_all()
    await setup_box(agent)
    registry = er.async_get(hass)
    assert registry.async_get_entity_id("binary_sensor", DOMAIN, unique_id("output_extio4"))
    assert registry.async_get_entity_id("binary_sensor", DOMAIN, unique_id("output_extio5")) is None


async def test_faults_interlocks_and_holds(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await agent.set_state(
        faults=["over_voltage_lockout", "over_temperature"],
        interlocks=["over_voltage_lockout", "forced_off"],
        charge_allowed=False,
        outputs={"extio3": False, "extio4": False, "extio5": False, "extio6": True},
        forced_off={"extio3": 1780311600.5},
    )
    await wait_for(hass, lambda: value(hass, "problem") == STATE_ON)
    assert state_of(hass, "problem").attributes["faults"] == [
        "over_voltage_lockout",
        "over_temperature",
    ]
    assert value(hass, "charge_allowed") == STATE_OFF
    assert value(hass, "load_allowed") == STATE_ON
    assert value(hass, "output_extio3") == STATE_OFF
    assert value(hass, "output_extio6") == STATE_ON
    assert state_of(hass, "output_extio3").attributes["held_off_until"] == datetime(
        2026, 6, 1, 11, 0, 0, 500000, tzinfo=UTC
    )
    assert "held_off_until" not in state_of(hass, "output_extio4").attributes
    # The hold ends: the attribute goes.
    await agent.set_state(forced_off={}, faults=[])
    await wait_for(hass, lambda: value(hass, "problem") == STATE_OFF)
    assert "held_off_until" not in state_of(hass, "output_extio3").attributes


async def test_connected_stays_available_and_shows_offline(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: value(hass, "connected") == STATE_OFF)
    for key in ("charge_allowed", "problem", "output_extio3", "low_soc_alarm"):
        assert value(hass, key) == STATE_UNAVAILABLE, key
    await agent.set_online(True)
    await wait_for(hass, lambda: value(hass, "connected") == STATE_ON)
    assert value(hass, "charge_allowed") == STATE_ON


async def test_control_flags_stay_available_without_a_measurement(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Permissions and outputs are the agent's decisions: shown even while it measures nothing."""
    await setup_box(agent)
    await agent.set_state(
        measurement_ok=False, charge_allowed=False, interlocks=["measurement_stale"]
    )
    await wait_for(hass, lambda: value(hass, "charge_allowed") == STATE_OFF)
    assert value(hass, "output_extio3") == STATE_ON
    assert value(hass, "problem") == STATE_OFF


async def test_balancing_is_disabled_by_default_and_measured(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    registry = er.async_get(hass)
    for cell in range(1, 9):
        registry_entry = registry.async_get(entity_id(hass, f"balancing_{cell}"))
        assert registry_entry is not None
        assert registry_entry.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert registry_entry.entity_category is EntityCategory.DIAGNOSTIC
    await _enable(hass, entry, "balancing_1", "balancing_2")
    assert value(hass, "balancing_1") == STATE_OFF
    assert state_of(hass, "balancing_2").name == "SBMS shed Cell 2 balancing"
    await agent.set_state(balancing=[False, True] + [False] * 6)
    await wait_for(hass, lambda: value(hass, "balancing_2") == STATE_ON)
    await agent.set_state(measurement_ok=False)
    await wait_for(hass, lambda: value(hass, "balancing_2") == STATE_UNAVAILABLE)


async def test_balancing_in_one_entity(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """One on/off for the pack with the cells in an attribute: a logbook line per episode,
    not per cell (issue 20)."""
    await setup_box(agent)
    state = state_of(hass, "balancing_any")
    assert (state.name, state.state, state.attributes["cells"]) == (
        "SBMS shed Balancing",
        STATE_OFF,
        [],
    )
    await agent.set_state(balancing=[False, True, False, False, True, False, False, False])
    await wait_for(hass, lambda: value(hass, "balancing_any") == STATE_ON)
    assert state_of(hass, "balancing_any").attributes["cells"] == [2, 5]
    await agent.set_state(measurement_ok=False)
    await wait_for(hass, lambda: value(hass, "balancing_any") == STATE_UNAVAILABLE)


async def test_outputs_of_an_older_agent_are_named_by_their_type(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    for output in agent.announce["outputs"]:
        output.pop("wiring", None)
        output.pop("settable_types", None)
    await agent.publish_all()
    await setup_box(agent)
    assert state_of(hass, "output_extio3").name == "SBMS shed Output extio3 (loads)"
    assert state_of(hass, "output_extio4").name == "SBMS shed Output extio4 (charge sources)"
    assert state_of(hass, "output_extio5").name == "SBMS shed Output extio5 (unused)"


async def _enable(hass: HomeAssistant, entry: MockConfigEntry, *keys: str) -> None:
    registry = er.async_get(hass)
    for key in keys:
        registry.async_update_entity(entity_id(hass, key), disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)


async def test_soc_alarms_show_the_agents_decision(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The flags in `state` are the agent's answer, whatever the rounded SoC suggests."""
    await setup_box(agent)
    steps = [
        # (soc, high flag, low flag): the levels and hysteresis live in the agent
        (96.0, True, False),
        (92.0, True, False),
        (92.0, False, False),
        (19.0, False, True),
        (22.0, False, False),
    ]
    for soc, high, low in steps:
        await agent.set_state(soc=soc, high_soc_alarm=high, low_soc_alarm=low)
        expected = (STATE_ON if high else STATE_OFF, STATE_ON if low else STATE_OFF)
        await wait_for(hass, partial(_alarms_are, hass, expected))


def _alarms_are(hass: HomeAssistant, expected: tuple[str, str]) -> bool:
    return (value(hass, "high_soc_alarm"), value(hass, "low_soc_alarm")) == expected


async def test_a_state_without_alarm_flags_shows_them_unknown(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The flags were added within protocol 1, so a state may lack them: the alarms are then
    unknown, never guessed from the SoC, and the state is the only source (no event fallback:
    every agent released sends the flags)."""
    del agent.state["high_soc_alarm"], agent.state["low_soc_alarm"]
    await agent.publish_all()
    await setup_box(agent)
    assert value(hass, "high_soc_alarm") == STATE_UNKNOWN
    assert value(hass, "low_soc_alarm") == STATE_UNKNOWN
    await agent.set_state(high_soc_alarm=True, low_soc_alarm=False)
    await wait_for(hass, lambda: value(hass, "high_soc_alarm") == STATE_ON)
    assert value(hass, "low_soc_alarm") == STATE_OFF
