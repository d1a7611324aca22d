"""A stand-in agent for integration tests: it speaks docs/protocol.md through the real broker.

Its payloads start from the examples in docs/protocol.md, so the integration is tested against
the documented contract; the end-to-end tests use the real agent instead. It answers
`config/set` and `cmd/<name>` the way the agent does: a `responder` decides the errors, an
accepted config is merged and republished on `config`.
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.core import HomeAssistant, callback
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import CONF_AGENT_ID, CONF_TOPIC_PREFIX, DOMAIN

PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_EXAMPLE = re.compile(r"<!-- schema: ([a-z_]+(?::[a-z_]+)?) -->\s*```json\n(.*?)```", re.DOTALL)

# (topic suffix, request payload) -> errors [{"field", "reason"}]; empty = accepted
Responder = Callable[[str, dict[str, Any]], list[dict[str, str]]]


@cache
def doc_examples() -> dict[str, list[dict[str, Any]]]:
    """Every JSON example in docs/protocol.md by schema name, in document order."""
    examples: dict[str, list[dict[str, Any]]] = {}
    for name, body in _EXAMPLE.findall(PROTOCOL.read_text("utf-8")):
        examples.setdefault(name, []).append(json.loads(body))
    return examples


def example(name: str, index: int = 0) -> dict[str, Any]:
    return copy.deepcopy(doc_examples()[name][index])


def accept_all(_suffix: str, _request: dict[str, Any]) -> list[dict[str, str]]:
    return []


class FakeAgent:
    """One agent id's retained topics and request handling, published through HA's MQTT."""

    def __init__(self, hass: HomeAssistant, agent_id: str = "shed", base: str = "sbms") -> None:
        self.hass = hass
        self.agent_id = agent_id
        self.prefix = f"{base}/{agent_id}"
        self.announce = example("announce")
        self.announce["agent_id"] = agent_id
        self.announce["topics"] = {
            key: value.replace("sbms/shed", self.prefix)
            for key, value in self.announce["topics"].items()
        }
        self.state = example("state")
        self.config = example("config")
        self.config["agent_id"] = agent_id
        self.responder: Responder = accept_all
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._unsubscribe: list[Callable[[], None]] = []

    # --- publishing ---------------------------------------------------------------------

    async def publish(self, suffix: str, payload: Any, *, retain: bool = True) -> None:
        text = payload if isinstance(payload, str) else json.dumps(payload)
        await mqtt.async_publish(self.hass, f"{self.prefix}/{suffix}", text, qos=1, retain=retain)

    async def publish_all(self, *, online: bool = True) -> None:
        """What the agent publishes on connecting: status, announce, config, state."""
        await self.publish("status", "online" if online else "offline")
        await self.publish("announce", self.announce)
        await self.publish("config", self.config)
        await self.publish("state", self.state)

    async def set_state(self, **changes: Any) -> None:
        self.state.update(changes)
        await self.publish("state", self.state)

    async def set_online(self, online: bool) -> None:
        await self.publish("status", "online" if online else "offline")

    async def send_event(self, kind: str, detail: dict[str, Any] | None = None) -> None:
        payload = {"kind": kind, "timestamp": self.state["timestamp"], "detail": detail or {}}
        await self.publish("event", payload, retain=False)

    async def clear_retained(self) -> None:
        for suffix in ("status", "announce", "config", "state"):
            await self.publish(suffix, "", retain=True)

    # --- requests -----------------------------------------------------------------------

    async def start_answering(self) -> None:
        """Subscribe to requests; wait for the subscriptions to reach the broker yourself."""
        for suffix in ("config/set", "cmd/+"):
            self._unsubscribe.append(
                await mqtt.async_subscribe(
                    self.hass, f"{self.prefix}/{suffix}", self._on_request, qos=1
                )
            )

    def stop_answering(self) -> None:
        for unsubscribe in self._unsubscribe:
            unsubscribe()
        self._unsubscribe.clear()

    @callback
    def _on_request(self, message: ReceiveMessage) -> None:
        suffix = message.topic.removeprefix(f"{self.prefix}/")
        request = json.loads(message.payload)
        self.requests.append((suffix, request))
        self.hass.async_create_task(self._answer(suffix, request))

    async def _answer(self, suffix: str, request: dict[str, Any]) -> None:
        errors = self.responder(suffix, request)
        command = "config/set" if suffix == "config/set" else suffix.removeprefix("cmd/")
        result: dict[str, Any] = {
            "request_id": request.get("request_id"),
            "command": command,
            "status": "rejected" if errors else "accepted",
            "errors": errors,
            "timestamp": self.state["timestamp"],
        }
        if command == "config/set" and not errors:
            self._merge_config(request["config"])
            result["config_revision"] = self.config["config_revision"]
            await self.publish("config", self.config)
        topic = "config/result" if command == "config/set" else f"{suffix}/result"
        await self.publish(topic, result, retain=False)

    def _merge_config(self, changes: dict[str, Any]) -> None:
        for section, values in changes.items():
            if section == "outputs":
                for output in self.config["outputs"]:
                    output.update(values.get(output["name"], {}))
            elif isinstance(values, dict):
                self.config[section] = {**(self.config.get(section) or {}), **values}
            else:
                self.config[section] = values
        self.config["config_revision"] += 1

    # --- config entry -------------------------------------------------------------------

    def config_entry(self, **overrides: Any) -> MockConfigEntry:
        """The entry a finished config flow makes for this agent."""
        return MockConfigEntry(
            domain=DOMAIN,
            title=f"SBMS {self.agent_id}",
            unique_id=self.agent_id,
            data={
                CONF_AGENT_ID: self.agent_id,
                CONF_TOPIC_PREFIX: self.prefix,
                "announce": copy.deepcopy(self.announce),
            },
            **overrides,
        )
