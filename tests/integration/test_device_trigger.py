"""Device triggers: listed per box, and real automations fired by the agent's MQTT events."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import voluptuous as vol
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.core import Event, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.setup import async_setup_component
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_capture_events,
    async_get_device_automations,
)

from custom_components.sbms import device_trigger
from custom_components.sbms.const import DOMAIN
from custom_components.sbms.identity import device_identifier
from tests.helpers.hass import SetupBox, box_device, wait_for
from tests.integration.fake_agent import FakeAgent, serial_for

EN_JSON = Path(device_trigger.__file__).parent / "translations" / "en.json"
FIRED = "sbms_test_automation_ran"


def _device_id(hass: HomeAssistant, agent_id: str = "shed") -> str:
    device = box_device(hass, device_identifier(serial_for(agent_id)))
    assert device is not None
    return device.id


async def _automation(hass: HomeAssistant, device_id: str, trigger_type: str) -> list[Event]:
    """One automation on the device trigger; it fires FIRED with what the trigger carried."""
    runs = async_capture_events(hass, FIRED)
    config: dict[str, Any] = {
        "automation": [
            {
                "alias": f"on {trigger_type}",
                "triggers": [
                    {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": device_id,
                        "type": trigger_type,
                    }
                ],
                "actions": [
                    {
                        "event": FIRED,
                        "event_data": {
                            "kind": "{{ trigger.event.data.kind }}",
                            "fault": "{{ trigger.event.data.fault | default('') }}",
                        },
                    }
                ],
            }
        ]
    }
    assert await async_setup_component(hass, "automation", config)
    await hass.async_block_till_done()
    return runs


def _types(triggers: list[dict[str, Any]]) -> set[str]:
    """The sbms triggers (the list also holds the entities' own state triggers)."""
    return {trigger["type"] for trigger in triggers if trigger["domain"] == DOMAIN}


async def test_triggers_listed_for_a_box_without_dual_pv(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    device_id = _device_id(hass)
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, device_id)
    assert _types(triggers) == set(device_trigger.BASE_TRIGGER_TYPES)
    assert "dual_pv_level" not in _types(triggers)
    assert all(t["device_id"] == device_id for t in triggers if t["domain"] == DOMAIN)


async def test_dual_pv_trigger_only_with_a_dual_pv_output(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["outputs"][2].update(type=6, type_name="dual_pv")
    await agent.publish("announce", agent.announce)
    await setup_box(agent)
    triggers = await async_get_device_automations(
        hass, DeviceAutomationType.TRIGGER, _device_id(hass)
    )
    assert _types(triggers) == set(device_trigger.TRIGGER_TYPES)


async def test_automation_runs_on_its_event_only(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    runs = await _automation(hass, _device_id(hass), "lvd_trip")

    await agent.send_event("hvd_trip")
    await agent.send_event("lvd_release")
    await agent.send_event("lvd_trip")
    await wait_for(hass, lambda: len(runs) >= 1)
    await hass.async_block_till_done()
    # Events arrive in order (QoS 1, one publisher): the two others were not matched.
    assert [run.data["kind"] for run in runs] == ["lvd_trip"]


async def test_fault_trigger_carries_the_fault_name(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    runs = await _automation(hass, _device_id(hass), "fault_raised")
    await agent.send_event("fault_raised", {"fault": "over_temperature"})
    await wait_for(hass, lambda: len(runs) == 1)
    assert runs[0].data == {"kind": "fault_raised", "fault": "over_temperature"}


async def test_offline_and_online_triggers(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    device_id = _device_id(hass)
    runs = await _automation(hass, device_id, "agent_offline")
    await agent.set_online(False)
    await wait_for(hass, lambda: len(runs) == 1)
    assert runs[0].data["kind"] == "agent_offline"

    online_runs = async_capture_events(hass, "sbms_event")
    await agent.set_online(True)
    await wait_for(hass, lambda: any(e.data["kind"] == "agent_online" for e in online_runs))
    assert len(runs) == 1  # the offline automation did not run again on return


async def test_other_box_events_do_not_trigger(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    other = FakeAgent(hass, agent_id="garage")
    await other.publish_all()
    await setup_box(other)
    runs = await _automation(hass, _device_id(hass, "shed"), "low_soc_alarm")
    await other.send_event("low_soc_alarm")
    await agent.send_event("low_soc_clear")
    seen = async_capture_events(hass, "sbms_event")
    await agent.send_event("high_soc_alarm")
    await wait_for(hass, lambda: any(e.data["kind"] == "high_soc_alarm" for e in seen))
    assert runs == []
    await other.clear_retained()


async def test_validation_rejects_unknown_types_and_devices(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    device_id = _device_id(hass)
    base = {"platform": "device", "domain": DOMAIN, "device_id": device_id}

    valid = await device_trigger.async_validate_trigger_config(hass, {**base, "type": "hvd_trip"})
    assert valid["type"] == "hvd_trip"
    with pytest.raises(vol.Invalid):
        await device_trigger.async_validate_trigger_config(hass, {**base, "type": "explode"})

    foreign = MockConfigEntry(domain="other")
    foreign.add_to_hass(hass)
    stranger = dr.async_get(hass).async_get_or_create(
        config_entry_id=foreign.entry_id, identifiers={("other", "x")}
    )
    with pytest.raises(InvalidDeviceAutomationConfig):
        await device_trigger.async_validate_trigger_config(
            hass, {**base, "device_id": stranger.id, "type": "hvd_trip"}
        )
    assert await device_trigger.async_get_triggers(hass, stranger.id) == []
    assert await device_trigger.async_get_triggers(hass, "no-such-device") == []


def test_every_trigger_type_is_translated() -> None:
    strings = json.loads(EN_JSON.read_text("utf-8"))["device_automation"]["trigger_type"]
    assert set(device_trigger.TRIGGER_TYPES) <= set(strings)
    assert all(strings[kind].strip() for kind in device_trigger.TRIGGER_TYPES)


async def test_a_box_not_loaded_offers_the_triggers_every_box_has(
    hass: HomeAssistant,
) -> None:
    """Its announce is runtime data: without it, no dual-PV trigger, and no crash."""
    entry = FakeAgent(hass).config_entry()
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={device_identifier(serial_for("shed"))}
    )
    triggers = await device_trigger.async_get_triggers(hass, device.id)
    assert {trigger["type"] for trigger in triggers} == set(device_trigger.BASE_TRIGGER_TYPES)
