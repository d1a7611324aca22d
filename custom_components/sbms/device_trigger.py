"""Device triggers: the agent's events (and its going offline or online) for automations.

The coordinator fires `sbms_event` on the bus with the box's `device_id` and the event's
`kind` (docs/protocol.md "event"); each trigger here is an event trigger on that pair, so the
event's detail (`fault`, `from`, `to`) reaches the automation as `trigger.event.data`.
"""

from __future__ import annotations

from typing import Final

import voluptuous as vol
from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.device_automation.exceptions import InvalidDeviceAutomationConfig
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    CONF_DEVICE_ID,
    CONF_DOMAIN,
    CONF_EVENT_DATA,
    CONF_PLATFORM,
    CONF_TYPE,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType

from .compat import device_config_entry_ids
from .const import (
    ATTR_DEVICE_ID,
    ATTR_KIND,
    DOMAIN,
    EVENT_SBMS,
    KIND_AGENT_OFFLINE,
    KIND_AGENT_ONLINE,
)
from .runtime_data import SbmsConfigEntry

TRIGGER_DUAL_PV_LEVEL: Final = "dual_pv_level"

# Every box can raise these; `dual_pv_level` only exists with a dual-PV (type 6) output.
BASE_TRIGGER_TYPES: Final = (
    "low_soc_alarm",
    "low_soc_clear",
    "high_soc_alarm",
    "high_soc_clear",
    "hvd_trip",
    "hvd_release",
    "lvd_trip",
    "lvd_release",
    "fault_raised",
    "fault_cleared",
    KIND_AGENT_OFFLINE,
    KIND_AGENT_ONLINE,
)
TRIGGER_TYPES: Final = (*BASE_TRIGGER_TYPES, TRIGGER_DUAL_PV_LEVEL)

TRIGGER_SCHEMA: Final = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {vol.Required(CONF_TYPE): vol.In(TRIGGER_TYPES)}
)


def _entry_of_device(hass: HomeAssistant, device_id: str) -> SbmsConfigEntry | None:
    """The sbms config entry of the box behind `device_id`, loaded or not."""
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return None
    for entry_id in device_config_entry_ids(device):
        entry = hass.config_entries.async_get_entry(entry_id)
        if entry is not None and entry.domain == DOMAIN:
            return entry
    return None


def _has_dual_pv(entry: SbmsConfigEntry) -> bool:
    """Whether the box has a dual-PV output, as its announce says; only a loaded entry has
    one (the announce is runtime data), so an unloaded box lists the triggers every box has."""
    if entry.state is not ConfigEntryState.LOADED:
        return False
    return entry.runtime_data.coordinator.data.announce.has_dual_pv


async def async_validate_trigger_config(hass: HomeAssistant, config: ConfigType) -> ConfigType:
    """Check the trigger's shape and that its device is an SBMS box.

    `dual_pv_level` stays valid on a box whose dual-PV output was retyped since: the
    automation then simply does not fire, instead of failing to load at the next restart.
    """
    config = TRIGGER_SCHEMA(config)
    if _entry_of_device(hass, config[CONF_DEVICE_ID]) is None:
        raise InvalidDeviceAutomationConfig(
            translation_domain=DOMAIN,
            translation_key="device_not_found",
            translation_placeholders={"device_id": config[CONF_DEVICE_ID]},
        )
    return config


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    """The triggers one box offers: `dual_pv_level` only with a dual-PV output."""
    entry = _entry_of_device(hass, device_id)
    if entry is None:
        return []
    types = TRIGGER_TYPES if _has_dual_pv(entry) else BASE_TRIGGER_TYPES
    return [
        {
            CONF_PLATFORM: "device",
            CONF_DOMAIN: DOMAIN,
            CONF_DEVICE_ID: device_id,
            CONF_TYPE: trigger_type,
        }
        for trigger_type in types
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    """Listen for this box's `sbms_event` of the trigger's kind."""
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_SBMS,
            CONF_EVENT_DATA: {
                ATTR_DEVICE_ID: config[CONF_DEVICE_ID],
                ATTR_KIND: config[CONF_TYPE],
            },
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
