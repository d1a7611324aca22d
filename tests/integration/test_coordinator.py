"""The coordinator against a real broker: availability, bad payloads, requests, announce changes
and the `sbms_event` bus events."""

from __future__ import annotations

import logging
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import mqtt
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_capture_events

from custom_components.sbms.const import DOMAIN, EVENT_SBMS
from custom_components.sbms.coordinator import (
    AgentRejectedError,
    AgentRequestError,
    SbmsCoordinator,
)
from custom_components.sbms.models import AgentEvent
from tests.helpers.hass import SetupBox, box_device, mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.integration.fake_agent import DEVICE_IDENTIFIER, FakeAgent, unique_id

LOGGER_NAME = "custom_components.sbms"


# The connectivity binary sensor stays available on purpose: it is what shows the loss.
CONNECTED_UNIQUE_ID = unique_id("connected")


def _states(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    """unique id -> state of every enabled entity of the entry but the connectivity one."""
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    return {
        e.unique_id: hass.states.get(e.entity_id).state  # type: ignore[union-attr]
        for e in entities
        if not e.disabled
        and e.unique_id != CONNECTED_UNIQUE_ID
        and hass.states.get(e.entity_id) is not None
    }


def _connected(hass: HomeAssistant) -> str | None:
    entity_id = er.async_get(hass).async_get_entity_id("binary_sensor", DOMAIN, CONNECTED_UNIQUE_ID)
    state = hass.states.get(entity_id) if entity_id else None
    return state.state if state else None


def _log_lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [r.getMessage() for r in caplog.records if text in r.getMessage()]


# --- availability --------------------------------------------------------------------------


async def test_offline_makes_everything_unavailable_with_one_log_line_each_way(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    assert coordinator.data.available
    states = _states(hass, entry)
    assert states, "the platforms made no entities"
    assert STATE_UNAVAILABLE not in states.values()

    await agent.set_online(False)
    await wait_for(hass, lambda: not coordinator.data.available)
    await agent.set_online(False)  # the will again (e.g. a retained replay): no new line
    await mqtt_settled(hass)
    assert set(_states(hass, entry).values()) == {STATE_UNAVAILABLE}
    assert _connected(hass) == STATE_OFF
    assert len(_log_lines(caplog, "shed is offline")) == 1

    await agent.set_online(True)
    await wait_for(hass, lambda: coordinator.data.available)
    await agent.set_online(True)
    await mqtt_settled(hass)
    assert STATE_UNAVAILABLE not in _states(hass, entry).values()
    assert _connected(hass) == STATE_ON
    assert len(_log_lines(caplog, "shed is back online")) == 1
    assert len(_log_lines(caplog, "shed is offline")) == 1


async def test_retained_offline_at_setup_is_not_announced_as_a_loss(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger=LOGGER_NAME)
    await agent.set_online(False)
    entry = await setup_box(agent)
    await mqtt_settled(hass)
    assert not entry.runtime_data.coordinator.data.available
    assert _log_lines(caplog, "shed is offline") == []
    await agent.set_online(True)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.available)
    # The first "online" is not a return: nothing was lost that a user saw go.
    assert _log_lines(caplog, "back online") == []


async def test_broker_loss_makes_entities_unavailable_until_reconnected(
    hass: HomeAssistant,
    mqtt_broker: MosquittoBroker,
    agent: FakeAgent,
    setup_box: SetupBox,
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    with patch("homeassistant.components.mqtt.client.RECONNECT_INTERVAL_SECONDS", 0.2):
        mqtt_broker.kill()
        await wait_for(hass, lambda: not coordinator.data.broker_connected)
        assert not coordinator.data.available
        assert coordinator.data.online  # the agent never said it went: only the link did
        assert set(_states(hass, entry).values()) == {STATE_UNAVAILABLE}
        assert _connected(hass) == STATE_OFF
        with pytest.raises(AgentRequestError) as err:
            await coordinator.async_command("mark_full")
        assert err.value.translation_key == "agent_offline"

        mqtt_broker.start()
        await wait_for(hass, lambda: mqtt.is_connected(hass), timeout_s=20)
        await wait_for(hass, lambda: coordinator.data.available)
    assert STATE_UNAVAILABLE not in _states(hass, entry).values()


# --- bad payloads --------------------------------------------------------------------------

BAD_PAYLOADS: list[tuple[str, Any, str]] = [
    ("state", "{not json", "state: not JSON"),
    ("state", "[1, 2]", "state: not a JSON object"),
    ("state", {"soc": "high"}, "state.temperatures: missing"),
    ("config", {"config_revision": "3", "thresholds": {}, "outputs": []}, "config.config_revision"),
    ("config", {"config_revision": 3, "outputs": []}, "config.thresholds: missing"),
    ("announce", {"protocol_version": 1, "agent_id": "shed"}, "announce.measurements: missing"),
    ("announce", {"protocol_version": "one"}, "announce.protocol_version"),
    ("event", {"kind": "lvd_trip", "timestamp": 1.0}, "event.detail: missing"),
    ("event", {"kind": 7, "timestamp": 1.0, "detail": {}}, "event.kind"),
]


@pytest.mark.parametrize("case", BAD_PAYLOADS, ids=[case[2] for case in BAD_PAYLOADS])
async def test_bad_payload_is_logged_by_field_and_ignored(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
    case: tuple[str, Any, str],
) -> None:
    suffix, payload, logged = case
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    before = coordinator.data
    fired = async_capture_events(hass, EVENT_SBMS)

    await agent.publish(suffix, payload, retain=suffix != "event")
    await wait_for(hass, lambda: bool(_log_lines(caplog, logged)))

    record = next(r for r in caplog.records if logged in r.getMessage())
    assert record.levelno == logging.WARNING
    assert f"ignoring {suffix}" in record.getMessage()
    assert coordinator.data.state == before.state
    assert coordinator.data.config == before.config
    assert coordinator.data.announce == before.announce
    assert coordinator.data.available
    assert fired == []


async def test_bad_state_then_good_state_is_taken(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await agent.publish("state", {**agent.state, "cells": ["3.3"]})
    await agent.set_state(soc=12.5)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state.soc == 12.5)


async def test_malformed_result_is_ignored_and_the_request_times_out(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = await setup_box(agent)
    agent.stop_answering()
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    await agent.publish("config/result", {"request_id": "x", "status": "maybe"}, retain=False)
    await wait_for(hass, lambda: bool(_log_lines(caplog, "ignoring result")))
    assert "result.errors: missing" in _log_lines(caplog, "ignoring result")[0]
    with (
        patch.object(entry.runtime_data.coordinator.client, "timeout_s", 0.5),
        pytest.raises(AgentRequestError) as err,
    ):
        await coordinator.async_command("mark_full")
    assert err.value.translation_key == "agent_timeout"


# --- requests ------------------------------------------------------------------------------


async def test_config_set_accepted_round_trip(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    revision = coordinator.data.config.revision  # type: ignore[union-attr]

    result = await coordinator.async_set_config({"thresholds": {"hvd": 3.55}})

    assert result.accepted
    assert result.config_revision == revision + 1
    suffix, request = agent.requests[-1]
    assert suffix == "config/set"
    assert request["config"] == {"thresholds": {"hvd": 3.55}}
    assert request["request_id"].startswith("ha-")
    await wait_for(hass, lambda: coordinator.data.config.revision == revision + 1)  # type: ignore[union-attr]
    assert coordinator.data.config.value("thresholds", "hvd") == 3.55  # type: ignore[union-attr]


async def test_rejected_request_carries_the_agents_reason(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    agent.responder = lambda suffix, request: [
        {"field": "config.thresholds.hvd", "reason": "must be above thresholds.eoc"}
    ]

    with pytest.raises(AgentRejectedError) as err:
        await coordinator.async_set_config({"thresholds": {"hvd": 3.0}})

    assert err.value.translation_key == "agent_rejected"
    assert err.value.translation_placeholders == {
        "reason": "config.thresholds.hvd: must be above thresholds.eoc"
    }
    assert not err.value.result.accepted
    assert coordinator.data.config.value("thresholds", "hvd") == 3.6  # type: ignore[union-attr]


async def test_command_round_trip_and_its_arguments(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await entry.runtime_data.coordinator.async_command(
        "force_off", output="extio3", seconds=60
    )
    assert result.accepted
    assert result.command == "force_off"
    suffix, request = agent.requests[-1]
    assert suffix == "cmd/force_off"
    assert {k: v for k, v in request.items() if k != "request_id"} == {
        "output": "extio3",
        "seconds": 60,
    }


async def test_request_times_out_without_an_answer(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    agent.stop_answering()
    with (
        patch.object(entry.runtime_data.coordinator.client, "timeout_s", 0.5),
        pytest.raises(AgentRequestError) as err,
    ):
        await entry.runtime_data.coordinator.async_set_config({"thresholds": {"hvd": 3.55}})
    assert err.value.translation_key == "agent_timeout"
    assert not isinstance(err.value, AgentRejectedError)
    assert entry.runtime_data.coordinator.client.waiting == 0  # nothing left waiting


async def test_offline_request_is_refused_without_publishing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.online)
    with pytest.raises(AgentRequestError) as err:
        await entry.runtime_data.coordinator.async_set_config({"thresholds": {"hvd": 3.55}})
    assert err.value.translation_key == "agent_offline"
    await mqtt_settled(hass)
    assert agent.requests == []


async def test_command_not_announced_is_refused_without_publishing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["capabilities"]["commands"] = ["set_soc"]
    await agent.publish("announce", agent.announce)
    entry = await setup_box(agent)
    with pytest.raises(AgentRequestError) as err:
        await entry.runtime_data.coordinator.async_command("mark_full")
    assert err.value.translation_key == "command_not_supported"
    assert err.value.translation_placeholders == {"command": "mark_full"}
    await mqtt_settled(hass)
    assert agent.requests == []


async def test_answer_for_someone_elses_request_is_ignored(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Another client's result on the shared topic must not complete our request."""
    entry = await setup_box(agent)
    agent.stop_answering()
    foreign = {
        "request_id": "other-client-1",
        "command": "mark_full",
        "status": "rejected",
        "errors": [{"field": "payload", "reason": "x"}],
        "timestamp": 1.0,
    }
    await agent.publish("cmd/mark_full/result", foreign, retain=False)
    with (
        patch.object(entry.runtime_data.coordinator.client, "timeout_s", 0.5),
        pytest.raises(AgentRequestError) as err,
    ):
        await entry.runtime_data.coordinator.async_command("mark_full")
    assert err.value.translation_key == "agent_timeout"


# --- announce changes ----------------------------------------------------------------------


async def test_announce_version_change_updates_entry_and_device_without_reload(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator = entry.runtime_data.coordinator
    agent.announce["agent_version"] = "0.2.0"
    await agent.publish("announce", agent.announce)
    await wait_for(hass, lambda: coordinator.data.announce.agent_version == "0.2.0")
    device = box_device(hass, DEVICE_IDENTIFIER)
    assert device is not None
    assert device.sw_version == "0.2.0"
    assert entry.runtime_data.coordinator is coordinator  # not reloaded: no entity changes


async def test_announce_output_change_reloads_the_entry(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator = entry.runtime_data.coordinator
    agent.announce["outputs"][2].update(type=6, type_name="dual_pv")
    await agent.publish("announce", agent.announce)
    await wait_for(hass, lambda: entry.runtime_data.coordinator is not coordinator)
    new: SbmsCoordinator = entry.runtime_data.coordinator
    await wait_for(hass, lambda: new.data.state is not None)
    assert new.data.announce.output("extio5").type == 6  # type: ignore[union-attr]


# --- events --------------------------------------------------------------------------------


async def test_agent_events_fire_bus_events_and_reach_listeners(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    fired = async_capture_events(hass, EVENT_SBMS)
    heard: list[AgentEvent] = []
    remove = coordinator.async_add_event_listener(heard.append)

    await agent.send_event("dual_pv_level", {"from": 1, "to": 2})
    await wait_for(hass, lambda: len(fired) == 1)

    assert fired[0].data == {
        "device_id": coordinator.device_id,
        "kind": "dual_pv_level",
        "agent_id": "shed",
        "from": 1,
        "to": 2,
        "timestamp": agent.state["timestamp"],
    }
    assert heard == [
        AgentEvent(
            kind="dual_pv_level", timestamp=agent.state["timestamp"], detail={"from": 1, "to": 2}
        )
    ]
    remove()
    await agent.send_event("lvd_trip")
    await wait_for(hass, lambda: len(fired) == 2)
    assert len(heard) == 1  # removed listeners hear nothing more
