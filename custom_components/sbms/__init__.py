"""SBMS Solar Battery: Home Assistant side of the SBMS edge agent.

One config entry per battery box. The agent publishes over MQTT (docs/protocol.md); the
coordinator subscribes and the platforms turn its data into entities. Everything the entry
owns while loaded is its runtime data (`SbmsRuntimeData`).
"""

from __future__ import annotations

from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry
from homeassistant.const import Platform
from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import ConfigEntryError, ConfigEntryNotReady
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.device_registry import DeviceEntry
from homeassistant.helpers.storage import Store

from .backfill import async_start_backfill
from .backfill import storage_key as backfill_storage_key
from .const import CONF_AGENT_ID, CONF_SERIAL, CONF_TOPIC_PREFIX, DOMAIN, LOGGER
from .coordinator import SbmsCoordinator
from .discovery import AnnounceError, async_read_announce
from .identity import device_identifier, migrate_unique_id
from .loads_manager import STORAGE_VERSION
from .repairs import BoxIssues
from .runtime_data import SbmsConfigEntry, SbmsRuntimeData
from .sensor import box_sensors
from .shedding_manager import SheddingManager, storage_key
from .surplus_manager import SurplusManager
from .surplus_manager import storage_key as surplus_storage_key

PLATFORMS: list[Platform] = [
    Platform.BINARY_SENSOR,
    Platform.BUTTON,
    Platform.EVENT,
    Platform.NUMBER,
    Platform.SELECT,
    Platform.SENSOR,
    Platform.SWITCH,
]

# Version 1 (until issue 18): unique ids from the agent id, the announce cached in entry.data.
# Version 2: unique ids from the announced serial; entry.data holds agent id, topic prefix and
# serial only, the announce is read from the broker at setup.
ENTRY_VERSION = 2
ENTRY_MINOR_VERSION = 1


async def async_setup_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> bool:
    """Set up one battery box once MQTT is available and its announce is on the broker."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        raise ConfigEntryNotReady(translation_domain=DOMAIN, translation_key="mqtt_not_ready")
    prefix = entry.data[CONF_TOPIC_PREFIX]
    try:
        agent = await async_read_announce(hass, prefix)
    except AnnounceError as err:
        if err.version is not None:
            # Not retried into silence: the issue says what to update.
            BoxIssues(hass, entry).unsupported_protocol(err.version)
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="announce_unusable",
            translation_placeholders={"prefix": prefix, "reason": err.reason},
        ) from err
    if agent.serial != entry.data[CONF_SERIAL]:
        raise ConfigEntryError(
            translation_domain=DOMAIN,
            translation_key="other_box",
            translation_placeholders={"prefix": prefix, "agent_id": agent.agent_id},
        )

    coordinator = SbmsCoordinator(hass, entry, agent.announce)
    await coordinator.async_start()
    entry.async_on_unload(coordinator.async_stop)
    # Optional-load shedding: its entities read the manager, so it starts before them.
    shedding = SheddingManager(hass, entry, coordinator)
    await shedding.async_start()
    entry.async_on_unload(shedding.async_stop)
    # Surplus loads (issue 19), the mirror of shedding, before its entities too.
    surplus = SurplusManager(hass, entry, coordinator)
    await surplus.async_start()
    entry.async_on_unload(surplus.async_stop)
    entry.runtime_data = SbmsRuntimeData(
        coordinator=coordinator, shedding=shedding, surplus=surplus
    )

    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    # After the platforms: the back-fill finds the sensors' entities in the registry.
    entry.runtime_data.backfill = await async_start_backfill(hass, entry, coordinator, box_sensors)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> bool:
    """Unload one battery box."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_entry(hass: HomeAssistant, entry: SbmsConfigEntry) -> None:
    """Forget the box's load-shedding, surplus-load and back-fill state with the box."""
    for key in (
        storage_key(entry.entry_id),
        surplus_storage_key(entry.entry_id),
        backfill_storage_key(entry.entry_id),
    ):
        await Store[dict[str, object]](hass, STORAGE_VERSION, key).async_remove()


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: SbmsConfigEntry, device: DeviceEntry
) -> bool:
    """Allow removing devices that are not this entry's box (left from an earlier box)."""
    return device_identifier(entry.data[CONF_SERIAL]) not in device.identifiers


async def async_migrate_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Move an entry of version 1 to version 2: ids from the serial, no cached announce."""
    if entry.version > ENTRY_VERSION:
        return False  # from a newer integration: a downgrade cannot read it
    if entry.version == 1:
        agent_id: str = entry.data[CONF_AGENT_ID]
        serial = str(entry.data["announce"]["serial"])
        if any(
            other.entry_id != entry.entry_id and other.unique_id == serial
            for other in hass.config_entries.async_entries(DOMAIN)
        ):
            LOGGER.error(
                "SBMS agent %s: another entry already has the box's serial; remove one of them",
                agent_id,
            )
            return False

        @callback
        def new_unique_id(entity: er.RegistryEntry) -> dict[str, str] | None:
            unique_id = migrate_unique_id(entity.unique_id, agent_id, serial)
            return None if unique_id is None else {"new_unique_id": unique_id}

        await er.async_migrate_entries(hass, entry.entry_id, new_unique_id)
        devices = dr.async_get(hass)
        # By entry, not `async_get_device(identifiers=...)`, which 2026.x refuses.
        for device in dr.async_entries_for_config_entry(devices, entry.entry_id):
            if (DOMAIN, agent_id) in device.identifiers:
                devices.async_update_device(device.id, new_identifiers={device_identifier(serial)})
        hass.config_entries.async_update_entry(
            entry,
            data={
                CONF_AGENT_ID: agent_id,
                CONF_TOPIC_PREFIX: entry.data[CONF_TOPIC_PREFIX],
                CONF_SERIAL: serial,
            },
            unique_id=serial,
            version=ENTRY_VERSION,
            minor_version=ENTRY_MINOR_VERSION,
        )
        LOGGER.debug("SBMS agent %s: entry and ids moved to serial-based ids", agent_id)
    return True
