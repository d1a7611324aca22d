"""A stand-in agent for integration tests: it speaks docs/protocol.md through the real broker.

Its payloads start from the examples in docs/protocol.md, so the integration is tested against
the documented contract; the end-to-end tests use the real agent instead. It answers
`config/set` and `cmd/<name>` the way the agent does: a `responder` decides the errors, an
accepted config is merged and republished on `config`.

On top of the examples it sets what an agent with the safety envelope sends (added within
protocol version 1), fixed here so the tests do not move when the examples do: each output's
`wiring` and `settable_types`, and the config's new threshold and temperature keys and its
`remote_window`. Its box: extio3 switches a load, extio4 a charge source, extio5 a signal
(a buzzer: any type but dual PV) and extio6 is the fault output. `as_older_agent()` takes
all of that away again.
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

from custom_components.sbms import ENTRY_MINOR_VERSION, ENTRY_VERSION
from custom_components.sbms.const import CONF_AGENT_ID, CONF_SERIAL, CONF_TOPIC_PREFIX, DOMAIN
from custom_components.sbms.identity import device_identifier, entity_unique_id

# The serial of the documented box (docs/protocol.md's announce example): its identity.
SERIAL = "rpi-10000000a1b2c3d4"
PROTOCOL = Path(__file__).resolve().parents[2] / "docs" / "protocol.md"
_EXAMPLE = re.compile(r"<!-- schema: ([a-z_]+(?::[a-z_]+)?) -->\s*```json\n(.*?)```", re.DOTALL)


def serial_for(agent_id: str) -> str:
    """The serial of a fake agent's box: the documented one for `shed`; other agent ids are
    other boxes."""
    return SERIAL if agent_id == "shed" else f"{SERIAL}-{agent_id}"


def unique_id(key: str) -> str:
    """The unique id of the documented box's entity `key` (with its cell/output suffix)."""
    return entity_unique_id(SERIAL, key)


# The documented box's device registry identifier.
DEVICE_IDENTIFIER = device_identifier(SERIAL)

# (topic suffix, request payload) -> errors [{"field", "reason"}]; empty = accepted
Responder = Callable[[str, dict[str, Any]], list[dict[str, str]]]

# What each output of the fake box switches, and the types a config/set may give it (the
# agent's rules: its wiring's types, never into or out of the fault type 5).
WIRING = {"extio3": "load", "extio4": "charge", "extio5": "signal", "extio6": "fault"}
SETTABLE_TYPES = {
    "charge": [0, 1, 3, 6],
    "load": [0, 2, 4],
    "signal": [0, 1, 2, 3, 4],
    "fault": [5],
    "none": [0],
}
# The agent's default remote window for the documented 8-cell 100 Ah box (the sections Home
# Assistant has entities or forms for; `publish` has none, as on the agent).
REMOTE_WINDOW: dict[str, dict[str, list[float]]] = {
    "thresholds": {
        "hvd": [3.45, 3.6],
        "eoc": [3.4, 3.6],
        "hvd_reconnect": [3.3, 3.5],
        "ovlo": [3.65, 3.75],
        "lvd_reconnect": [3.1, 3.35],
        "lvd": [3.0, 3.2],
        "uvlo": [2.5, 2.6],
        "lockout_release_margin": [0.05, 0.2],
        "hvd_delay_s": [0.0, 5.0],
        "lvd_delay_s": [1.0, 30.0],
        "ovlo_delay_s": [0.0, 2.0],
        "uvlo_delay_s": [0.0, 2.0],
    },
    "battery": {"capacity_ah": [50.0, 200.0]},
    "soc_alarms": {
        "high": [0.0, 100.0],
        "high_release": [0.0, 100.0],
        "low": [0.0, 100.0],
        "low_release": [0.0, 100.0],
    },
    "temperature": {
        "charge_min": [0.0, 10.0],
        "charge_max": [35.0, 45.0],
        "charge_hysteresis": [1.0, 5.0],
        "discharge_min": [-20.0, 0.0],
        "discharge_max": [45.0, 55.0],
        "internal_cutoff": [50.0, 70.0],
        "internal_release": [40.0, 65.0],
    },
    "dual_pv": {
        "imax": [1.0, 50.0],
        "up_to_l2_fraction": [0.05, 0.95],
        "up_to_l3_fraction": [0.05, 0.99],
        "down_fraction": [1.01, 2.0],
        "min_level_hold_s": [0.0, 3600.0],
    },
    "max_soc": {"max_soc": [10.0, 100.0], "hysteresis": [1.0, 50.0]},
}
TRIP_DELAYS = {"hvd_delay_s": 1.0, "lvd_delay_s": 5.0, "ovlo_delay_s": 1.0, "uvlo_delay_s": 1.0}
DISCHARGE_WINDOW = {"discharge_min": -20.0, "discharge_max": 55.0}


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
        self.announce["serial"] = serial_for(agent_id)
        self.announce["topics"] = {
            key: value.replace("sbms/shed", self.prefix)
            for key, value in self.announce["topics"].items()
        }
        self.state = example("state")
        self.config = example("config")
        self.config["agent_id"] = agent_id
        for output in self.announce["outputs"]:
            output["wiring"] = WIRING[output["name"]]
            output["settable_types"] = SETTABLE_TYPES[output["wiring"]]
        for output in self.config["outputs"]:
            output["wiring"] = WIRING[output["name"]]
        self.config["thresholds"].update(TRIP_DELAYS)
        self.config["temperature"].update(DISCHARGE_WINDOW)
        self.config["remote_window"] = copy.deepcopy(REMOTE_WINDOW)
        self.responder: Responder = accept_all
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self._unsubscribe: list[Callable[[], None]] = []

    def as_older_agent(self) -> None:
        """Payloads of an agent from before the safety envelope: no wiring, settable types,
        remote window, trip delays or discharge window (publish them yourself)."""
        for output in self.announce["outputs"]:
            output.pop("wiring", None)
            output.pop("settable_types", None)
        for output in self.config["outputs"]:
            output.pop("wiring", None)
        for key in TRIP_DELAYS:
            self.config["thresholds"].pop(key, None)
        for key in DISCHARGE_WINDOW:
            self.config["temperature"].pop(key, None)
        self.config.pop("remote_window", None)

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

    @property
    def serial(self) -> str:
        return str(self.announce["serial"])

    def config_entry(self, **overrides: Any) -> MockConfigEntry:
        """The entry a finished config flow makes for this agent."""
        arguments: dict[str, Any] = {
            "domain": DOMAIN,
            "title": f"SBMS {self.agent_id}",
            "unique_id": self.serial,
            "data": {
                CONF_AGENT_ID: self.agent_id,
                CONF_TOPIC_PREFIX: self.prefix,
                CONF_SERIAL: self.serial,
            },
            "version": ENTRY_VERSION,
            "minor_version": ENTRY_MINOR_VERSION,
        }
        return MockConfigEntry(**{**arguments, **overrides})

    def legacy_config_entry(self) -> MockConfigEntry:
        """The entry the config flow made before issue 18 (version 1): unique id from the
        agent id, the announce cached in its data."""
        return MockConfigEntry(
            domain=DOMAIN,
            title=f"SBMS {self.agent_id}",
            unique_id=self.agent_id,
            data={
                CONF_AGENT_ID: self.agent_id,
                CONF_TOPIC_PREFIX: self.prefix,
                "announce": copy.deepcopy(self.announce),
            },
            version=1,
        )
