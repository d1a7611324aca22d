"""The "Battery events" event entity, fed by the fake agent's events through a real broker."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import pytest
from homeassistant.components.event import ATTR_EVENT_TYPE, ATTR_EVENT_TYPES
from homeassistant.const import EVENT_STATE_REPORTED, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import Event, EventStateReportedData, HomeAssistant, State, callback
from homeassistant.helpers import entity_registry as er

from custom_components.sbms.const import AGENT_EVENT_KINDS, DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id


def event_entity_id(hass: HomeAssistant) -> str:
    found = er.async_get(hass).async_get_entity_id("event", DOMAIN, unique_id("events"))
    assert found is not None
    return found


def current(hass: HomeAssistant) -> State:
    state = hass.states.get(event_entity_id(hass))
    assert state is not None
    return state


async def test_one_event_entity_with_every_agent_kind(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    state = current(hass)
    assert state.state == STATE_UNKNOWN  # nothing happened yet
    assert state.name == "SBMS shed Battery events"
    assert state.attributes[ATTR_EVENT_TYPES] == list(AGENT_EVENT_KINDS)


@pytest.mark.parametrize(
    ("kind", "detail"),
    [
        ("lvd_trip", {}),
        ("fault_raised", {"fault": "measurement_failure"}),
        ("dual_pv_level", {"from": 1, "to": 2}),
        ("soc_sync", {"from": 97.2, "to": 100.0, "reason": "end of charge"}),
    ],
)
async def test_agent_event_fires_with_its_detail(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    kind: str,
    detail: dict[str, object],
) -> None:
    await setup_box(agent)
    await agent.send_event(kind, detail)
    await wait_for(hass, lambda: current(hass).state != STATE_UNKNOWN)
    attributes = dict(current(hass).attributes)
    assert attributes.pop(ATTR_EVENT_TYPE) == kind
    attributes.pop(ATTR_EVENT_TYPES)
    attributes.pop("friendly_name")
    attributes.pop("icon", None)
    assert attributes == detail


async def test_unknown_and_malformed_events_are_skipped(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await setup_box(agent)
    await agent.send_event("hvd_trip")
    await wait_for(hass, lambda: current(hass).state != STATE_UNKNOWN)
    fired_at = current(hass).state
    caplog.set_level(logging.DEBUG, logger="custom_components.sbms")
    # A kind from a newer agent, then an event whose detail is not an object.
    await agent.send_event("battery_on_fire_drill")
    await agent.publish("event", {"kind": "lvd_trip", "timestamp": 1.0, "detail": []}, retain=False)
    await wait_for(hass, lambda: "event.detail" in caplog.text)
    assert "unknown event kind battery_on_fire_drill" in caplog.text
    assert current(hass).state == fired_at
    assert current(hass).attributes[ATTR_EVENT_TYPE] == "hvd_trip"


async def test_unavailable_while_offline_and_quiet_on_state_messages(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    entity = event_entity_id(hass)
    writes: list[Event[EventStateReportedData]] = []

    @callback
    def ours(event_data: Mapping[str, Any]) -> bool:
        return bool(event_data.get("entity_id") == entity)

    @callback
    def reported(event: Event[EventStateReportedData]) -> None:
        writes.append(event)

    unsubscribe = hass.bus.async_listen(EVENT_STATE_REPORTED, reported, event_filter=ours)
    try:
        # Telemetry does not concern the event entity: no state write per message.
        for soc in (63.5, 63.6, 63.7):
            await agent.set_state(soc=soc)
        await wait_for(hass, lambda: entry_soc(agent) == 63.7)
        assert writes == []
    finally:
        unsubscribe()
    await agent.set_online(False)
    await wait_for(hass, lambda: current(hass).state == STATE_UNAVAILABLE)
    await agent.set_online(True)
    await wait_for(hass, lambda: current(hass).state == STATE_UNKNOWN)


def entry_soc(agent: FakeAgent) -> float | None:
    entry = agent.hass.config_entries.async_entries(DOMAIN)[0]
    state = entry.runtime_data.coordinator.data.state
    return None if state is None else float(state.soc)
