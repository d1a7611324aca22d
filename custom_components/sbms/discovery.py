"""Finding agents on the broker: their retained announces, read and checked.

The config flow lists the agents it hears (`async_listen_for_agents`) and checks one before it
adds it (`async_check_agent`: announce retained and status online); setup reads the announce of
the configured agent (`async_read_announce`), since the entry keeps only what identifies the
box and the announce's other fields live in the runtime data.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback

from .const import (
    AGENT_CHECK_S,
    AGENT_ID_PATTERN,
    CONF_AGENT_ID,
    CONF_SERIAL,
    CONF_TOPIC_PREFIX,
    DISCOVERY_LISTEN_S,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from .models import Announce, Payload, ProtocolError, protocol_version_of

# Topic filters for agents under a base of one to three levels (`sbms`, `site1/sbms`, ...).
_LISTEN_FILTERS: Final = ("+/announce", "+/+/announce", "+/+/+/announce")

AGENT_ID = re.compile(AGENT_ID_PATTERN)


class AnnounceError(Exception):
    """An announce the integration cannot use; `reason` is the abort or error key."""

    def __init__(self, reason: str, version: int | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        # The protocol version of an announce this integration does not speak.
        self.version = version


@dataclass(frozen=True, slots=True)
class FoundAgent:
    """An agent whose valid announce was seen on the broker."""

    prefix: str
    announce: Announce

    @property
    def agent_id(self) -> str:
        return self.announce.agent_id

    @property
    def serial(self) -> str:
        """The box's stable identity: the config entry's unique id."""
        return self.announce.serial

    def entry_data(self) -> dict[str, str]:
        """The config entry's data for this agent: what finds it and what identifies it."""
        return {
            CONF_AGENT_ID: self.agent_id,
            CONF_TOPIC_PREFIX: self.prefix,
            CONF_SERIAL: self.serial,
        }

    def label(self) -> str:
        a = self.announce
        return f"{a.agent_id} ({self.prefix}, {a.cells} cells, {a.capacity_ah:g} Ah, {a.source})"

    def placeholders(self) -> dict[str, str]:
        a = self.announce
        outputs = ", ".join(f"{o.name} ({o.type_name})" for o in a.outputs) or "-"
        return {
            "agent_id": a.agent_id,
            "model": a.model,
            "source": a.source,
            "cells": str(a.cells),
            "capacity": f"{a.capacity_ah:g}",
            "outputs": outputs,
            "prefix": self.prefix,
        }


def parse_announce(topic: str, payload: Payload) -> FoundAgent:
    """A usable agent from an announce message, or `AnnounceError` saying why not.

    The version is read first so a newer agent is reported as such even if the rest of its
    announce changed shape.
    """
    if not payload:
        raise AnnounceError("invalid_discovery_info")
    try:
        version = protocol_version_of(payload)
    except ProtocolError as err:
        raise AnnounceError("invalid_discovery_info") from err
    if version not in SUPPORTED_PROTOCOL_VERSIONS:
        raise AnnounceError("unsupported_protocol", version)
    try:
        announce = Announce.from_payload(payload)
    except ProtocolError as err:
        raise AnnounceError("invalid_discovery_info") from err
    prefix = topic.removesuffix("/announce")
    # Topics live under <base>/<agent_id>/: an announce elsewhere is not an agent's own.
    if not AGENT_ID.match(announce.agent_id) or not prefix.endswith(f"/{announce.agent_id}"):
        raise AnnounceError("invalid_discovery_info")
    return FoundAgent(prefix=prefix, announce=announce)


async def async_listen_for_agents(hass: HomeAssistant) -> dict[str, FoundAgent]:
    """Every valid retained announce seen within DISCOVERY_LISTEN_S, keyed by topic prefix."""
    found: dict[str, FoundAgent] = {}

    @callback
    def on_announce(message: ReceiveMessage) -> None:
        try:
            agent = parse_announce(message.topic, message.payload)
        except AnnounceError:
            return  # other devices may use .../announce too; list only SBMS agents
        found[agent.prefix] = agent

    unsubscribers = [
        await mqtt.async_subscribe(hass, topic, on_announce, qos=1) for topic in _LISTEN_FILTERS
    ]
    try:
        await asyncio.sleep(DISCOVERY_LISTEN_S)
    finally:
        _unsubscribe_all(unsubscribers)
    return found


class _Probe:
    """Collects one agent's retained announce and status."""

    def __init__(self, *, need_online: bool) -> None:
        self.announce: ReceiveMessage | None = None
        self.status: str | None = None
        self.ready = asyncio.Event()
        self._need_online = need_online

    @callback
    def on_announce(self, message: ReceiveMessage) -> None:
        # An empty payload clears the retained announce: the agent was removed.
        self.announce = message if message.payload else None
        self._check()

    @callback
    def on_status(self, message: ReceiveMessage) -> None:
        self.status = str(message.payload)
        self._check()

    def _check(self) -> None:
        if self.announce is not None and (self.status == "online" or not self._need_online):
            self.ready.set()


async def _async_probe(hass: HomeAssistant, prefix: str, *, need_online: bool) -> _Probe:
    probe = _Probe(need_online=need_online)
    unsubscribers = [
        await mqtt.async_subscribe(hass, f"{prefix}/announce", probe.on_announce, qos=1),
        await mqtt.async_subscribe(hass, f"{prefix}/status", probe.on_status, qos=1),
    ]
    try:
        async with asyncio.timeout(AGENT_CHECK_S):
            await probe.ready.wait()
    except TimeoutError:
        pass  # judged by the caller from what did arrive
    finally:
        _unsubscribe_all(unsubscribers)
    return probe


async def async_check_agent(hass: HomeAssistant, prefix: str) -> FoundAgent:
    """The agent under `prefix` if it answers; else `AnnounceError` with the form error."""
    probe = await _async_probe(hass, prefix, need_online=True)
    if probe.announce is None:
        raise AnnounceError("agent_not_found")
    try:
        agent = parse_announce(probe.announce.topic, probe.announce.payload)
    except AnnounceError as err:
        raise AnnounceError(
            "unsupported_protocol" if err.reason == "unsupported_protocol" else "invalid_announce",
            err.version,
        ) from err
    if probe.status != "online":
        raise AnnounceError("agent_offline")
    return agent


async def async_read_announce(hass: HomeAssistant, prefix: str) -> FoundAgent:
    """The configured agent's retained announce, online or not (setup needs only that)."""
    probe = await _async_probe(hass, prefix, need_online=False)
    if probe.announce is None:
        raise AnnounceError("agent_not_found")
    return parse_announce(probe.announce.topic, probe.announce.payload)


def _unsubscribe_all(unsubscribers: Sequence[CALLBACK_TYPE]) -> None:
    for unsubscribe in unsubscribers:
        unsubscribe()


async def async_mqtt_problem(hass: HomeAssistant) -> str | None:
    """Why the broker cannot be asked now (an abort reason), or None."""
    if not await mqtt.async_wait_for_mqtt_client(hass):
        return "mqtt_not_configured"
    if not mqtt.is_connected(hass):
        return "mqtt_not_connected"
    return None
