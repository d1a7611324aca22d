"""SBMS Solar Battery: Home Assistant side of the SBMS edge agent.

One config entry per battery box. The agent publishes over MQTT (docs/protocol.md); the
coordinator subscribes and the platforms turn its data into entities.
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.device_registry import DeviceEntry

from .const import DOMAIN
from .coordinator import SbmsConfigEntry, SbmsCoordinator

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]


async def async_setup_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> bool:
    """Set up one battery box once MQTT is available."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    coordinator = SbmsCoordinator(hass, entry)
    await coordinator.async_start()
    entry.async_on_unload(coordinator.async_stop)
    entry.runtime_data = coordinator
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> bool:
    """Unload one battery box."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SbmsConfigEntry, device: DeviceEntry
) -> bool:
    """Allow removing devices that are not this entry's box (left from an earlier agent id)."""
    return (DOMAIN, entry.runtime_data.agent_id) not in device.identifiers
