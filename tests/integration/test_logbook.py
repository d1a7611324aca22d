"""What a person reads in Home Assistant's logbook about a battery box (issue 20).

Real Home Assistant with its recorder and logbook, real mosquitto and the documented FakeAgent:
the entries are read back through the logbook's own websocket API, as the frontend reads them.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
)
from pytest_homeassistant_custom_component.typing import WebSocketGenerator

from custom_components.sbms.const import AGENT_EVENT_KINDS, DOMAIN, KIND_AGENT_OFFLINE
from custom_components.sbms.logbook import agent_event_message
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, example, unique_id


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: Any) -> None:
    """The recorder must be set up before `hass` exists (conftest's fixture asks for `hass`)."""


def _entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    """The entity of the documented box's description `key` (with its suffix)."""
    found = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id(key))
    assert found is not None, key
    return found


async def _logbook(
    hass: HomeAssistant, hass_ws_client: WebSocketGenerator, since: Any
) -> list[dict[str, Any]]:
    await hass.async_block_till_done()
    await async_wait_recording_done(hass)
    client = await hass_ws_client(hass)
    await client.send_json_auto_id(
        {
            "type": "logbook/get_events",
            "start_time": since.isoformat(),
            "end_time": (dt_util.utcnow() + timedelta(seconds=1)).isoformat(),
        }
    )
    response = await client.receive_json()
    assert response["success"], response
    entries: list[dict[str, Any]] = response["result"]
    return entries


async def test_agent_events_in_words_with_their_cause(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    agent: FakeAgent,
    setup_box: SetupBox,
) -> None:
    assert await async_setup_component(hass, "logbook", {})
    await setup_box(agent)
    events_entity = _entity_id(hass, "event", "events")
    since = dt_util.utcnow()
    sent = [
        ("hvd_trip", {"cell": 3, "voltage": 3.61}),
        ("hvd_release", {}),
        ("lvd_trip", {}),  # an older agent: no cell named
        ("fault_raised", {"fault": "over_voltage_lockout"}),
        ("soc_sync", {"from": 99.2, "to": 100.0, "reason": "hvd"}),
        ("dual_pv_level", {"from": 1, "to": 2}),
        ("low_soc_alarm", {}),
    ]
    for kind, detail in sent:
        await agent.send_event(kind, detail)
    await wait_for(hass, lambda: _attribute(hass, events_entity, "event_type") == "low_soc_alarm")
    entries = await _logbook(hass, hass_ws_client, since)
    described = [
        (entry["name"], entry["message"], entry.get("entity_id"))
        for entry in entries
        if entry.get("domain") == DOMAIN
    ]
    assert described == [
        ("SBMS shed", message, events_entity)
        for message in (
            "HVD: cell 3 reached 3.61 V, charging off",
            "HVD released: charging back on",
            "LVD: a cell fell to the low voltage disconnect level, loads off",
            "fault: over-voltage lockout (a cell above its lockout voltage)",
            "state of charge set from 99.2 % to 100 %: a cell reached the high voltage "
            "disconnect: full",
            "dual PV level 1 to 2",
            "Low SoC alarm on: the state of charge fell to its alarm level",
        )
    ]


async def test_outputs_and_balancing_read_as_on_and_off(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    agent: FakeAgent,
    setup_box: SetupBox,
) -> None:
    """An output's line says what it switches and on/off, never "detected power"; a balancing
    episode of three cells is one line on and one off, not six."""
    assert await async_setup_component(hass, "logbook", {})
    await setup_box(agent)
    charge = _entity_id(hass, "binary_sensor", "output_extio4")
    balancing = _entity_id(hass, "binary_sensor", "balancing_any")
    since = dt_util.utcnow()
    outputs = {"extio3": True, "extio4": False, "extio5": False, "extio6": False}
    await agent.set_state(outputs=outputs, balancing=[True, False, True, True] + [False] * 4)
    await wait_for(hass, lambda: _state(hass, charge) == "off")
    await wait_for(hass, lambda: _state(hass, balancing) == "on")
    await agent.set_state(outputs={**outputs, "extio4": True}, balancing=[False] * 8)
    await wait_for(hass, lambda: _state(hass, balancing) == "off")
    entries = await _logbook(hass, hass_ws_client, since)
    lines = {
        entity_id: [entry["state"] for entry in entries if entry.get("entity_id") == entity_id]
        for entity_id in (charge, balancing)
    }
    assert lines == {charge: ["off", "on"], balancing: ["on", "off"]}
    # The frontend names each line by the entity and words its on/off by the device class:
    # none here, so "turned on"/"turned off" (the power class said "detected power").
    assert _attribute(hass, charge, "friendly_name") == "SBMS shed Output extio4 (charge sources)"
    assert _attribute(hass, balancing, "friendly_name") == "SBMS shed Balancing"
    assert _attribute(hass, charge, "device_class") is None
    assert _attribute(hass, balancing, "device_class") is None


def test_every_event_kind_has_words() -> None:
    """No kind falls through to its machine name, with or without its detail."""
    for kind in (*AGENT_EVENT_KINDS, KIND_AGENT_OFFLINE):
        assert agent_event_message(kind, {}) != kind.replace("_", " "), kind
    assert agent_event_message("lvd_trip", {"cell": 7, "voltage": 2.5}) == (
        "LVD: cell 7 fell to 2.5 V, loads off"
    )
    assert agent_event_message("fault_cleared", {"fault": "measurement_failure"}) == (
        "fault cleared: measurement failure (no good reading from the box's sensors)"
    )


def _state(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


def _attribute(hass: HomeAssistant, entity_id: str, name: str) -> Any:
    state = hass.states.get(entity_id)
    return None if state is None else state.attributes.get(name)


async def test_a_surplus_load_switched_on_reads_in_words(
    hass: HomeAssistant,
    hass_ws_client: WebSocketGenerator,
    agent: FakeAgent,
    setup_box: SetupBox,
) -> None:
    """Issue 19: "Boiler switched on by surplus loads: <why>", against the load."""
    assert await async_setup_component(hass, "logbook", {})
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": {"boiler": {}}})
    data = {
        "entity_id": "input_boolean.boiler",
        "priority": 5,
        "min_soc": 90,
        "max_discharge_power": 100,
        "discharge_time": 60,
        "min_on_time": 0,
        "min_off_time": 0,
    }
    subentry = {
        "subentry_type": "surplus_load",
        "title": "Boiler",
        "unique_id": "input_boolean.boiler",
        "data": data,
    }
    await setup_box(agent, subentries_data=[subentry])
    since = dt_util.utcnow()
    agent.state["timestamp"] += 1
    await agent.set_state(soc=100.0, battery_power=0.0, diversion=example("state", 1)["diversion"])
    await wait_for(hass, lambda: hass.states.get("input_boolean.boiler").state == "on")  # type: ignore[union-attr]
    entries = await _logbook(hass, hass_ws_client, since)
    lines = [
        (entry.get("name"), entry.get("message"))
        for entry in entries
        if entry.get("entity_id") == "input_boolean.boiler" and entry.get("name") == "Boiler"
    ]
    assert lines == [
        ("Boiler", "switched on by surplus loads: the battery is full and PV would be thrown away")
    ]
