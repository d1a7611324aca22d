"""Push data for one battery box: the agent's retained topics, its events and its answers.

The agent publishes; nothing here polls. `SbmsCoordinator` subscribes to the agent's topics,
keeps the latest announce, state and configuration as one `SbmsData` snapshot and hands every
new snapshot to the entities and listeners. Requests and the matching of their answers are the
`AgentClient`'s (agent_client.py); the coordinator checks the agent can answer, hands the
client the answers and turns its failures into translated errors."""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .agent_client import AgentClient, RequestRejectedError, RequestTimeoutError
from .const import (
    ATTR_DEVICE_ID,
    ATTR_KIND,
    CONF_AGENT_ID,
    CONF_SERIAL,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    EVENT_SBMS,
    HOLD_DURATION_DEFAULT_H,
    KIND_AGENT_OFFLINE,
    KIND_AGENT_ONLINE,
    LOGGER,
    REQUEST_TIMEOUT_S,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from .identity import device_identifier
from .models import (
    AgentConfig,
    AgentEvent,
    Announce,
    BoxState,
    HistoryAnswer,
    ProtocolError,
    RequestResult,
    protocol_version_of,
)
from .repairs import BoxIssues

_T = TypeVar("_T")


@dataclass(frozen=True, slots=True)
class SbmsData:
    """What the integration knows about one box at one moment."""

    announce: Announce
    online: bool = False
    broker_connected: bool = True
    state: BoxState | None = None
    config: AgentConfig | None = None
    protocol_supported: bool = True

    @property
    def available(self) -> bool:
        """The agent is reachable and speaks a protocol we understand."""
        return self.online and self.broker_connected and self.protocol_supported


class AgentRequestError(HomeAssistantError):
    """A request the agent did not accept: offline, no answer in time, or rejected."""


class AgentRejectedError(AgentRequestError):
    """The agent answered and rejected the request; `result` holds its reasons."""

    def __init__(self, result: RequestResult) -> None:
        super().__init__(
            translation_domain=DOMAIN,
            translation_key="agent_rejected",
            translation_placeholders={"reason": result.describe()},
        )
        self.result = result


@dataclass(slots=True)
class HoldDuration:
    """How long a "Hold <output> off" switch holds: the "Hold duration" number's value (a Home
    Assistant setting, restored by that number), read by the switches; the default while the
    number is disabled."""

    hours: float = HOLD_DURATION_DEFAULT_H


class SbmsCoordinator(DataUpdateCoordinator[SbmsData]):
    """Subscribes to one agent's topics and keeps its latest data; sends its requests."""

    config_entry: ConfigEntry

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, announce: Announce) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.data[CONF_AGENT_ID]}",
            update_interval=None,  # push: the agent publishes
        )
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        self.serial: str = entry.data[CONF_SERIAL]
        self.client = AgentClient(
            entry.data[CONF_TOPIC_PREFIX], self._async_publish, timeout_s=REQUEST_TIMEOUT_S
        )
        self.issues = BoxIssues(hass, entry)
        self.data = SbmsData(announce=announce)
        self.device_id: str | None = None
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._event_listeners: list[Callable[[AgentEvent], None]] = []
        self._ever_online = False

    @property
    def topic_prefix(self) -> str:
        return self.client.prefix

    # --- lifecycle --------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Register the device and subscribe to the agent's topics."""
        self.issues.protocol_supported()
        self._register_device()
        handlers: dict[str, Callable[[ReceiveMessage], None]] = {
            "status": self._on_status,
            "announce": self._on_announce,
            "state": self._on_state,
            "config": self._on_config,
            "event": self._on_event,
            "config/result": self._on_result,
            "cmd/+/result": self._on_result,
            "history/result": self._on_history_result,
        }
        for suffix, handler in handlers.items():
            self._unsubscribers.append(
                await mqtt.async_subscribe(self.hass, self.topic(suffix), handler, qos=1)
            )
        self._unsubscribers.append(
            mqtt.async_subscribe_connection_status(self.hass, self._on_broker_connection)
        )

    @callback
    def async_stop(self) -> None:
        """Unsubscribe and fail requests still waiting (the entry is unloading)."""
        for unsubscribe in self._unsubscribers:
            unsubscribe()
        self._unsubscribers.clear()
        self.client.cancel_all()

    def topic(self, suffix: str) -> str:
        return self.client.topic(suffix)

    @callback
    def async_add_event_listener(self, listener: Callable[[AgentEvent], None]) -> CALLBACK_TYPE:
        """Call `listener` with every agent event; returns the function that removes it."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    # --- requests ---------------------------------------------------------------------------

    async def async_set_config(self, changes: Mapping[str, Any]) -> RequestResult:
        """Send a partial configuration; raises unless the agent accepts all of it (a
        rejection carries the agent's reason to whoever asked: a form, an action's caller,
        an automation's trace)."""
        return await self._async_call(self.client.set_config(changes))

    async def async_command(self, name: str, **arguments: Any) -> RequestResult:
        """Send `cmd/<name>`; raises unless the agent accepts it."""
        if name not in self.data.announce.commands:
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="command_not_supported",
                translation_placeholders={"command": name},
            )
        return await self._async_call(self.client.command(name, arguments))

    async def async_history(self, start: float, end: float, limit: int) -> HistoryAnswer:
        """One page of the agent's data log (`history/get`); raises unless it is answered."""
        return await self._async_call(self.client.history(start, end, limit))

    async def _async_call(self, request: Coroutine[Any, Any, _T]) -> _T:
        """Run one client request, or refuse it while the agent cannot answer; the client's
        failures become translated errors (ProtocolError of a bad answer passes as it is)."""
        if not self.data.available:
            request.close()  # never started: no "was never awaited" warning
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="agent_offline",
                translation_placeholders={"agent_id": self.agent_id},
            )
        try:
            result: _T = await request
        except RequestRejectedError as err:
            raise AgentRejectedError(err.result) from err
        except RequestTimeoutError as err:
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="agent_timeout",
                translation_placeholders={"agent_id": self.agent_id},
            ) from err
        return result

    async def _async_publish(self, topic: str, payload: str) -> None:
        # Never retained: a retained request would be replayed at every agent restart.
        await mqtt.async_publish(self.hass, topic, payload, qos=1, retain=False)

    # --- message handlers -------------------------------------------------------------------

    @callback
    def _on_status(self, message: ReceiveMessage) -> None:
        online = message.payload == "online"
        if online == self.data.online and self._ever_online:
            return
        if online:
            self._went_online()
        elif self._ever_online or not message.retain:
            self._went_offline()
        # else: the first message after setup is a retained offline; the agent was already
        # gone, and its entities are unavailable from the start.
        self.async_set_updated_data(replace(self.data, online=online))

    def _went_online(self) -> None:
        if self._ever_online:
            LOGGER.info("SBMS agent %s is back online", self.agent_id)
        self._ever_online = True
        self._fire(KIND_AGENT_ONLINE, {})

    def _went_offline(self) -> None:
        LOGGER.info("SBMS agent %s is offline", self.agent_id)
        self._fire(KIND_AGENT_OFFLINE, {})

    @callback
    def _on_broker_connection(self, connected: bool) -> None:
        if connected != self.data.broker_connected:
            self.async_set_updated_data(replace(self.data, broker_connected=connected))

    @callback
    def _on_announce(self, message: ReceiveMessage) -> None:
        try:
            version = protocol_version_of(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring announce: %s", self.agent_id, err)
            return
        if version not in SUPPORTED_PROTOCOL_VERSIONS:
            self._unsupported_protocol(version)
            return
        try:
            announce = Announce.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring announce: %s", self.agent_id, err)
            return
        self.issues.protocol_supported()
        if announce == self.data.announce and self.data.protocol_supported:
            return
        if announce.serial != self.serial:
            # Another box answers under this entry's topics: setup says so and stops.
            LOGGER.error(
                "SBMS agent %s now announces another box (serial changed): reloading",
                self.agent_id,
            )
            self.hass.config_entries.async_schedule_reload(self.config_entry.entry_id)
            return
        entities_change = _entity_shape(announce) != _entity_shape(self.data.announce)
        self._register_device(announce)
        self.async_set_updated_data(replace(self.data, announce=announce, protocol_supported=True))
        if entities_change:
            # Entities follow a changed box by a reload, which reads the announce anew.
            LOGGER.info("SBMS agent %s changed its outputs or sensors: reloading", self.agent_id)
            self.hass.config_entries.async_schedule_reload(self.config_entry.entry_id)

    def _unsupported_protocol(self, version: int) -> None:
        LOGGER.error(
            "SBMS agent %s speaks protocol version %s; this integration supports %s",
            self.agent_id,
            version,
            ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS)),
        )
        self.issues.unsupported_protocol(version)
        self.async_set_updated_data(replace(self.data, protocol_supported=False))

    @callback
    def _on_state(self, message: ReceiveMessage) -> None:
        if not self.data.protocol_supported:
            return
        try:
            state = BoxState.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring state: %s", self.agent_id, err)
            return
        self.issues.check_imbalance(state)
        self.async_set_updated_data(replace(self.data, state=state))

    @callback
    def _on_config(self, message: ReceiveMessage) -> None:
        if not self.data.protocol_supported:
            return
        try:
            config = AgentConfig.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring config: %s", self.agent_id, err)
            return
        self.async_set_updated_data(replace(self.data, config=config))

    @callback
    def _on_event(self, message: ReceiveMessage) -> None:
        if not self.data.protocol_supported:
            return
        try:
            event = AgentEvent.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring event: %s", self.agent_id, err)
            return
        self._fire(event.kind, {**event.detail, "timestamp": event.timestamp})
        for listener in list(self._event_listeners):
            listener(event)

    @callback
    def _on_result(self, message: ReceiveMessage) -> None:
        try:
            self.client.handle_result(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring result: %s", self.agent_id, err)

    @callback
    def _on_history_result(self, message: ReceiveMessage) -> None:
        try:
            self.client.handle_history_result(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: bad history result: %s", self.agent_id, err)

    # --- device and bus events --------------------------------------------------------------

    def _register_device(self, announce: Announce | None = None) -> None:
        announce = announce or self.data.announce
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.config_entry.entry_id,
            identifiers={device_identifier(self.serial)},
            name=self.config_entry.title,
            manufacturer="SBMS project",
            model=announce.model,
            model_id=announce.source,
            sw_version=announce.agent_version,
            serial_number=announce.serial,
        )
        self.device_id = device.id

    def _fire(self, kind: str, detail: Mapping[str, Any]) -> None:
        self.hass.bus.async_fire(
            EVENT_SBMS,
            {
                **detail,
                ATTR_DEVICE_ID: self.device_id,
                ATTR_KIND: kind,
                CONF_AGENT_ID: self.agent_id,
            },
        )


def _entity_shape(announce: Announce) -> tuple[Any, ...]:
    """What decides which entities exist; a change means the entry must reload."""
    return (
        announce.cells,
        announce.outputs,
        announce.pv_current,
        announce.temperatures,
        announce.commands,
        announce.config_set,
    )
