"""Optional-load shedding in Home Assistant: gathers the inputs, carries out the decisions.

`load_shedding.decide` makes every decision; this module feeds it the box's SoC, alarm and LVD
(from the coordinator's data and events, never from entity states, which a user may rename or
disable), the loads' on/off states, and the time, then switches the loads with their own
`turn_on`/`turn_off` services, fires one bus event per shed or restore (the logbook platform
describes it) and keeps the runtime in a `Store`, so a restart resumes shed loads and their
timers instead of switching everything at once.

One manager per box, in the entry's runtime data. The loads are the entry's `load`
subentries; adding, changing or removing one reloads the entry (a dispatcher signal, not an
update listener: the box's reconfigure step uses `async_update_reload_and_abort`, which must
not be combined with an update listener).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final

from homeassistant.config_entries import SIGNAL_CONFIG_ENTRY_CHANGED, ConfigEntryChange
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
from homeassistant.helpers.dispatcher import async_dispatcher_connect
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
    CONF_PESSIMISTIC_SOC,
    CONF_PRIORITY,
    CONF_RESTORE_ABOVE,
    CONF_SHED_BELOW,
    DEFAULT_PESSIMISTIC_SOC,
    DOMAIN,
    EVENT_LOAD_SHEDDING,
    LOGGER,
    SUBENTRY_LOAD,
)
from .coordinator import SbmsConfigEntry, SbmsCoordinator
from .identity import entity_unique_id
from .load_shedding import Action, Conditions, LoadRuntime, LoadSettings, decide
from .models import AgentEvent, BoxState

STORAGE_VERSION: Final = 1
# The per-load sensor's key; its unique id ends with the load's subentry id.
LOAD_STATE_KEY: Final = "load_state"


def storage_key(entry_id: str) -> str:
    return f"{DOMAIN}.load_shedding.{entry_id}"


def loads_of(entry: SbmsConfigEntry) -> tuple[LoadSettings, ...]:
    """The entry's load subentries as settings; the subentry id is the load id."""
    return tuple(
        LoadSettings(
            load_id=subentry.subentry_id,
            entity_id=subentry.data[CONF_LOAD_ENTITY],
            priority=int(subentry.data[CONF_PRIORITY]),
            shed_below=float(subentry.data[CONF_SHED_BELOW]),
            restore_above=float(subentry.data[CONF_RESTORE_ABOVE]),
            min_off_s=float(subentry.data[CONF_MIN_OFF_TIME]) * 60,
            min_on_s=float(subentry.data[CONF_MIN_ON_TIME]) * 60,
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_LOAD
    )


def subentries_of(entry: SbmsConfigEntry) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every subentry's type, title and data: what the loaded entry was built from."""
    return {
        key: (subentry.subentry_type, subentry.title, dict(subentry.data))
        for key, subentry in entry.subentries.items()
    }


def pessimistic_of(entry: SbmsConfigEntry) -> bool:
    """The entry's option; entries from before it have none (off)."""
    return bool(entry.options.get(CONF_PESSIMISTIC_SOC, DEFAULT_PESSIMISTIC_SOC))


def is_on(state: str | None) -> bool | None:
    """On/off of any switchable entity: climate and water heaters report a mode, not "on"."""
    if state is None or state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    return state != STATE_OFF


class SheddingManager:
    """Runs load shedding for one battery box."""

    def __init__(
        self, hass: HomeAssistant, entry: SbmsConfigEntry, coordinator: SbmsCoordinator
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self.loads = loads_of(entry)
        self.titles = {
            subentry_id: subentry.title for subentry_id, subentry in entry.subentries.items()
        }
        self._subentries = subentries_of(entry)
        self.enabled = True
        self.runtime: dict[str, LoadRuntime] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._low_soc_alarm = False
        self._lvd_since: float | None = None
        self._last_state: BoxState | None = None
        self._timer: CALLBACK_TYPE | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._listeners: list[CALLBACK_TYPE] = []

    # --- lifecycle ----------------------------------------------------------------------

    async def async_start(self) -> None:
        """Restore the stored runtime, then follow the box and the loads."""
        await self._async_restore()
        self._remove_stale_entities()
        self._unsubscribers += [
            self.coordinator.async_add_listener(self._on_box_update),
            self.coordinator.async_add_event_listener(self._on_agent_event),
            async_dispatcher_connect(self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._on_entry_change),
        ]
        if self.loads:
            self._unsubscribers.append(
                async_track_state_change_event(
                    self.hass, [load.entity_id for load in self.loads], self._on_load_change
                )
            )
        self._read_box_state()
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
            load.load_id: LoadRuntime.from_dict(loads[load.load_id])
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
        prefix = entity_unique_id(self.coordinator.serial, LOAD_STATE_KEY, "_")
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

    def state_of(self, load_id: str) -> LoadRuntime:
        return self.runtime.get(load_id, LoadRuntime())

    @callback
    def async_set_enabled(self, enabled: bool) -> None:
        self.enabled = enabled
        self._evaluate(force_notify=True)

    # --- inputs -------------------------------------------------------------------------

    @callback
    def _on_box_update(self) -> None:
        self._read_box_state()
        self._evaluate()

    def _read_box_state(self) -> None:
        """Alarm and LVD as the latest state tells them; only a new state overrides events."""
        state = self.coordinator.data.state
        if state is None or state is self._last_state:
            return
        self._last_state = state
        if state.low_soc_alarm is not None:
            self._low_soc_alarm = state.low_soc_alarm
        self._set_lvd("lvd" in state.interlocks)

    def _set_lvd(self, tripped: bool) -> None:
        if not tripped:
            self._lvd_since = None
        elif self._lvd_since is None:
            self._lvd_since = _now()

    @callback
    def _on_agent_event(self, event: AgentEvent) -> None:
        if event.kind in ("lvd_trip", "lvd_release"):
            self._set_lvd(event.kind == "lvd_trip")
        elif event.kind in ("low_soc_alarm", "low_soc_clear"):
            self._low_soc_alarm = event.kind == "low_soc_alarm"
        else:
            return
        self._evaluate()

    @callback
    def _on_load_change(self, _event: Event[EventStateChangedData]) -> None:
        self._evaluate()

    @callback
    def _on_entry_change(self, change: ConfigEntryChange, entry: Any) -> None:
        """Reload when a load (shed-able or surplus, surplus_manager.py) is added, changed or
        removed: this one reload serves both managers. Other entry updates (a new announce)
        do not matter."""
        if change is not ConfigEntryChange.UPDATED or entry.entry_id != self.entry.entry_id:
            return
        if subentries_of(entry) != self._subentries:
            self.hass.config_entries.async_schedule_reload(entry.entry_id)
        else:
            self._evaluate()  # the pessimistic option may have changed: it applies at once

    def _conditions(self) -> Conditions:
        data = self.coordinator.data
        state = data.state if data.available else None
        return Conditions(
            now=_now(),
            enabled=self.enabled,
            available=data.available,
            soc=None if state is None else state.soc,
            soc_uncertainty=None if state is None else state.soc_uncertainty,
            pessimistic=pessimistic_of(self.entry),
            low_soc_alarm=self._low_soc_alarm,
            lvd_since=self._lvd_since,
            loads_on={load.load_id: self._load_on(load.entity_id) for load in self.loads},
        )

    def _load_on(self, entity_id: str) -> bool | None:
        state = self.hass.states.get(entity_id)
        return is_on(None if state is None else state.state)

    # --- decisions ----------------------------------------------------------------------

    @callback
    def _evaluate(self, *, force_notify: bool = False) -> None:
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
                self.hass, self._async_switch(decision.actions), "sbms load shedding"
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

    async def _async_switch(self, actions: tuple[Action, ...]) -> None:
        """One at a time and in order: offs lowest priority first, then ons highest first."""
        for action in actions:
            domain = action.entity_id.split(".", 1)[0]
            service = SERVICE_TURN_ON if action.turn_on else SERVICE_TURN_OFF
            try:
                await self.hass.services.async_call(
                    domain, service, {ATTR_ENTITY_ID: action.entity_id}, blocking=True
                )
            except HomeAssistantError as err:
                LOGGER.warning(
                    "Load shedding could not %s %s: %s",
                    service.replace("_", " "),
                    action.entity_id,
                    err,
                )
                continue
            self._log(action)

    def _log(self, action: Action) -> None:
        self.hass.bus.async_fire(
            EVENT_LOAD_SHEDDING,
            {
                ATTR_ENTITY_ID: action.entity_id,
                ATTR_ACTION: "restore" if action.turn_on else "shed",
                ATTR_REASON: action.reason.value,
                ATTR_LOAD: self.titles.get(action.load_id, action.entity_id),
                CONF_AGENT_ID: self.coordinator.agent_id,
            },
        )

    # --- diagnostics --------------------------------------------------------------------

    def diagnostics(self) -> dict[str, Any]:
        return {
            "enabled": self.enabled,
            "pessimistic_soc": pessimistic_of(self.entry),
            "decision_soc": self._conditions().decision_soc,
            "low_soc_alarm": self._low_soc_alarm,
            "lvd_since": self._lvd_since,
            "loads": [
                {
                    "title": self.titles.get(load.load_id),
                    "entity_id": load.entity_id,
                    "priority": load.priority,
                    "shed_below": load.shed_below,
                    "restore_above": load.restore_above,
                    "min_off_s": load.min_off_s,
                    "min_on_s": load.min_on_s,
                    **self.state_of(load.load_id).as_dict(),
                }
                for load in self.loads
            ],
        }


def _now() -> float:
    return dt_util.utcnow().timestamp()
