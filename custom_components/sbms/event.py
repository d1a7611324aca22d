"""The agent's events (trips, alarms, faults, dual-PV steps, SoC syncs) as one event entity."""

from __future__ import annotations

from homeassistant.components.event import EventEntity, EventEntityDescription
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import AGENT_EVENT_KINDS, LOGGER
from .entity import SbmsEntity
from .models import AgentEvent
from .runtime_data import SbmsConfigEntry

# Push entities: nothing to poll, so no limit on parallel updates.
PARALLEL_UPDATES = 0

BATTERY_EVENTS = EventEntityDescription(
    key="events",
    translation_key="battery_events",
    event_types=list(AGENT_EVENT_KINDS),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One event entity per box."""
    async_add_entities([SbmsEventEntity(entry.runtime_data.coordinator, BATTERY_EVENTS)])


class SbmsEventEntity(SbmsEntity, EventEntity):
    """Fires for every event the agent publishes; its attributes are the event's detail."""

    _last_available: bool | None = None

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self.coordinator.async_add_event_listener(self._on_agent_event))

    @callback
    def _handle_coordinator_update(self) -> None:
        # Every state message updates the coordinator; this entity only cares whether the
        # agent is reachable, so it skips the state write otherwise.
        if self.available != self._last_available:
            self._last_available = self.available
            super()._handle_coordinator_update()

    @callback
    def _on_agent_event(self, event: AgentEvent) -> None:
        if event.kind not in AGENT_EVENT_KINDS:
            # A newer agent may add kinds (a compatible protocol addition): skip, don't fail.
            LOGGER.debug(
                "SBMS agent %s: unknown event kind %s", self.coordinator.agent_id, event.kind
            )
            return
        self._trigger_event(event.kind, dict(event.detail))
        self.async_write_ha_state()
