"""SBMS Solar Battery: Home Assistant side of the SBMS edge agent (skeleton)."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant


async def async_setup_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Set up one battery box. Entities arrive with the MQTT issue; nothing to start yet."""
    return True


async def async_unload_entry(hass: HomeAssistant, entry: ConfigEntry) -> bool:
    """Unload one battery box."""
    return True
