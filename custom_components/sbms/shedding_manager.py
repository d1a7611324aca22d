"""Optional-load shedding in Home Assistant: gathers the inputs, carries out the decisions.

`load_shedding.decide` makes every decision; this manager feeds it the box's SoC, alarm and LVD
(from the coordinator's data and events, never from entity states, which a user may rename or
disable), the loads' on/off states and the time. Storing, timers, switching and the logbook's
events are the base's (`loads_manager.py`), shared with surplus loads.

The loads are the entry's `load` subentries; adding, changing or removing one (of either kind)
reloads the entry (a dispatcher signal, not an update listener: the box's reconfigure step uses
`async_update_reload_and_abort`, which must not be combined with an update listener).
"""

from __future__ import annotations

from typing import Any, Final

from homeassistant.config_entries import SIGNAL_CONFIG_ENTRY_CHANGED, ConfigEntry, ConfigEntryChange
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .const import (
    CONF_PESSIMISTIC_SOC,
    CONF_RESTORE_ABOVE,
    CONF_SHED_BELOW,
    DEFAULT_PESSIMISTIC_SOC,
    EVENT_LOAD_SHEDDING,
    SUBENTRY_LOAD,
)
from .coordinator import SbmsCoordinator
from .load_shedding import Action, Conditions, Decision, LoadRuntime, LoadSettings, decide
from .loads_manager import (
    SwitchedLoadsManager,
    loads_storage_key,
    switched_load_fields,
)
from .models import AgentEvent, BoxState

# The per-load sensor's key; its unique id ends with the load's subentry id.
LOAD_STATE_KEY: Final = "load_state"
STORAGE_KIND: Final = "load_shedding"


def storage_key(entry_id: str) -> str:
    return loads_storage_key(STORAGE_KIND, entry_id)


def loads_of(entry: ConfigEntry) -> tuple[LoadSettings, ...]:
    """The entry's load subentries as settings; the subentry id is the load id."""
    return tuple(
        LoadSettings(
            **switched_load_fields(subentry),
            shed_below=float(subentry.data[CONF_SHED_BELOW]),
            restore_above=float(subentry.data[CONF_RESTORE_ABOVE]),
        )
        for subentry in entry.subentries.values()
        if subentry.subentry_type == SUBENTRY_LOAD
    )


def subentries_of(entry: ConfigEntry) -> dict[str, tuple[str, str, dict[str, Any]]]:
    """Every subentry's type, title and data: what the loaded entry was built from."""
    return {
        key: (subentry.subentry_type, subentry.title, dict(subentry.data))
        for key, subentry in entry.subentries.items()
    }


def pessimistic_of(entry: ConfigEntry) -> bool:
    """The entry's option; entries from before it have none (off)."""
    return bool(entry.options.get(CONF_PESSIMISTIC_SOC, DEFAULT_PESSIMISTIC_SOC))


class SheddingManager(SwitchedLoadsManager[LoadSettings, LoadRuntime, Action]):
    """Runs load shedding for one battery box."""

    STORAGE_KIND = STORAGE_KIND
    STATE_KEY = LOAD_STATE_KEY
    NAME = "Load shedding"
    EVENT = EVENT_LOAD_SHEDDING
    ACTION_WORDS = ("shed", "restore")

    def __init__(
        self, hass: HomeAssistant, entry: ConfigEntry, coordinator: SbmsCoordinator
    ) -> None:
        super().__init__(hass, entry, coordinator)
        self._subentries = subentries_of(entry)
        self._low_soc_alarm = False
        self._lvd_since: float | None = None
        self._last_state: BoxState | None = None

    @staticmethod
    def _loads_of(entry: ConfigEntry) -> tuple[LoadSettings, ...]:
        return loads_of(entry)

    def _runtime_from_dict(self, data: dict[str, Any]) -> LoadRuntime:
        return LoadRuntime.from_dict(data)

    def _follow(self) -> list[CALLBACK_TYPE]:
        return [
            self.coordinator.async_add_event_listener(self._on_agent_event),
            async_dispatcher_connect(self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._on_entry_change),
        ]

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
            self._lvd_since = self._now()

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
            now=self._now(),
            enabled=self.enabled,
            available=data.available,
            soc=None if state is None else state.soc,
            soc_uncertainty=None if state is None else state.soc_uncertainty,
            pessimistic=pessimistic_of(self.entry),
            low_soc_alarm=self._low_soc_alarm,
            lvd_since=self._lvd_since,
            loads_on=self._loads_on(),
        )

    def _decide(self) -> Decision:
        return decide(self.loads, self.runtime, self._conditions())

    def _box_diagnostics(self) -> dict[str, Any]:
        return {
            "pessimistic_soc": pessimistic_of(self.entry),
            "decision_soc": self._conditions().decision_soc,
            "low_soc_alarm": self._low_soc_alarm,
            "lvd_since": self._lvd_since,
        }
