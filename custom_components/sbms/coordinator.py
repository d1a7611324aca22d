"""Push data for one battery box: the agent's retained topics, its events and its answers.

The agent publishes; nothing here polls. `SbmsCoordinator` subscribes to the agent's topics,
keeps the latest announce, state and configuration as one `SbmsData` snapshot and hands every
new snapshot to the entities. Requests (`config/set`, `cmd/<name>`) carry a request id and wait
for the matching result, so a caller learns whether the agent accepted the change: nothing is
shown as applied until the agent says so.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import issue_registry as ir
from homeassistant.helpers.event import async_call_later
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .const import (
    ATTR_DEVICE_ID,
    ATTR_KIND,
    CELL_IMBALANCE_REPAIR_AFTER_S,
    CELL_IMBALANCE_REPAIR_V,
    CONF_AGENT_ID,
    CONF_TOPIC_PREFIX,
    DOMAIN,
    EVENT_SBMS,
    KIND_AGENT_OFFLINE,
    KIND_AGENT_ONLINE,
    LOGGER,
    OFFLINE_REPAIR_AFTER_S,
    REQUEST_TIMEOUT_S,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from .models import (
    AgentConfig,
    AgentEvent,
    Announce,
    BoxState,
    HistoryAnswer,
    Payload,
    ProtocolError,
    RequestResult,
    protocol_version_of,
)

CONF_ANNOUNCE = "announce"

# Repair issue ids (translations under "issues" in translations/en.json).
ISSUE_OFFLINE = "agent_offline"
ISSUE_PROTOCOL = "unsupported_protocol"
ISSUE_CONFIG_REJECTED = "config_rejected"
ISSUE_CELL_IMBALANCE = "cell_imbalance"

# The imbalance issue clears below this fraction of its threshold, so it does not flap.
_IMBALANCE_CLEAR_FRACTION = 0.8


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


class SbmsCoordinator(DataUpdateCoordinator[SbmsData]):
    """Subscribes to one agent's topics and keeps its latest data; sends its requests."""

    config_entry: SbmsConfigEntry

    def __init__(self, hass: HomeAssistant, entry: SbmsConfigEntry) -> None:
        super().__init__(
            hass,
            LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} {entry.data[CONF_AGENT_ID]}",
            update_interval=None,  # push: the agent publishes
        )
        self.agent_id: str = entry.data[CONF_AGENT_ID]
        self.topic_prefix: str = entry.data[CONF_TOPIC_PREFIX]
        self.data = SbmsData(announce=Announce.from_dict(entry.data[CONF_ANNOUNCE]))
        self.device_id: str | None = None
        # Requests waiting for their answer, by request id: a RequestResult, or a
        # HistoryAnswer for history/get.
        self._pending: dict[str, asyncio.Future[Any]] = {}
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._event_listeners: list[Callable[[AgentEvent], None]] = []
        self._offline_issue_timer: CALLBACK_TYPE | None = None
        self._imbalance_since: float | None = None
        self._ever_online = False

    # --- lifecycle --------------------------------------------------------------------------

    async def async_start(self) -> None:
        """Register the device and subscribe to the agent's topics."""
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
        self._cancel_offline_timer()
        for future in self._pending.values():
            if not future.done():
                future.cancel()

    def topic(self, suffix: str) -> str:
        return f"{self.topic_prefix}/{suffix}"

    @callback
    def async_add_event_listener(self, listener: Callable[[AgentEvent], None]) -> CALLBACK_TYPE:
        """Call `listener` with every agent event; returns the function that removes it."""
        self._event_listeners.append(listener)
        return lambda: self._event_listeners.remove(listener)

    # --- requests ---------------------------------------------------------------------------

    async def async_set_config(
        self, changes: Mapping[str, Any], *, interactive: bool = False
    ) -> RequestResult:
        """Send a partial configuration; raises unless the agent accepts all of it.

        A rejection of a request nobody watches (`interactive=False`: entities, automations)
        also raises a repair issue, because the change the user asked for did not happen.
        """
        try:
            result = await self._async_request("config/set", {"config": dict(changes)})
        except AgentRejectedError as err:
            if not interactive:
                self._raise_issue(
                    ISSUE_CONFIG_REJECTED,
                    severity=ir.IssueSeverity.WARNING,
                    placeholders={"reason": err.result.describe()},
                )
            raise
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_CONFIG_REJECTED))
        return result

    async def async_command(self, name: str, **arguments: Any) -> RequestResult:
        """Send `cmd/<name>`; raises unless the agent accepts it."""
        if name not in self.data.announce.commands:
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="command_not_supported",
                translation_placeholders={"command": name},
            )
        return await self._async_request(f"cmd/{name}", arguments)

    async def async_history(self, start: float, end: float, limit: int) -> HistoryAnswer:
        """One page of the agent's data log (`history/get`); raises unless it is answered."""
        answer: HistoryAnswer = await self._async_exchange(
            "history/get", {"from": start, "to": end, "limit": limit}
        )
        if not answer.result.accepted:
            raise AgentRejectedError(answer.result)
        return answer

    async def _async_request(self, suffix: str, body: Mapping[str, Any]) -> RequestResult:
        result: RequestResult = await self._async_exchange(suffix, body)
        if not result.accepted:
            raise AgentRejectedError(result)
        return result

    async def _async_exchange(self, suffix: str, body: Mapping[str, Any]) -> Any:
        """Publish one request and wait for the answer carrying its request id."""
        if not self.data.available:
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="agent_offline",
                translation_placeholders={"agent_id": self.agent_id},
            )
        request_id = f"ha-{uuid.uuid4().hex[:16]}"
        future: asyncio.Future[Any] = self.hass.loop.create_future()
        self._pending[request_id] = future
        try:
            await mqtt.async_publish(
                self.hass,
                self.topic(suffix),
                json.dumps({**body, "request_id": request_id}, separators=(",", ":")),
                qos=1,
                retain=False,  # a retained request would be replayed at every agent restart
            )
            async with asyncio.timeout(REQUEST_TIMEOUT_S):
                return await future
        except TimeoutError as err:
            raise AgentRequestError(
                translation_domain=DOMAIN,
                translation_key="agent_timeout",
                translation_placeholders={"agent_id": self.agent_id},
            ) from err
        finally:
            self._pending.pop(request_id, None)

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
        else:
            # First message after setup: a retained offline. The agent was already gone.
            self._start_offline_timer()
        self.async_set_updated_data(replace(self.data, online=online))

    def _went_online(self) -> None:
        if self._ever_online:
            LOGGER.info("SBMS agent %s is back online", self.agent_id)
        self._ever_online = True
        self._cancel_offline_timer()
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_OFFLINE))
        self._fire(KIND_AGENT_ONLINE, {})

    def _went_offline(self) -> None:
        LOGGER.info("SBMS agent %s is offline", self.agent_id)
        self._start_offline_timer()
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
        ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_PROTOCOL))
        self._store_announce(message.payload, announce)
        self.async_set_updated_data(replace(self.data, announce=announce, protocol_supported=True))

    def _unsupported_protocol(self, version: int) -> None:
        LOGGER.error(
            "SBMS agent %s speaks protocol version %s; this integration supports %s",
            self.agent_id,
            version,
            ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS)),
        )
        self._raise_issue(
            ISSUE_PROTOCOL,
            severity=ir.IssueSeverity.ERROR,
            placeholders={
                "version": str(version),
                "supported": ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS)),
            },
        )
        self.async_set_updated_data(replace(self.data, protocol_supported=False))

    def _store_announce(self, payload: Payload, announce: Announce) -> None:
        """Keep the newest announce in the entry; entities follow a changed box by a reload."""
        raw = json.loads(payload)
        entry = self.config_entry
        if raw == entry.data.get(CONF_ANNOUNCE):
            return
        entities_change = _entity_shape(announce) != _entity_shape(self.data.announce)
        self.hass.config_entries.async_update_entry(entry, data={**entry.data, CONF_ANNOUNCE: raw})
        self._register_device(announce)
        if entities_change:
            LOGGER.info("SBMS agent %s changed its outputs or sensors: reloading", self.agent_id)
            self.hass.config_entries.async_schedule_reload(entry.entry_id)

    @callback
    def _on_state(self, message: ReceiveMessage) -> None:
        if not self.data.protocol_supported:
            return
        try:
            state = BoxState.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring state: %s", self.agent_id, err)
            return
        self._check_imbalance(state)
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
            result = RequestResult.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: ignoring result: %s", self.agent_id, err)
            return
        self._answer(result.request_id, result)

    @callback
    def _on_history_result(self, message: ReceiveMessage) -> None:
        try:
            answer = HistoryAnswer.from_payload(message.payload)
        except ProtocolError as err:
            LOGGER.warning("SBMS agent %s: bad history result: %s", self.agent_id, err)
            # The request it answers fails now with the reason, rather than timing out.
            self._fail(_request_id_of(message.payload), err)
            return
        self._answer(answer.result.request_id, answer)

    def _answer(self, request_id: str | None, answer: Any) -> None:
        future = self._pending.get(request_id or "")
        if future is not None and not future.done():
            future.set_result(answer)

    def _fail(self, request_id: str | None, error: Exception) -> None:
        future = self._pending.get(request_id or "")
        if future is not None and not future.done():
            future.set_exception(error)

    # --- device, events and repair issues ---------------------------------------------------

    def _register_device(self, announce: Announce | None = None) -> None:
        announce = announce or self.data.announce
        device = dr.async_get(self.hass).async_get_or_create(
            config_entry_id=self.config_entry.entry_id,
            identifiers={(DOMAIN, self.agent_id)},
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

    def _issue_id(self, issue: str) -> str:
        return f"{issue}_{self.config_entry.entry_id}"

    def _raise_issue(
        self, issue: str, *, severity: ir.IssueSeverity, placeholders: Mapping[str, str]
    ) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self._issue_id(issue),
            is_fixable=False,
            severity=severity,
            translation_key=issue,
            translation_placeholders={
                "agent_id": self.agent_id,
                "title": self.config_entry.title,
                **placeholders,
            },
        )

    def _start_offline_timer(self) -> None:
        self._cancel_offline_timer()
        self._offline_issue_timer = async_call_later(
            self.hass, OFFLINE_REPAIR_AFTER_S, self._offline_for_long
        )

    def _cancel_offline_timer(self) -> None:
        if self._offline_issue_timer is not None:
            self._offline_issue_timer()
            self._offline_issue_timer = None

    @callback
    def _offline_for_long(self, _now: Any) -> None:
        self._offline_issue_timer = None
        self._raise_issue(
            ISSUE_OFFLINE,
            severity=ir.IssueSeverity.WARNING,
            placeholders={"minutes": str(round(OFFLINE_REPAIR_AFTER_S / 60))},
        )

    def _check_imbalance(self, state: BoxState) -> None:
        """A cell spread beyond the threshold for long is worth a repair issue; measured on the
        agent's own timestamps so a replayed or accelerated agent is judged consistently."""
        delta = state.cell_delta if state.measurement_ok else None
        if delta is None:
            return
        if delta >= CELL_IMBALANCE_REPAIR_V:
            if self._imbalance_since is None:
                self._imbalance_since = state.timestamp
            elif state.timestamp - self._imbalance_since >= CELL_IMBALANCE_REPAIR_AFTER_S:
                self._raise_issue(
                    ISSUE_CELL_IMBALANCE,
                    severity=ir.IssueSeverity.WARNING,
                    placeholders={
                        "delta_mv": str(round(delta * 1000)),
                        "threshold_mv": str(round(CELL_IMBALANCE_REPAIR_V * 1000)),
                    },
                )
        elif delta < CELL_IMBALANCE_REPAIR_V * _IMBALANCE_CLEAR_FRACTION:
            self._imbalance_since = None
            ir.async_delete_issue(self.hass, DOMAIN, self._issue_id(ISSUE_CELL_IMBALANCE))


SbmsConfigEntry = ConfigEntry[SbmsCoordinator]


def _request_id_of(payload: Payload) -> str | None:
    """The request id of an answer that did not parse, if it can be read at all."""
    try:
        request_id = json.loads(payload).get("request_id")
    except (ValueError, UnicodeDecodeError, AttributeError):
        return None
    return request_id if isinstance(request_id, str) else None


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
