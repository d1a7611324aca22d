"""Setting up, unloading and removing a battery box's entry in a real Home Assistant."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant

from custom_components.sbms.compat import device_config_entry_ids
from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, box_device
from tests.integration.fake_agent import DEVICE_IDENTIFIER, FakeAgent


async def test_setup_registers_the_box_and_unload_stops_it(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    assert entry.state is ConfigEntryState.LOADED
    coordinator = entry.runtime_data.coordinator
    assert coordinator.topic_prefix == "sbms/shed"
    assert coordinator.data.available
    device = box_device(hass, DEVICE_IDENTIFIER)
    assert device is not None
    assert device.name == "SBMS shed"
    assert device.serial_number == "rpi-10000000a1b2c3d4"
    assert device_config_entry_ids(device) == (entry.entry_id,)

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.NOT_LOADED
    # Unsubscribed: a new state no longer reaches the unloaded coordinator.
    before = coordinator.data.state
    await agent.set_state(soc=12.5)
    await hass.async_block_till_done()
    assert coordinator.data.state is before


async def test_setup_without_mqtt_is_retried_later(hass: HomeAssistant) -> None:
    fake = FakeAgent(hass)
    entry = fake.config_entry()
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.SETUP_RETRY
    assert entry.reason is not None
    # Unloading cancels the retry timer, so the test leaves nothing behind.
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_removing_the_entry_removes_the_device(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    assert box_device(hass, DEVICE_IDENTIFIER) is not None
    assert await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert hass.config_entries.async_entries(DOMAIN) == []
    assert box_device(hass, DEVICE_IDENTIFIER) is None
