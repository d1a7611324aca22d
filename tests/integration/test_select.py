"""Output-type selects against a fake agent on a real broker: shown from the agent's config,
offering the types the box's wiring lets a remote client set."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.components.select import SERVICE_SELECT_OPTION
from homeassistant.const import ATTR_ENTITY_ID, STATE_UNAVAILABLE, STATE_UNKNOWN, EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import entity_registry as er

from custom_components.sbms.const import DOMAIN, OUTPUT_TYPE_NAMES
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id

# The fake box's settable types by name: extio3 a load, extio4 a charge source, extio5 a signal.
OPTIONS = {
    "extio3": ["unused", "lvd", "low_soc"],
    "extio4": ["unused", "hvd", "high_soc", "dual_pv"],
    "extio5": ["unused", "hvd", "lvd", "high_soc", "low_soc"],
}

REASON = "type 6 (dual PV) needs at least one type 1 (HVD) output"


def _find(hass: HomeAssistant, output: str) -> str | None:
    return er.async_get(hass).async_get_entity_id(
        SELECT_DOMAIN, DOMAIN, unique_id(f"output_type_{output}")
    )


def _entity_id(hass: HomeAssistant, output: str) -> str:
    entity_id = _find(hass, output)
    assert entity_id is not None, output
    return entity_id


def _options(hass: HomeAssistant, output: str) -> list[str]:
    state = hass.states.get(_entity_id(hass, output))
    assert state is not None
    return list(state.attributes["options"])


def _state(hass: HomeAssistant, output: str) -> str:
    state = hass.states.get(_entity_id(hass, output))
    assert state is not None
    return state.state


async def _select(hass: HomeAssistant, output: str, option: str) -> None:
    await hass.services.async_call(
        SELECT_DOMAIN,
        SERVICE_SELECT_OPTION,
        {ATTR_ENTITY_ID: _entity_id(hass, output), "option": option},
        blocking=True,
    )


def _reject_type_changes(suffix: str, request: dict[str, Any]) -> list[dict[str, str]]:
    if suffix == "config/set" and "outputs" in request["config"]:
        (name,) = request["config"]["outputs"]
        return [{"field": f"config.outputs.{name}.type", "reason": REASON}]
    return []


async def test_one_select_per_output_with_a_choice_showing_the_config_in_force(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    registry = er.async_get(hass)
    expected = {"extio3": "lvd", "extio4": "hvd", "extio5": "unused"}
    for output, option in expected.items():
        entity_id = _entity_id(hass, output)
        entry = registry.async_get(entity_id)
        assert entry is not None
        assert entry.entity_category is EntityCategory.CONFIG
        assert entry.translation_key == "output_type"
        state = hass.states.get(entity_id)
        assert state is not None
        assert state.state == option
        # Only the types the output's wiring allows, in type order.
        assert state.attributes["options"] == OPTIONS[output], output
        assert state.attributes["friendly_name"] == f"SBMS shed {output} type"
    # The fault output can only be the fault output (settable_types [5]): nothing to choose.
    assert _find(hass, "extio6") is None
    assert sorted(hass.states.async_entity_ids(SELECT_DOMAIN)) == sorted(
        _entity_id(hass, output) for output in expected
    )


async def test_a_type_the_wiring_forbids_is_refused_before_the_agent(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """A load type for the charge relay never leaves Home Assistant."""
    await setup_box(agent)
    for output, option in (("extio4", "lvd"), ("extio3", "dual_pv"), ("extio5", "fault")):
        with pytest.raises(ServiceValidationError):
            await _select(hass, output, option)
    assert agent.requests == []
    assert _state(hass, "extio4") == "hvd"


async def test_an_older_agent_gets_every_type_for_every_output(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """An announce without wiring and settable types: all seven types, the fault output too."""
    agent.as_older_agent()
    await agent.publish_all()
    entry = await setup_box(agent)
    assert all(
        o.settable_types is None for o in entry.runtime_data.coordinator.data.announce.outputs
    )
    for output in ("extio3", "extio4", "extio5", "extio6"):
        assert _options(hass, output) == list(OUTPUT_TYPE_NAMES), output
    assert _state(hass, "extio6") == "fault"


async def test_the_type_in_force_is_shown_even_if_not_settable(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The file may give a signal output the fault type; a remote client may not. The select
    still shows it (not unknown) and offers the settable types besides."""
    agent.announce["outputs"][2]["type"] = 5
    agent.announce["outputs"][2]["type_name"] = "fault"
    agent.config["outputs"][2]["type"] = 5
    await agent.publish_all()
    await setup_box(agent)
    assert _state(hass, "extio5") == "fault"
    assert _options(hass, "extio5") == [*OPTIONS["extio5"], "fault"]


async def test_a_select_follows_new_settable_types(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The file rewired extio5 to nothing: its select goes (and leaves no registry entry);
    rewired to a charge source, it comes back with the charge types."""
    entry = await setup_box(agent)
    entity_id = _entity_id(hass, "extio5")
    agent.announce["outputs"][2].update(wiring="none", settable_types=[0])
    await agent.publish("announce", agent.announce)
    # The announce changed which entities exist: the entry reloads.
    await wait_for(hass, lambda: _find(hass, "extio5") is None)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert hass.states.get(entity_id) is None
    assert _find(hass, "extio4") is not None

    agent.announce["outputs"][2].update(wiring="charge", settable_types=[0, 1, 3, 6])
    await agent.publish("announce", agent.announce)
    await wait_for(hass, lambda: _find(hass, "extio5") is not None)
    await wait_for(hass, lambda: hass.states.get(_entity_id(hass, "extio5")) is not None)
    assert _options(hass, "extio5") == ["unused", "hvd", "high_soc", "dual_pv"]


async def test_selecting_sends_config_set_and_shows_the_agents_answer(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    revision = agent.config["config_revision"]

    await _select(hass, "extio5", "high_soc")

    suffix, request = agent.requests[-1]
    assert suffix == "config/set"
    assert request["config"] == {"outputs": {"extio5": {"type": 3}}}
    assert request["request_id"].startswith("ha-")
    assert agent.config["config_revision"] == revision + 1
    # The fake agent republished its configuration before answering: the select shows it.
    assert _state(hass, "extio5") == "high_soc"


async def test_select_follows_the_agent_not_the_wish(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """A configuration the agent publishes on its own (file edited, another client) wins."""
    await setup_box(agent)
    agent.config["outputs"][2]["type"] = 6
    agent.config["config_revision"] += 1
    await agent.publish("config", agent.config)
    await wait_for(hass, lambda: _state(hass, "extio5") == "dual_pv")
    assert agent.requests == []


async def test_rejected_type_raises_the_agents_reason_and_keeps_the_option(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    agent.responder = _reject_type_changes

    with pytest.raises(HomeAssistantError) as caught:
        await _select(hass, "extio4", "unused")

    assert caught.value.translation_key == "agent_rejected"
    assert REASON in str(caught.value)
    assert "config.outputs.extio4.type" in str(caught.value)
    await mqtt_settled(hass)
    assert _state(hass, "extio4") == "hvd"
    assert agent.config["outputs"][1]["type"] == 1


async def test_an_older_agents_fault_output_is_not_blocked_in_home_assistant(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Without settable types the agent owns the output rules: the change goes to it."""
    agent.as_older_agent()
    await agent.publish_all()
    await setup_box(agent)
    await _select(hass, "extio6", "lvd")
    assert agent.requests[-1][1]["config"] == {"outputs": {"extio6": {"type": 2}}}
    assert _state(hass, "extio6") == "lvd"


async def test_unknown_option_is_refused_before_the_agent(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    with pytest.raises(ServiceValidationError):
        await _select(hass, "extio5", "turbo")
    assert agent.requests == []
    assert _state(hass, "extio5") == "unused"


async def test_offline_agent_makes_selects_unavailable_and_sends_nothing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: _state(hass, "extio3") == STATE_UNAVAILABLE)
    assert all(_state(hass, name) == STATE_UNAVAILABLE for name in ("extio4", "extio5"))

    # Home Assistant skips unavailable entities in service calls; the entity itself refuses.
    await _select(hass, "extio5", "lvd")
    entity = hass.data[SELECT_DOMAIN].get_entity(_entity_id(hass, "extio5"))
    with pytest.raises(HomeAssistantError) as caught:
        await entity.async_select_option("lvd")
    assert caught.value.translation_key == "agent_offline"
    assert agent.requests == []

    await agent.set_online(True)
    await wait_for(hass, lambda: _state(hass, "extio5") == "unused")


async def test_no_selects_when_the_agent_takes_no_remote_configuration(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["capabilities"]["config_set"] = False
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    assert hass.states.async_entity_ids(SELECT_DOMAIN) == []


async def test_announced_type_until_the_config_arrives_and_bad_config_is_unknown(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    await agent.publish("config", "")  # no retained configuration yet
    await mqtt_settled(hass)
    entry = agent.config_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    assert entry.runtime_data.coordinator.data.config is None
    assert _state(hass, "extio3") == "lvd"  # from the announce

    agent.config["outputs"][0]["type"] = "loads"  # malformed: not a type number
    agent.config["outputs"][1]["type"] = 9  # out of range
    await agent.publish("config", agent.config)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.config is not None)
    assert _state(hass, "extio3") == STATE_UNKNOWN
    assert _state(hass, "extio4") == STATE_UNKNOWN
    assert _state(hass, "extio5") == "unused"
