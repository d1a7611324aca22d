"""Surplus loads in Home Assistant: gathers the inputs, carries out the decisions (issue 19).

`surplus_loads.decide` makes every decision; this module feeds it the box's surplus, SoC and
battery power (from the coordinator's data, never from entity states), the loads' on/off
states and the time, switches the loads with their own `turn_on`/`turn_off` services, fires
one bus event per switching (the logbook platform describes it) and keeps the runtime in a
`Store`, so a restart resumes where it was without switching anything.

One manager per box, in the entry's runtime data. The loads are the entry's `surplus_load`
subentries; adding, changing or removing one reloads the entry (the shedding manager's
listener does it for both).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from homeassistant.const import ATTR_ENTITY_ID, SERVICE_TURN_OFF, SERVICE_TURN_ON
from homeassistant.core import CALLBACK_TYPE, Event, EventStateChangedData, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
    async_track_state_change_event,
)
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import (
    ATTR_ACTION,
    ATTR_LOAD,
    ATTR_REASON,
    CONF_AGENT_ID,
    CONF_DISCHARGE_TIME,
    CONF_LOAD_ENTITY,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MIN_SOC,
    CONF_PRIORITY,
    DOMAIN,
    EVENT_SURPLUS_LOAD,
    LOGGER,
    SUBENTRY_SURPLUS_LOAD,
)
from .coordinator import SbmsConfigEntry, SbmsCoordinator
from .identity import entity_unique_id
from .models import BoxState
from .shedding_manager import is_on
from .surplus_loads import (
    SurplusAction,
    SurplusConditions,
    SurplusLoadSettings,
    SurplusRuntime,
    decide,
)

STORAGE_VERSION: Final = 1
# The per-load sensor's key; its unique id ends with the load's subentry id.
SURPLUS_STATE_KEY: Final = "surplus_load_state"
# A full battery holding PV off, on a box that reports no diversion.
_FULL_INTERLOCKS: Final = frozenset({"hvd", "max_soc"})


def storage_key(entry_id: str) -> str:
    return f"{DOMAIN}.surplus_loads.{entry_id}"


def surplus_loads_of(entry: SbmsConfigEntry) -> tuple[SurplusLoadSettings, ...]:
    """The entry's surplus-load subentries as settings; the subentry id is the load id."""
    return tuple(
        SurplusLoadSettings(
            load_id=subentry.subentry_id,
            entity_id=subentry.data[CONF_LOAD_ENTITY],
            priority=int(subentry.data[CONF_PRIORITY]),
            min_soc=float(subentry.data[CONF_MIN_SOC]),
            max_discharge_w=float(subentry.data[CONF_MAX_DISCHARGE_POWER]),
            discharge_s=float(subentry.data[CONF_DISCHARGE_TIME]),
            min_off_s=float(subentry.data[CONF_MIN_OFF_TIME]) * 60,
            min_on_s=float(subentry.data[CONF_MIN_ON_TIME]) * 60,
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_SURPLUS_LOAD
    )


def surplus_of(state: BoxState) -> bool:
    """The agent's surplus (`state.diversion`), else a full battery holding PV off."""
    if state.diversion is not None:
        return state.diversion.surplus
    return not _FULL_INTERLOCKS.isdisjoint(state.interlocks)


class SurplusManager:
    """Runs the surplus loads of one battery box."""

    def __init__(
        self, hass: HomeAssistant, entry: SbmsConfigEntry, coordinator: SbmsCoordinator
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.loads = surplus_loads_of(entry)
        self.titles = {
            subentry_id: subentry.title for subentry_id, subentry in entry.subentries.items()
        }
        self.enabled = True
        self.runtime: dict[str, SurplusRuntime] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._timer: CALLBACK_TYPE | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._listeners: list[CALLBACK_TYPE] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def async_start(self) -> None:
        """Restore the stored runtime, then follow the box and the loads."""
        await self._async_restore()
        self._remove_stale_entities()
        self._unsubscribers += [
            self.coordinator.async_add_listener(self._on_change),
        ]
        if self.loads:
            self._unsubscribers.append(
                async_track_state_change_event(
                    self.hass, [load.entity_id for load in self.loads], self._on_load_change
                )
            )
        self._evaluate()

    async def async_stop(self) -> None:
        """Stop following and write the runtime now (a reload or restart comes next)."""
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        self._unsubscribers.clear()
        self._cancel_timer()
        await self._store.async_save(self._stored())

    async def _async_restore(self) -> None:
        stored = await self._store.async_load() or {}
        self.enabled = stored.get("enabled", True) is not False
        loads = stored.get("loads")
        loads = loads if isinstance(loads, dict) else {}
        self.runtime = {
            load.load_id: SurplusRuntime.from_dict(loads[load.load_id])
            for load in self.loads
            if isinstance(loads.get(load.load_id), dict)
        }

    def _stored(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "loads": {load_id: state.as_dict() for load_id, state in self.runtime.items()},
        }

    def _remove_stale_entities(self) -> None:
        """The per-load sensors of removed loads: they belong to the box, not the subentry."""
        registry = er.async_get(self.hass)
        prefix = entity_unique_id(self.coordinator.serial, SURPLUS_STATE_KEY, "_")
        wanted = {f"{prefix}{load.load_id}" for load in self.loads}
        for entity in er.async_entries_for_config_entry(registry, self.entry.entry_id):
            if entity.unique_id.startswith(prefix) and entity.unique_id not in wanted:
                registry.async_remove(entity.entity_id)

    # --- what entities read and do ------------------------------------------------------

    @callback
    def async_add_listener(self, listener: CALLBACK_TYPE) -> CALLBACK_TYPE:
        """Call `listener` after every change of `enabled` or a load's runtime."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def state_of(self, load_id: str) -> SurplusRuntime:
        return self.runtime.get(load_id, SurplusRuntime())

    @callback
    def async_set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._evaluate(force_notify=True)

    # --- inputs -------------------------------------------------------------------------

    @callback
    def _on_change(self) -> None:
        self._evaluate()

    @callback
    def _on_load_change(self, _event: Event[EventStateChangedData]) -> None:
        self._evaluate()

    def _conditions(self) -> SurplusConditions:
        data = self.coordinator.data
        state = data.state if data.available else None
        measured = state is not None and state.measurement_ok
        return SurplusConditions(
            now=_now(),
            enabled=self.enabled,
            available=data.available,
            soc=None if state is None else state.soc,
            surplus=state is not None and surplus_of(state),
            battery_power=state.battery_power if measured and state is not None else None,
            loads_on={load.load_id: self._load_on(load.entity_id) for load in self.loads},
        )

    def _load_on(self, entity_id: str) -> bool | None:
        state = self.hass.states.get(entity_id)
        return is_on(None if state is None else state.state)

    # --- decisions ----------------------------------------------------------------------

    @callback
    def _evaluate(self, *, force_notify: bool = False) -> None:
        if not self.loads:
            return
        decision = decide(self.loads, self.runtime, self._conditions())
        changed = decision.runtime != self.runtime
        self.runtime = decision.runtime
        if changed or force_notify:
            self._store.async_delay_save(self._stored, 1.0)
            for listener in list(self._listeners):
                listener()
        self._schedule(decision.next_check)
        if decision.actions:
            self.entry.async_create_task(
                self.hass, self._async_switch(decision.actions), "sbms surplus loads"
            )

    def _schedule(self, when: float | None) -> None:
        self._cancel_timer()
        if when is not None:
            self._timer = async_track_point_in_utc_time(
                self.hass, self._on_timer, dt_util.utc_from_timestamp(when)
            )

    @callback
    def _on_timer(self, _now: datetime) -> None:
        self._timer = None
        self._evaluate()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer()
            self._timer = None

    async def _async_switch(self, actions: tuple[SurplusAction, ...]) -> None:
        """One at a time and in order: offs lowest priority first, then the one on."""
        for action in actions:
            domain = action.entity_id.split(".", 1)[0]
            service = SERVICE_TURN_ON if action.turn_on else SERVICE_TURN_OFF
            try:
                await self.hass.services.async_call(
                    domain, service, {ATTR_ENTITY_ID: action.entity_id}, blocking=True
                )
            except HomeAssistantError as err:
                LOGGER.warning(
                    "Surplus loads could not %s %s: %s",
                    service.replace("_", " "),
                    action.entity_id,
                    err,
                )
                continue
            self.hass.bus.async_fire(
                EVENT_SURPLUS_LOAD,
                {
                    ATTR_ENTITY_ID: action.entity_id,
                    ATTR_ACTION: "on" if action.turn_on else "off",
                    ATTR_REASON: action.reason.value,
                    ATTR_LOAD: self.titles.get(action.load_id, action.entity_id),
                    CONF_AGENT_ID: self.coordinator.agent_id,
                },
            )

    # --- diagnostics --------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        conditions = self._conditions()
        return {
            "enabled": self.enabled,
            "surplus": conditions.surplus,
            "battery_power": conditions.battery_power,
            "loads": [
                {
                    "title": self.titles.get(load.load_id),
                    "entity_id": load.entity_id,
                    "priority": load.priority,
                    "min_soc": load.min_soc,
                    "max_discharge_w": load.max_discharge_w,
                    "discharge_s": load.discharge_s,
                    "min_off_s": load.min_off_s,
                    "min_on_s": load.min_on_s,
                    **self.state_of(load.load_id).as_dict(),
                }
                for load in self.loads
            ],
        }


def _now() -> float:
    return dt_util.utcnow().timestamp()
