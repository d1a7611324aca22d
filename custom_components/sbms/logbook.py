"""Logbook entries: each agent event in words with its cause, each shed and restore of an
optional load, and each switching of a surplus load.

The event entity's own line says only "detected an event" (the logbook keeps no attributes),
so the bus event fired beside it (`sbms_event`, coordinator.py) carries the words.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from homeassistant.components.logbook.const import (
    LOGBOOK_ENTRY_ENTITY_ID,
    LOGBOOK_ENTRY_MESSAGE,
    LOGBOOK_ENTRY_NAME,
)
from homeassistant.const import ATTR_ENTITY_ID
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from .const import (
    ATTR_ACTION,
    ATTR_DEVICE_ID,
    ATTR_KIND,
    ATTR_LOAD,
    ATTR_REASON,
    CONF_AGENT_ID,
    DOMAIN,
    EVENT_LOAD_SHEDDING,
    EVENT_SBMS,
    EVENT_SURPLUS_LOAD,
    KIND_AGENT_OFFLINE,
    KIND_AGENT_ONLINE,
)

# The logbook shows plain English (it has no translations for integration events).
_REASONS = {
    "soc_below": "the battery's state of charge fell below its shed level",
    "low_soc_alarm": "the battery box raised its low state of charge alarm",
    "lvd_trip": "the battery box's low voltage disconnect tripped",
    "soc_above": "the battery's state of charge rose above its restore level",
}

_FAULTS = {
    "over_voltage_lockout": "over-voltage lockout (a cell above its lockout voltage)",
    "under_voltage_lockout": "under-voltage lockout (a cell below its lockout voltage)",
    "over_temperature": "over-temperature",
    "measurement_failure": "measurement failure (no good reading from the box's sensors)",
}

_SYNC_REASONS = {
    "hvd": "a cell reached the high voltage disconnect: full",
    "eoc": "end of charge: full",
    "command": "marked full by hand",
    "lvd": "the low voltage disconnect tripped",
    "ocv": "resting cell voltage",
}

# Kinds whose words need nothing from the detail.
_PLAIN = {
    "hvd_release": "HVD released: charging back on",
    "lvd_release": "LVD released: loads back on",
    "high_soc_alarm": "High SoC alarm on: the state of charge reached its alarm level",
    "high_soc_clear": "High SoC alarm off: the state of charge fell to its release level",
    "low_soc_alarm": "Low SoC alarm on: the state of charge fell to its alarm level",
    "low_soc_clear": "Low SoC alarm off: the state of charge rose to its release level",
    KIND_AGENT_OFFLINE: "agent offline: no data from the battery box",
    KIND_AGENT_ONLINE: "agent back online",
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


# Surplus loads (issue 19, surplus_manager.py).
_SURPLUS_REASONS = {
    "surplus": "the battery is full and PV would be thrown away",
    "discharge": "the battery discharged more than its set power for its set time",
    "soc_below": "the battery's state of charge fell below its set level",
    "no_data": "the box sent no usable data for the load's discharge time",
}


def describe_surplus(event: Event[Any]) -> dict[str, str]:
    """One entry: "<load> switched on by surplus loads: <why>"."""
    data = event.data
    verb = "switched on" if data.get(ATTR_ACTION) == "on" else "switched off"
    reason = _SURPLUS_REASONS.get(str(data.get(ATTR_REASON)), str(data.get(ATTR_REASON)))
    return {
        LOGBOOK_ENTRY_NAME: str(data.get(ATTR_LOAD) or data.get(ATTR_ENTITY_ID)),
        LOGBOOK_ENTRY_MESSAGE: f"{verb} by surplus loads: {reason}",
        LOGBOOK_ENTRY_ENTITY_ID: str(data.get(ATTR_ENTITY_ID)),
    }


def agent_event_message(kind: str, detail: Mapping[str, Any]) -> str:
    """An agent event in words with its cause, from what its detail carries."""
    if kind in _PLAIN:
        return _PLAIN[kind]
    if kind in ("hvd_trip", "lvd_trip"):
        limit, verb, effect = (
            ("HVD", "reached", "charging off")
            if kind == "hvd_trip"
            else ("LVD", "fell to", "loads off")
        )
        cell, volts = detail.get("cell"), detail.get("voltage")
        if isinstance(cell, int) and isinstance(volts, int | float):
            return f"{limit}: cell {cell} {verb} {_volts(volts)}, {effect}"
        # An older agent names no cell.
        level = "high" if kind == "hvd_trip" else "low"
        return f"{limit}: a cell {verb} the {level} voltage disconnect level, {effect}"
    if kind in ("fault_raised", "fault_cleared"):
        fault = str(detail.get("fault"))
        words = _FAULTS.get(fault, fault.replace("_", " "))
        return f"fault: {words}" if kind == "fault_raised" else f"fault cleared: {words}"
    if kind == "dual_pv_level":
        return f"dual PV level {detail.get('from')} to {detail.get('to')}"
    if kind == "soc_sync":
        reason = str(detail.get("reason"))
        why = _SYNC_REASONS.get(reason, reason.replace("_", " "))
        return (
            f"state of charge set from {_percent(detail.get('from'))} "
            f"to {_percent(detail.get('to'))}: {why}"
        )
    return kind.replace("_", " ")  # a kind from a newer agent, as it is named


def _volts(value: float) -> str:
    return f"{round(float(value), 3):g} V"


def _percent(value: Any) -> str:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return "?"
    return f"{round(float(value), 1):g} %"


@callback
def async_describe_events(
    hass: HomeAssistant,
    async_describe_event: Callable[[str, str, Callable[[Event[Any]], dict[str, str]]], None],
) -> None:
    """Describe the agent's events and each shed and restore of `shedding_manager.py`."""

    def describe_agent_event(event: Event[Any]) -> dict[str, str]:
        """ "SBMS shed: HVD: cell 3 reached 3.61 V, charging off", against the box's event
        entity."""
        data = event.data
        device_id = data.get(ATTR_DEVICE_ID)
        device = dr.async_get(hass).async_get(device_id) if device_id else None
        name = (
            (device.name_by_user or device.name)
            if device is not None
            else f"SBMS {data.get(CONF_AGENT_ID)}"
        )
        entry = {
            LOGBOOK_ENTRY_NAME: str(name),
            LOGBOOK_ENTRY_MESSAGE: agent_event_message(str(data.get(ATTR_KIND)), data),
        }
        if device_id:
            events = [
                item.entity_id
                for item in er.async_entries_for_device(er.async_get(hass), device_id)
                if item.domain == "event" and item.platform == DOMAIN
            ]
            if events:
                entry[LOGBOOK_ENTRY_ENTITY_ID] = events[0]
        return entry

    async_describe_event(DOMAIN, EVENT_SBMS, describe_agent_event)
    async_describe_event(DOMAIN, EVENT_LOAD_SHEDDING, describe)
    async_describe_event(DOMAIN, EVENT_SURPLUS_LOAD, describe_surplus)
