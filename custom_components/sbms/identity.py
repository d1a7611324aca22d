"""The one place the box's identities are built: config entry, device and entity unique ids.

A box is known by the serial its agent announces (`announce.serial`, stable for the box),
not by its agent id, which the user picks (default `sbms`) and may change. Entries before
version 2 used the agent id; `migrate_unique_id` moves their ids over (__init__.py).
"""

from __future__ import annotations

from .const import DOMAIN


def device_identifier(serial: str) -> tuple[str, str]:
    """The box's device registry identifier."""
    return (DOMAIN, serial)


def entity_unique_id(serial: str, key: str, suffix: str = "") -> str:
    """An entity's unique id: the box, the description's key, and `suffix` for the entities
    one description makes per cell, output or load (`_3`, `_extio4`, `_<subentry id>`)."""
    return f"{serial}_{key}{suffix}"


def migrate_unique_id(unique_id: str, agent_id: str, serial: str) -> str | None:
    """The id of version 2 for a unique id of version 1 (`<agent_id>_<key><suffix>`), or
    None when `unique_id` is not one of that agent's."""
    old_prefix = f"{agent_id}_"
    if not unique_id.startswith(old_prefix):
        return None
    return f"{serial}_{unique_id.removeprefix(old_prefix)}"
