"""Logbook entries for load shedding: each shed and restore of an optional load."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import Event, HomeAssistant, callback

from .const import ATTR_ACTION, ATTR_LOAD, ATTR_REASON, DOMAIN, EVENT_LOAD_SHEDDING

# The logbook shows plain English (it has no translations for integration events).
_REASONS = {
    "soc_below": "the battery's state of charge fell below its shed level",
    "low_soc_alarm": "the battery box raised its low state of charge alarm",
    "lvd_trip": "the battery box's low voltage disconnect tripped",
    "soc_above": "the battery's state of charge rose above its restore level",
}


def describe(event: Event[Any]) -> dict[str, str]:
    """One entry: "<load> switched off by load shedding: <why>"."""
    data = event.data
    verb = "switched back on" if data.get(ATTR_ACTION) == "restore" else "switched off"
    reason = _REASONS.get(str(data.get(ATTR_REASON)), str(data.get(ATTR_REASON)))
    return {
        LOGBOOK_ENTRY_NAME: str(data.get(ATTR_LOAD) or data.get(ATTR_ENTITY_ID)),
        LOGBOOK_ENTRY_MESSAGE: f"{verb} by load shedding: {reason}",
        LOGBOOK_ENTRY_ENTITY_ID: str(data.get(ATTR_ENTITY_ID)),
    }


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event[Any]], dict[str, str]]], None],
) -> None:
    """Describe the bus event `shedding_manager.py` fires for each shed and restore."""
    async_describe_event(DOMAIN, EVENT_LOAD_SHEDDING, describe)
