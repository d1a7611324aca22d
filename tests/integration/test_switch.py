"""Hold-off and setting switches against a fake agent on a real broker."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.number.const import ATTR_VALUE, SERVICE_SET_VALUE
from homeassistant.components.number.const import DOMAIN as NUMBER_DOMAIN
from homeassistant.components.switch.const import DOMAIN as SWITCH_DOMAIN
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_registry import RegistryEntryDisabler

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id

HOLD_REASON = "extio4 is held by the installer's lock"
DEFAULT_HOLD_S = 8 * 3600


def _entity_id(hass: HomeAssistant, key: str, platform: str = SWITCH_DOMAIN) -> str | None:
    return er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id(key))


def _state(hass: HomeAssistant, key: str) -> str:
    state = hass.states.get(str(_entity_id(hass, key)))
    assert state is not None, key
    return state.state


async def _switch(hass: HomeAssistant, key: str, on: bool) -> None:
    await hass.services.async_call(
        SWITCH_DOMAIN,
        SERVICE_TURN_ON if on else SERVICE_TURN_OFF,
        {ATTR_ENTITY_ID: _entity_id(hass, key)},
        blocking=True,
    )


def _reject(suffix_to_reject: str, reason: str) -> Any:
    def responder(suffix: str, _request: dict[str, Any]) -> list[dict[str, str]]:
        return [{"field": "output", "reason": reason}] if suffix == suffix_to_reject else []

    return responder


async def test_hold_switches_only_for_outputs_a_hold_fits(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """extio3 (loads) and extio4 (charge) can be held; extio5 (unused), extio6 (fault) not."""
    await setup_box(agent)
    registry = er.async_get(hass)
    for output in ("extio3", "extio4"):
        entity_id = _entity_id(hass, f"hold_off_{output}")
        assert entity_id is not None
        entry = registry.async_get(entity_id)
        assert entry is not None
        assert entry.translation_key == "hold_off"
        assert entry.entity_category is None
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_OFF
        assert state.attributes["friendly_name"] == f"SBMS shed Hold {output} off"
    assert _entity_id(hass, "hold_off_extio5") is None
    assert _entity_id(hass, "hold_off_extio6") is None


async def test_hold_on_sends_force_off_and_shows_the_agents_state(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await _switch(hass, "hold_off_extio3", on=True)
    suffix, request = agent.requests[-1]
    assert suffix == "cmd/force_off"
    assert request == {
        "output": "extio3",
        "seconds": DEFAULT_HOLD_S,
        "request_id": request["request_id"],
    }
    # Accepted, but the agent's state does not say so yet: the switch shows the agent.
    await mqtt_settled(hass)
    assert _state(hass, "hold_off_extio3") == STATE_OFF

    until = agent.state["timestamp"] + DEFAULT_HOLD_S
    await agent.set_state(forced_off={"extio3": until})
    await wait_for(hass, lambda: _state(hass, "hold_off_extio3") == STATE_ON)
    assert _state(hass, "hold_off_extio4") == STATE_OFF

    await _switch(hass, "hold_off_extio3", on=False)
    suffix, request = agent.requests[-1]
    assert suffix == "cmd/cancel_force_off"
    assert request == {"output": "extio3", "request_id": request["request_id"]}
    assert _state(hass, "hold_off_extio3") == STATE_ON  # until the agent's next state
    await agent.set_state(forced_off={})
    await wait_for(hass, lambda: _state(hass, "hold_off_extio3") == STATE_OFF)


async def test_hold_uses_the_hold_duration_number(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await hass.services.async_call(
        NUMBER_DOMAIN,
        SERVICE_SET_VALUE,
        {ATTR_ENTITY_ID: _entity_id(hass, "hold_duration", NUMBER_DOMAIN), ATTR_VALUE: 2.5},
        blocking=True,
    )
    await _switch(hass, "hold_off_extio4", on=True)
    assert agent.requests[-1][1]["seconds"] == 9000
    assert agent.requests[-1][1]["output"] == "extio4"


async def test_hold_falls_back_to_the_default_when_the_duration_is_disabled(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    number_id = str(_entity_id(hass, "hold_duration", NUMBER_DOMAIN))
    er.async_get(hass).async_update_entity(number_id, disabled_by=RegistryEntryDisabler.USER)
    await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(
        hass, lambda: hass.states.get(str(_entity_id(hass, "hold_off_extio4"))) is not None
    )
    await wait_for(hass, lambda: _state(hass, "hold_off_extio4") == STATE_OFF)
    assert hass.states.get(number_id) is None
    await _switch(hass, "hold_off_extio4", on=True)
    assert agent.requests[-1][1]["seconds"] == DEFAULT_HOLD_S


async def test_refused_hold_raises_the_agents_reason_and_stays_off(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    agent.responder = _reject("cmd/force_off", HOLD_REASON)
    with pytest.raises(HomeAssistantError) as caught:
        await _switch(hass, "hold_off_extio4", on=True)
    assert caught.value.translation_key == "agent_rejected"
    assert HOLD_REASON in str(caught.value)
    await mqtt_settled(hass)
    assert _state(hass, "hold_off_extio4") == STATE_OFF


async def test_state_without_forced_off_is_not_held(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """An agent from before `forced_off` was added: no hold known, no error."""
    del agent.state["forced_off"]
    await agent.publish("state", agent.state)
    await setup_box(agent)
    assert _state(hass, "hold_off_extio3") == STATE_OFF


async def test_malformed_forced_off_keeps_the_last_good_state(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await agent.set_state(forced_off={"extio3": agent.state["timestamp"] + 60})
    await wait_for(hass, lambda: _state(hass, "hold_off_extio3") == STATE_ON)
    good = entry.runtime_data.coordinator.data.state
    await agent.set_state(forced_off=["extio3"])  # not an object: the message is dropped
    await mqtt_settled(hass)
    assert entry.runtime_data.coordinator.data.state is good
    assert _state(hass, "hold_off_extio3") == STATE_ON


async def test_hold_switches_follow_the_output_types(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Alarm and dual-PV outputs can be held too; nothing without the hold commands."""
    agent.announce["outputs"][2] = {"name": "extio5", "type": 3, "type_name": "high_soc"}
    agent.announce["outputs"][0] = {"name": "extio3", "type": 0, "type_name": "unused"}
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    assert _entity_id(hass, "hold_off_extio5") is not None
    assert _entity_id(hass, "hold_off_extio3") is None


@pytest.mark.parametrize(
    "commands",
    [["mark_full", "cancel_force_off"], ["mark_full", "force_off"]],
    ids=["no_force_off", "no_cancel_force_off"],
)
async def test_no_hold_switches_without_both_hold_commands(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, commands: list[str]
) -> None:
    agent.announce["capabilities"]["commands"] = commands
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    assert _entity_id(hass, "hold_off_extio3") is None
    assert _entity_id(hass, "hold_off_extio4") is None
    assert _entity_id(hass, "hold_duration", NUMBER_DOMAIN) is None


async def test_offline_agent_makes_switches_unavailable_and_refuses_holds(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: _state(hass, "hold_off_extio3") == STATE_UNAVAILABLE)
    assert _state(hass, "max_soc_enabled") == STATE_UNAVAILABLE
    entity = hass.data[SWITCH_DOMAIN].get_entity(str(_entity_id(hass, "hold_off_extio3")))
    with pytest.raises(HomeAssistantError) as caught:
        await entity.async_turn_on()
    assert caught.value.translation_key == "agent_offline"
    assert agent.requests == []


async def test_max_soc_switch_sends_config_and_shows_the_config_in_force(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    entry = er.async_get(hass).async_get(str(_entity_id(hass, "max_soc_enabled")))
    assert entry is not None
    assert entry.entity_category is EntityCategory.CONFIG
    assert _state(hass, "max_soc_enabled") == STATE_OFF

    await _switch(hass, "max_soc_enabled", on=True)
    assert agent.requests[-1] == (
        "config/set",
        {
            "config": {"max_soc": {"enabled": True}},
            "request_id": agent.requests[-1][1]["request_id"],
        },
    )
    assert _state(hass, "max_soc_enabled") == STATE_ON

    agent.responder = _reject("config/set", "max_soc.max_soc: must be between 10 and 100 %")
    with pytest.raises(HomeAssistantError) as caught:
        await _switch(hass, "max_soc_enabled", on=False)
    assert "must be between 10 and 100" in str(caught.value)
    await mqtt_settled(hass)
    assert _state(hass, "max_soc_enabled") == STATE_ON


async def test_lockouts_latch_switch_disabled_by_default_and_unknown_when_malformed(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    registry = er.async_get(hass)
    entity_id = str(_entity_id(hass, "lockouts_latch"))
    registry_entry = registry.async_get(entity_id)
    assert registry_entry is not None
    assert registry_entry.disabled_by is RegistryEntryDisabler.INTEGRATION
    registry.async_update_entity(entity_id, disabled_by=None)
    await hass.config_entries.async_reload(entry.entry_id)
    await wait_for(hass, lambda: getattr(hass.states.get(entity_id), "state", None) == STATE_OFF)

    await _switch(hass, "lockouts_latch", on=True)
    assert agent.requests[-1][1]["config"] == {"lockouts_latch": True}
    assert _state(hass, "lockouts_latch") == STATE_ON

    agent.config["lockouts_latch"] = "yes"
    await agent.publish("config", agent.config)
    await wait_for(hass, lambda: _state(hass, "lockouts_latch") == STATE_UNKNOWN)
