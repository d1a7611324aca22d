"""Surplus loads in Home Assistant: gathers the inputs, carries out the decisions (issue 19).

`surplus_loads.decide` makes every decision; this manager feeds it the box's surplus, SoC and
battery power (from the coordinator's data, never from entity states), the loads' on/off
states and the time. Storing, timers, switching and the logbook's events are the base's
(`loads_manager.py`), shared with load shedding.

The loads are the entry's `surplus_load` subentries; adding, changing or removing one reloads
the entry (the shedding manager's listener does it for both).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import ConfigEntry

from .const import (
    CONF_DISCHARGE_TIME,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_SOC,
    EVENT_SURPLUS_LOAD,
    SUBENTRY_SURPLUS_LOAD,
)
from .loads_manager import SwitchedLoadsManager, loads_storage_key, switched_load_fields
from .models import BoxState
from .surplus_loads import (
    SurplusAction,
    SurplusConditions,
    SurplusDecision,
    SurplusLoadSettings,
    SurplusRuntime,
    decide,
)

# The per-load sensor's key; its unique id ends with the load's subentry id.
SURPLUS_STATE_KEY: Final = "surplus_load_state"
STORAGE_KIND: Final = "surplus_loads"
# A full battery holding PV off, on a box that reports no diversion.
_FULL_INTERLOCKS: Final = frozenset({"hvd", "max_soc"})


def storage_key(entry_id: str) -> str:
    return loads_storage_key(STORAGE_KIND, entry_id)


def surplus_loads_of(entry: ConfigEntry) -> tuple[SurplusLoadSettings, ...]:
    """The entry's surplus-load subentries as settings; the subentry id is the load id."""
    return tuple(
        SurplusLoadSettings(
            **switched_load_fields(subentry),
            min_soc=float(subentry.data[CONF_MIN_SOC]),
            max_discharge_w=float(subentry.data[CONF_MAX_DISCHARGE_POWER]),
            discharge_s=float(subentry.data[CONF_DISCHARGE_TIME]),
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_SURPLUS_LOAD
    )


def surplus_of(state: BoxState) -> bool:
    """The agent's surplus (`state.diversion`), else a full battery holding PV off."""
    if state.diversion is not None:
        return state.diversion.surplus
    return not _FULL_INTERLOCKS.isdisjoint(state.interlocks)


class SurplusManager(SwitchedLoadsManager[SurplusLoadSettings, SurplusRuntime, SurplusAction]):
    """Runs the surplus loads of one battery box."""

    STORAGE_KIND = STORAGE_KIND
    STATE_KEY = SURPLUS_STATE_KEY
    NAME = "Surplus loads"
    EVENT = EVENT_SURPLUS_LOAD
    ACTION_WORDS = ("off", "on")

    @staticmethod
    def _loads_of(entry: ConfigEntry) -> tuple[SurplusLoadSettings, ...]:
        return surplus_loads_of(entry)

    def _runtime_from_dict(self, data: dict[str, Any]) -> SurplusRuntime:
        return SurplusRuntime.from_dict(data)

    def _conditions(self) -> SurplusConditions:
        data = self.coordinator.data
        state = data.state if data.available else None
        measured = state is not None and state.measurement_ok
        return SurplusConditions(
            now=self._now(),
            enabled=self.enabled,
            available=data.available,
            soc=None if state is None else state.soc,
            surplus=state is not None and surplus_of(state),
            battery_power=state.battery_power if measured and state is not None else None,
            loads_on=self._loads_on(),
        )

    def _decide(self) -> SurplusDecision | None:
        if not self.loads:
            return None  # nothing to switch: not even the switch's state is stored
        return decide(self.loads, self.runtime, self._conditions())

    def _box_diagnostics(self) -> dict[str, Any]:
        conditions = self._conditions()
        return {"surplus": conditions.surplus, "battery_power": conditions.battery_power}
