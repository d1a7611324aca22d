"""Config flow against a real broker: MQTT discovery, the user and manual steps, reconfigure."""

from __future__ import annotations

import json
import time
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import SOURCE_MQTT, SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import CONF_AGENT_ID, CONF_SERIAL, CONF_TOPIC_PREFIX, DOMAIN
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.integration.fake_agent import SERIAL, FakeAgent, example

# The "not found" cases wait this long instead of the flow's 5 s.
SHORT_CHECK_S = 1.5


@pytest.fixture
def short_check() -> Any:
    with patch("custom_components.sbms.discovery.AGENT_CHECK_S", SHORT_CHECK_S):
        yield


async def _another_agent(
    hass: HomeAssistant, agent_id: str, *, base: str = "sbms", online: bool = True
) -> FakeAgent:
    fake = FakeAgent(hass, agent_id, base)
    await fake.publish_all(online=online)
    await mqtt_settled(hass)
    return fake


def _entry_data(fake: FakeAgent) -> dict[str, Any]:
    return {
        CONF_AGENT_ID: fake.agent_id,
        CONF_TOPIC_PREFIX: fake.prefix,
        CONF_SERIAL: fake.serial,
    }


def _discovery(topic: str, payload: str | bytes) -> MqttServiceInfo:
    return MqttServiceInfo(
        topic=topic,
        payload=payload,
        qos=1,
        retain=True,
        subscribed_topic="sbms/+/announce",
        timestamp=time.time(),
    )


async def _start_user(hass: HomeAssistant) -> dict[str, Any]:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    return dict(result)


def _listed(result: dict[str, Any]) -> dict[str, str]:
    """The agent select's options (value -> label) of the user form."""
    schema = result["data_schema"].schema
    selector = next(iter(schema.values()))
    return {option["value"]: option["label"] for option in selector.config["options"]}


def _abort_flows(hass: HomeAssistant) -> None:
    """End the discovery flows the fixture agents' announces started."""
    for flow in hass.config_entries.flow.async_progress_by_handler(DOMAIN):
        hass.config_entries.flow.async_abort(flow["flow_id"])


@pytest.fixture
def fast_birth() -> Any:
    """HA sends its birth message after 5 s without discovery; tests need not wait that long.
    Request it before the broker fixtures."""
    with patch("homeassistant.components.mqtt.client.DISCOVERY_COOLDOWN", 0.2):
        yield


async def _births(hass: HomeAssistant) -> tuple[list[ReceiveMessage], Any]:
    births: list[ReceiveMessage] = []
    unsubscribe = await mqtt.async_subscribe(hass, "homeassistant/status", births.append, qos=1)
    return births, unsubscribe


async def _stop_broker(hass: HomeAssistant, broker: MosquittoBroker) -> None:
    """Stop the broker once HA's birth message is out (HA sends it a few seconds after
    connecting; a birth message still pending when the broker goes fails the teardown)."""
    births, unsubscribe = await _births(hass)
    try:
        await wait_for(hass, lambda: any(m.payload == "online" for m in births), timeout_s=30)
    finally:
        unsubscribe()
    broker.stop()
    await wait_for(hass, lambda: not mqtt.is_connected(hass))


async def _restart_broker(hass: HomeAssistant, broker: MosquittoBroker) -> None:
    """Start the broker again and wait for HA's birth message, the end of its reconnection."""
    births, unsubscribe = await _births(hass)
    broker.start()
    try:
        await wait_for(hass, lambda: any(m.payload == "online" for m in births), timeout_s=30)
    finally:
        unsubscribe()


# --- MQTT discovery -------------------------------------------------------------------------


async def test_discovered_agent_is_confirmed_and_added(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    """HA's own MQTT discovery sees the retained announce and starts the flow."""
    await wait_for(hass, lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    (flow,) = hass.config_entries.flow.async_progress_by_handler(DOMAIN)
    assert flow["context"]["source"] == SOURCE_MQTT
    assert flow["context"]["unique_id"] == SERIAL
    assert flow["context"]["title_placeholders"] == {"name": "shed"}
    assert flow["step_id"] == "discovery_confirm"

    result = await hass.config_entries.flow.async_configure(flow["flow_id"])
    assert result["step_id"] == "discovery_confirm"
    assert result["description_placeholders"] == {
        "agent_id": "shed",
        "model": "SBMS edge agent",
        "source": "diy",
        "cells": "8",
        "capacity": "100",
        "outputs": "extio3 (lvd), extio4 (hvd), extio5 (unused), extio6 (fault)",
        "prefix": "sbms/shed",
    }
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "SBMS shed"
    assert result["data"] == _entry_data(agent)
    entry = result["result"]
    assert entry.unique_id == SERIAL
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)


async def test_discovery_of_a_configured_box_keeps_the_entry_data(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The entry is no cache of the announce: a new one changes nothing in it."""
    entry = await setup_box(agent)
    _abort_flows(hass)
    data_before = dict(entry.data)
    announce = {**agent.announce, "agent_version": "0.2.0"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_discovery("sbms/shed/announce", json.dumps(announce)),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert dict(entry.data) == data_before
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1
    assert entry.state is ConfigEntryState.LOADED


async def test_a_stale_announce_of_the_box_under_its_old_agent_id_moves_nothing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """After a rename the old id's retained announce may stay on the broker: same serial,
    another agent id. Only Reconfigure renames, so discovery cannot flip the entry back."""
    entry = await setup_box(agent)
    _abort_flows(hass)
    stale = {**agent.announce, "agent_id": "sbms"}
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_discovery("sbms/sbms/announce", json.dumps(stale)),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_TOPIC_PREFIX] == "sbms/shed"
    assert entry.data[CONF_AGENT_ID] == "shed"


async def test_discovery_under_a_new_prefix_moves_the_entry(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """A box configured under another base that now announces on `sbms/` follows it."""
    old = FakeAgent(hass, "shed", "old/sbms")
    await old.publish_all()
    entry = await setup_box(old)
    assert entry.runtime_data.coordinator.topic_prefix == "old/sbms/shed"
    _abort_flows(hass)
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_discovery("sbms/shed/announce", json.dumps(agent.announce)),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_TOPIC_PREFIX] == "sbms/shed"
    # Reloaded: the coordinator now listens under the new prefix.
    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.coordinator.topic_prefix == "sbms/shed"
        ),
    )
    await old.clear_retained()


def _announce_with(**changes: Any) -> str:
    """The documented announce example with some fields changed."""
    data = example("announce")
    data.update(changes)
    return json.dumps(data)


@pytest.mark.parametrize(
    ("topic", "payload", "reason"),
    [
        ("sbms/shed/announce", "", "invalid_discovery_info"),
        ("sbms/shed/announce", "not json", "invalid_discovery_info"),
        ("sbms/shed/announce", "[1, 2]", "invalid_discovery_info"),
        ("sbms/shed/announce", '{"agent_id": "shed"}', "invalid_discovery_info"),
        ("sbms/shed/announce", _announce_with(cells="eight"), "invalid_discovery_info"),
        ("sbms/other/announce", _announce_with(), "invalid_discovery_info"),
        ("sbms/bad id/announce", _announce_with(agent_id="bad id"), "invalid_discovery_info"),
        ("sbms/shed/announce", _announce_with(protocol_version=2), "unsupported_protocol"),
        ("sbms/shed/announce", '{"protocol_version": 9}', "unsupported_protocol"),
    ],
)
async def test_unusable_discovery_payloads_abort(
    hass: HomeAssistant, topic: str, payload: str, reason: str
) -> None:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": SOURCE_MQTT}, data=_discovery(topic, payload)
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == reason
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_second_discovery_of_the_same_box_aborts(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    await wait_for(hass, lambda: bool(hass.config_entries.flow.async_progress_by_handler(DOMAIN)))
    result = await hass.config_entries.flow.async_init(
        DOMAIN,
        context={"source": SOURCE_MQTT},
        data=_discovery("sbms/shed/announce", json.dumps(agent.announce)),
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_in_progress"


# --- user step --------------------------------------------------------------------------------


async def test_user_step_lists_the_agents_not_set_up(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    garage = await _another_agent(hass, "garage")
    await _another_agent(hass, "cabin", base="site1/sbms")
    # Not agents: junk under an announce topic, and another device's announce.
    await mqtt.async_publish(hass, "sbms/junk/announce", "garbage", qos=1, retain=True)
    await mqtt.async_publish(hass, "other/thing/announce", '{"a": 1}', qos=1, retain=True)

    result = await _start_user(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert _listed(result) == {
        "sbms/garage": "garage (sbms/garage, 8 cells, 100 Ah, diy)",
        "site1/sbms/cabin": "cabin (site1/sbms/cabin, 8 cells, 100 Ah, diy)",
        "manual": "manual",
    }
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {"agent": "sbms/garage"})
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "SBMS garage"
    assert result["data"] == _entry_data(garage)
    assert result["result"].unique_id == garage.serial


async def test_user_step_picked_agent_that_went_offline(
    hass: HomeAssistant, mqtt_ready: MockConfigEntry, short_check: None
) -> None:
    garage = await _another_agent(hass, "garage")
    result = await _start_user(hass)
    assert "sbms/garage" in _listed(result)
    await garage.set_online(False)
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {"agent": "sbms/garage"})
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {"base": "agent_offline"}
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_user_step_goes_to_manual_when_no_agent_is_seen(
    hass: HomeAssistant, mqtt_ready: MockConfigEntry
) -> None:
    result = await _start_user(hass)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == {}


async def test_manual_entry_of_an_online_agent(hass: HomeAssistant, agent: FakeAgent) -> None:
    cabin = await _another_agent(hass, "cabin", base="site1/sbms")
    result = await _start_user(hass)
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {"agent": "manual"})
    )
    assert result["step_id"] == "manual"
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: " cabin ", "base_topic": "/site1/sbms/"}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == _entry_data(cabin)


async def test_manual_entry_not_found_then_corrected(
    hass: HomeAssistant, agent: FakeAgent, short_check: None
) -> None:
    result = await _start_user(hass)
    flow_id = result["flow_id"]
    await hass.config_entries.flow.async_configure(flow_id, {"agent": "manual"})
    started = time.monotonic()
    result = dict(
        await hass.config_entries.flow.async_configure(
            flow_id, {CONF_AGENT_ID: "nobody", "base_topic": "sbms"}
        )
    )
    assert time.monotonic() - started >= SHORT_CHECK_S * 0.9  # it did wait for an answer
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "agent_not_found"}
    result = dict(
        await hass.config_entries.flow.async_configure(
            flow_id, {CONF_AGENT_ID: "shed", "base_topic": "sbms"}
        )
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["data"] == _entry_data(agent)


async def test_manual_entry_of_an_offline_agent(
    hass: HomeAssistant, mqtt_ready: MockConfigEntry, short_check: None
) -> None:
    await _another_agent(hass, "garage", online=False)
    result = await _start_user(hass)
    result = dict(
        await hass.config_entries.flow.async_configure(result["flow_id"], {"agent": "manual"})
    )
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "garage", "base_topic": "sbms"}
        )
    )
    assert result["errors"] == {"base": "agent_offline"}
    assert hass.config_entries.async_entries(DOMAIN) == []


@pytest.mark.parametrize(
    ("announce", "error"),
    [
        ("garbage", "invalid_announce"),
        (_announce_with(agent_id="garage", protocol_version=2), "unsupported_protocol"),
        (_announce_with(agent_id="someone-else"), "invalid_announce"),
    ],
)
async def test_manual_entry_of_an_unusable_announce(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    short_check: None,
    announce: str,
    error: str,
) -> None:
    await mqtt.async_publish(hass, "lab/garage/status", "online", qos=1, retain=True)
    await mqtt.async_publish(hass, "lab/garage/announce", announce, qos=1, retain=True)
    result = await _start_user(hass)
    assert result["step_id"] == "manual"
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "garage", "base_topic": "lab"}
        )
    )
    assert result["errors"] == {"base": error}


@pytest.mark.parametrize(
    ("user_input", "errors"),
    [
        ({CONF_AGENT_ID: "garage/box", "base_topic": "sbms"}, {CONF_AGENT_ID: "invalid_agent_id"}),
        ({CONF_AGENT_ID: "", "base_topic": "sbms"}, {CONF_AGENT_ID: "invalid_agent_id"}),
        ({CONF_AGENT_ID: "x" * 65, "base_topic": "sbms"}, {CONF_AGENT_ID: "invalid_agent_id"}),
        ({CONF_AGENT_ID: "garage", "base_topic": "sbms/#"}, {"base_topic": "invalid_base_topic"}),
        ({CONF_AGENT_ID: "garage", "base_topic": "a//b"}, {"base_topic": "invalid_base_topic"}),
        ({CONF_AGENT_ID: "garage", "base_topic": "  "}, {"base_topic": "invalid_base_topic"}),
    ],
)
async def test_manual_entry_bad_input_shows_field_errors(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    user_input: dict[str, str],
    errors: dict[str, str],
) -> None:
    result = await _start_user(hass)
    result = dict(await hass.config_entries.flow.async_configure(result["flow_id"], user_input))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "manual"
    assert result["errors"] == errors


async def test_manual_entry_of_a_configured_agent_aborts(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    result = await _start_user(hass)
    assert result["step_id"] == "manual"  # the only agent seen is set up already
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "shed", "base_topic": "sbms"}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_user_step_without_mqtt_aborts(hass: HomeAssistant) -> None:
    result = await _start_user(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_configured"


async def test_user_step_with_the_broker_down_aborts(
    fast_birth: None, hass: HomeAssistant, mqtt_broker: MosquittoBroker, mqtt_ready: MockConfigEntry
) -> None:
    await _stop_broker(hass, mqtt_broker)
    result = await _start_user(hass)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_connected"
    await _restart_broker(hass, mqtt_broker)


# --- reconfigure ------------------------------------------------------------------------------


async def test_reconfigure_moves_the_box_to_another_base(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await _another_agent(hass, "shed", base="site1/sbms")

    result = dict(await entry.start_reconfigure_flow(hass))
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {CONF_AGENT_ID: "shed", "base_topic": "sbms"}

    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "shed", "base_topic": "site1/sbms"}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert dict(entry.data) == {
        CONF_AGENT_ID: "shed",
        CONF_TOPIC_PREFIX: "site1/sbms/shed",
        CONF_SERIAL: SERIAL,
    }
    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.coordinator.topic_prefix == "site1/sbms/shed"
        ),
    )


async def test_reconfigure_renames_the_same_box(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The box is its serial: the same box under a new agent id keeps its entry and ids."""
    entry = await setup_box(agent)
    renamed = FakeAgent(hass, "garage")
    renamed.announce["serial"] = SERIAL
    await renamed.publish_all()
    await mqtt_settled(hass)
    result = dict(await entry.start_reconfigure_flow(hass))
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "garage", "base_topic": "sbms"}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_AGENT_ID] == "garage"
    assert entry.data[CONF_TOPIC_PREFIX] == "sbms/garage"
    assert entry.unique_id == SERIAL
    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.coordinator.topic_prefix == "sbms/garage"
        ),
    )
    await renamed.clear_retained()


async def test_reconfigure_to_another_box_aborts(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await _another_agent(hass, "garage")
    result = dict(await entry.start_reconfigure_flow(hass))
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "garage", "base_topic": "sbms"}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_agent"
    assert entry.data[CONF_TOPIC_PREFIX] == "sbms/shed"


async def test_reconfigure_to_a_silent_base_shows_the_error(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, short_check: None
) -> None:
    entry = await setup_box(agent)
    result = dict(await entry.start_reconfigure_flow(hass))
    flow_id = result["flow_id"]
    result = dict(
        await hass.config_entries.flow.async_configure(
            flow_id, {CONF_AGENT_ID: "shed", "base_topic": "nowhere"}
        )
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "agent_not_found"}
    result = dict(
        await hass.config_entries.flow.async_configure(
            flow_id, {CONF_AGENT_ID: "shed", "base_topic": "bad/#"}
        )
    )
    assert result["errors"] == {"base_topic": "invalid_base_topic"}
    assert entry.data[CONF_TOPIC_PREFIX] == "sbms/shed"
    assert entry.state is ConfigEntryState.LOADED


async def test_reconfigure_with_the_broker_down_aborts(
    fast_birth: None,
    hass: HomeAssistant,
    mqtt_broker: MosquittoBroker,
    agent: FakeAgent,
    setup_box: SetupBox,
) -> None:
    entry = await setup_box(agent)
    result = dict(await entry.start_reconfigure_flow(hass))
    await _stop_broker(hass, mqtt_broker)
    result = dict(
        await hass.config_entries.flow.async_configure(
            result["flow_id"], {CONF_AGENT_ID: "shed", "base_topic": "sbms"}
        )
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "mqtt_not_connected"
    await _restart_broker(hass, mqtt_broker)
