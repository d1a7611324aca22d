"""Command buttons against a fake agent on a real broker."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.button.const import DOMAIN as BUTTON_DOMAIN
from homeassistant.components.button.const import SERVICE_PRESS
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id

BUTTONS = {
    "mark_full": ("Mark battery full", None),
    "zero_current": ("Zero current calibration", EntityCategory.CONFIG),
    "clear_fault": ("Clear latched fault", None),
}
REASON = "must be below 12.5 A (5 % of the shunt rating) to calibrate (got 21.37 A)"


def _entity_id(hass: HomeAssistant, key: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(BUTTON_DOMAIN, DOMAIN, unique_id(key))


async def _press(hass: HomeAssistant, key: str) -> None:
    await hass.services.async_call(
        BUTTON_DOMAIN, SERVICE_PRESS, {ATTR_ENTITY_ID: _entity_id(hass, key)}, blocking=True
    )


def _reject_zero_current(suffix: str, _request: dict[str, Any]) -> list[dict[str, str]]:
    if suffix == "cmd/zero_current":
        return [{"field": "battery_current", "reason": REASON}]
    return []


async def test_one_button_per_announced_command(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    registry = er.async_get(hass)
    for key, (name, category) in BUTTONS.items():
        entity_id = _entity_id(hass, key)
        assert entity_id is not None, key
        entry = registry.async_get(entity_id)
        assert entry is not None
        assert entry.entity_category is category
        assert entry.translation_key == key
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == STATE_UNKNOWN  # never pressed
        assert state.attributes["friendly_name"] == f"SBMS shed {name}"
    assert len(hass.states.async_entity_ids(BUTTON_DOMAIN)) == len(BUTTONS)


@pytest.mark.parametrize("key", list(BUTTONS))
async def test_press_sends_the_command(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, key: str
) -> None:
    await setup_box(agent)
    await _press(hass, key)
    suffix, request = agent.requests[-1]
    assert suffix == f"cmd/{key}"
    assert set(request) == {"request_id"}  # the commands take no arguments
    state = hass.states.get(str(_entity_id(hass, key)))
    assert state is not None
    assert state.state != STATE_UNKNOWN  # the press time


async def test_refused_command_raises_the_agents_reason(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    agent.responder = _reject_zero_current
    with pytest.raises(HomeAssistantError) as caught:
        await _press(hass, "zero_current")
    assert caught.value.translation_key == "agent_rejected"
    assert REASON in str(caught.value)
    assert agent.requests[-1][0] == "cmd/zero_current"


async def test_only_announced_commands_get_buttons(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["capabilities"]["commands"] = ["set_soc", "mark_full"]
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    assert _entity_id(hass, "mark_full") is not None
    assert _entity_id(hass, "zero_current") is None
    assert _entity_id(hass, "clear_fault") is None
    assert len(hass.states.async_entity_ids(BUTTON_DOMAIN)) == 1


async def test_offline_agent_makes_buttons_unavailable_and_refuses_presses(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    entity_id = str(_entity_id(hass, "mark_full"))
    await agent.set_online(False)
    await wait_for(
        hass, lambda: getattr(hass.states.get(entity_id), "state", None) == "unavailable"
    )
    assert all(
        getattr(hass.states.get(other), "state", None) == STATE_UNAVAILABLE
        for other in hass.states.async_entity_ids(BUTTON_DOMAIN)
    )
    entity = hass.data[BUTTON_DOMAIN].get_entity(entity_id)
    with pytest.raises(HomeAssistantError) as caught:
        await entity.async_press()
    assert caught.value.translation_key == "agent_offline"
    assert agent.requests == []
