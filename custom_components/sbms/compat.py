"""What differs between the Home Assistant releases we support (2025.4 to 2026.x), in one place.

docs/architecture.md keeps the table of such differences; code that needs one goes here, so it
is found and removed in one place once 2025.x is no longer supported.
"""

from __future__ import annotations

from homeassistant.helpers import device_registry as dr

_ABSENT = object()


def device_config_entry_ids(device: dr.DeviceEntry) -> tuple[str, ...]:
    """The config entries a device belongs to. From 2026.8 a device belongs to one
    (`config_entry_id`) and reading `config_entries` is deprecated; before, only the set exists."""
    entry_id = getattr(device, "config_entry_id", _ABSENT)
    if entry_id is _ABSENT:
        return tuple(device.config_entries)
    return () if entry_id is None else (str(entry_id),)
