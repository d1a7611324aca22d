"""SBMS Solar Battery: Home Assistant side of the SBMS edge agent.

One config entry per battery box. The agent publishes over MQTT (docs/protocol.md); the
coordinator subscribes and the platforms turn its data into entities.
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryNotReady
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.helpers.storage import Store

from .backfill import async_start_backfill
from .backfill import storage_key as backfill_storage_key
from .const import DOMAIN
from .coordinator import SbmsConfigEntry, SbmsCoordinator
from .shedding_manager import DATA_SHEDDING, STORAGE_VERSION, SheddingManager, storage_key

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
    await _async_start_shedding(hass, entry)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # After the platforms: the back-fill finds the sensors' entities in the registry.
    await async_start_backfill(hass, entry)
    return True


async def _async_start_shedding(hass: HomeAssistant, entry: SbmsConfigEntry) -> None:
    """Optional-load shedding: its entities read the manager, so it starts before them."""
    manager = SheddingManager(hass, entry)
    await manager.async_start()
    hass.data.setdefault(DATA_SHEDDING, {})[entry.entry_id] = manager
    entry.async_on_unload(manager.async_stop)

    @callback
    def forget() -> None:
        hass.data[DATA_SHEDDING].pop(entry.entry_id, None)

    entry.async_on_unload(forget)


async def async_unload_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> bool:
    """Unload one battery box."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> None:
    """Forget the box's load-shedding and back-fill state with the box."""
    for key in (storage_key(entry.entry_id), backfill_storage_key(entry.entry_id)):
        await Store[dict[str, object]](hass, STORAGE_VERSION, key).async_remove()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SbmsConfigEntry, device: DeviceEntry
) -> bool:
    """Allow removing devices that are not this entry's box (left from an earlier agent id)."""
    return (DOMAIN, entry.runtime_data.agent_id) not in device.identifiers
