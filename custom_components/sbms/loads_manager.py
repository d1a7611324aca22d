"""Switched household loads in Home Assistant: what load shedding and surplus loads share.

A kind's pure module decides (`load_shedding.decide`, `surplus_loads.decide`); its manager
(`shedding_manager.py`, `surplus_manager.py`) says which subentries are its loads, what the
decision is given and what its log lines and events are called. This base does the rest the
same way for both: it keeps the runtime in a `Store`, so a restart resumes (shed loads, loads
on surplus, their timers) instead of switching everything at once; follows the box and the
loads' states; decides again when a decision's timer falls due; switches the loads with their
own `turn_on`/`turn_off` services, one at a time and in the decision's order; fires one bus
event per switching (the logbook platform describes it); and tells the master switch and the
per-load sensors of every change.

One manager of each kind per box, in the entry's runtime data. It takes a plain `ConfigEntry`
(not `SbmsConfigEntry`), because the runtime data that names the managers sits above them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime
from typing import Any, ClassVar, Generic, TypeVar

from homeassistant.config_entries import ConfigEntry, ConfigSubentry
from homeassistant.const import (
    ATTR_ENTITY_ID,
    SERVICE_TURN_OFF,
    SERVICE_TURN_ON,
    STATE_OFF,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
)
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
    CONF_LOAD_ENTITY,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_PRIORITY,
    DOMAIN,
    LOGGER,
)
from .coordinator import SbmsCoordinator
from .identity import entity_unique_id
from .switched_loads import SwitchAction, SwitchDecision, SwitchedLoad, SwitchedRuntime

STORAGE_VERSION = 1


LoadT = TypeVar("LoadT", bound=SwitchedLoad)
RuntimeT = TypeVar("RuntimeT", bound=SwitchedRuntime[Any, Any])
ActionT = TypeVar("ActionT", bound=SwitchAction[Any])


def loads_storage_key(kind: str, entry_id: str) -> str:
    return f"{DOMAIN}.{kind}.{entry_id}"


def switched_load_fields(subentry: ConfigSubentry) -> dict[str, Any]:
    """The settings every kind of load has, from its subentry (times in minutes there)."""
    return {
        "load_id": subentry.subentry_id,
        "entity_id": subentry.data[CONF_LOAD_ENTITY],
        "priority": int(subentry.data[CONF_PRIORITY]),
        "min_off_s": float(subentry.data[CONF_MIN_OFF_TIME]) * 60,
        "min_on_s": float(subentry.data[CONF_MIN_ON_TIME]) * 60,
    }


def is_on(state: str | None) -> bool | None:
    """On/off of any switchable entity: climate and water heaters report a mode, not "on"."""
    if state is None or state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    return state != STATE_OFF


class SwitchedLoadsManager(ABC, Generic[LoadT, RuntimeT, ActionT]):
    """Runs one kind of switched loads for one battery box."""

    # What a kind names: its store (`loads_storage_key`), the per-load sensor's key (its unique
    # id ends with the load's subentry id), itself in log lines, and its bus event with the
    # action's word for off and for on.
    STORAGE_KIND: ClassVar[str]
    STATE_KEY: ClassVar[str]
    NAME: ClassVar[str]
    EVENT: ClassVar[str]
    ACTION_WORDS: ClassVar[tuple[str, str]]

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, coordinator: SbmsCoordinator
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.loads: tuple[LoadT, ...] = self._loads_of(entry)
        self.titles = {
            subentry_id: subentry.title for subentry_id, subentry in entry.subentries.items()
        }
        self.enabled = True
        self.runtime: dict[str, RuntimeT] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, loads_storage_key(self.STORAGE_KIND, entry.entry_id)
        )
        self._timer: CALLBACK_TYPE | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._listeners: list[CALLBACK_TYPE] = []

    # --- what a kind says ---------------------------------------------------------------

    @staticmethod
    @abstractmethod
    def _loads_of(entry: ConfigEntry) -> tuple[LoadT, ...]:
        """The entry's subentries of this kind as settings."""

    @abstractmethod
    def _runtime_from_dict(self, data: dict[str, Any]) -> RuntimeT:
        """A load's stored runtime read back; from `{}`, that of a load nothing was decided
        about yet."""

    @abstractmethod
    def _decide(self) -> SwitchDecision[ActionT, RuntimeT] | None:
        """The kind's pure decision on the present inputs; None: nothing to decide."""

    def _follow(self) -> list[CALLBACK_TYPE]:
        """What the kind follows beyond the coordinator's data and the loads' states."""
        return []

    def _box_diagnostics(self) -> dict[str, Any]:
        """The kind's inputs as it sees them now, for the diagnostics."""
        return {}

    @staticmethod
    def _now() -> float:
        """The time of a decision: one clock for both kinds (the tests move it)."""
        return _now()

    # --- lifecycle ----------------------------------------------------------------------

    async def async_start(self) -> None:
        """Restore the stored runtime, then follow the box and the loads."""
        await self._async_restore()
        self._remove_stale_entities()
        self._unsubscribers += [
            self.coordinator.async_add_listener(self._on_box_update),
            *self._follow(),
        ]
        if self.loads:
            self._unsubscribers.append(
                async_track_state_change_event(
                    self.hass, [load.entity_id for load in self.loads], self._on_load_change
                )
            )
        self._on_box_update()

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
            load.load_id: self._runtime_from_dict(loads[load.load_id])
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
        prefix = entity_unique_id(self.coordinator.serial, self.STATE_KEY, "_")
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

    def state_of(self, load_id: str) -> RuntimeT:
        return self.runtime.get(load_id) or self._runtime_from_dict({})

    @callback
    def async_set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._evaluate(force_notify=True)

    # --- inputs -------------------------------------------------------------------------

    @callback
    def _on_box_update(self) -> None:
        self._evaluate()

    @callback
    def _on_load_change(self, _event: Event[EventStateChangedData]) -> None:
        self._evaluate()

    def _loads_on(self) -> dict[str, bool | None]:
        return {load.load_id: self._load_on(load.entity_id) for load in self.loads}

    def _load_on(self, entity_id: str) -> bool | None:
        state = self.hass.states.get(entity_id)
        return is_on(None if state is None else state.state)

    # --- decisions ----------------------------------------------------------------------

    @callback
    def _evaluate(self, *, force_notify: bool = False) -> None:
        decision = self._decide()
        if decision is None:
            return
        changed = decision.runtime != self.runtime
        self.runtime = decision.runtime
        if changed or force_notify:
            self._store.async_delay_save(self._stored, 1.0)
            for listener in list(self._listeners):
                listener()
        self._schedule(decision.next_check)
        if decision.actions:
            self.entry.async_create_task(
                self.hass, self._async_switch(decision.actions), f"sbms {self.NAME.lower()}"
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

    async def _async_switch(self, actions: Sequence[ActionT]) -> None:
        """One at a time and in the decision's order (offs first)."""
        for action in actions:
            domain = action.entity_id.split(".", 1)[0]
            service = SERVICE_TURN_ON if action.turn_on else SERVICE_TURN_OFF
            try:
                await self.hass.services.async_call(
                    domain, service, {ATTR_ENTITY_ID: action.entity_id}, blocking=True
                )
            except HomeAssistantError as err:
                LOGGER.warning(
                    "%s could not %s %s: %s",
                    self.NAME,
                    service.replace("_", " "),
                    action.entity_id,
                    err,
                )
                continue
            self.hass.bus.async_fire(
                self.EVENT,
                {
                    ATTR_ENTITY_ID: action.entity_id,
                    ATTR_ACTION: self.ACTION_WORDS[action.turn_on],
                    ATTR_REASON: action.reason.value,
                    ATTR_LOAD: self.titles.get(action.load_id, action.entity_id),
                    CONF_AGENT_ID: self.coordinator.agent_id,
                },
            )

    # --- diagnostics --------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            **self._box_diagnostics(),
            "loads": [
                {
                    "title": self.titles.get(load.load_id),
                    **{key: value for key, value in asdict(load).items() if key != "load_id"},
                    **self.state_of(load.load_id).as_dict(),
                }
                for load in self.loads
            ],
        }


def _now() -> float:
    return dt_util.utcnow().timestamp()
