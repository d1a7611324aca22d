"""The SBMS integration skeleton in a real Home Assistant: config flow, setup and unload."""

from __future__ import annotations

from homeassistant import config_entries
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import CONF_AGENT_ID, DOMAIN


async def _start_user_flow(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(
        DOMAIN, context={"source": config_entries.SOURCE_USER}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    assert result["errors"] == {}
    return str(result["flow_id"])


async def test_user_step_creates_an_entry_keyed_by_agent_id(hass: HomeAssistant) -> None:
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_AGENT_ID: "garage-box"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "SBMS garage-box"
    assert result["data"] == {CONF_AGENT_ID: "garage-box"}
    entries = hass.config_entries.async_entries(DOMAIN)
    assert len(entries) == 1
    assert entries[0].unique_id == "garage-box"
    assert entries[0].state is ConfigEntryState.LOADED


async def test_same_agent_twice_aborts(hass: HomeAssistant) -> None:
    MockConfigEntry(
        domain=DOMAIN, unique_id="garage-box", data={CONF_AGENT_ID: "garage-box"}
    ).add_to_hass(hass)
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_AGENT_ID: "garage-box"})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_invalid_agent_id_shows_the_form_again(hass: HomeAssistant) -> None:
    flow_id = await _start_user_flow(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, {CONF_AGENT_ID: "garage/box"})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_AGENT_ID: "invalid_agent_id"}
    assert hass.config_entries.async_entries(DOMAIN) == []


async def test_setup_and_unload_entry(hass: HomeAssistant) -> None:
    entry = MockConfigEntry(domain=DOMAIN, unique_id="van-box", data={CONF_AGENT_ID: "van-box"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
