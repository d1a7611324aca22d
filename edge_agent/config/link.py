"""The settings of the MQTT link: how the agent reaches its broker (`mqtt`: address,
credentials, TLS, timing) and how often and on what changes it publishes state (`publish`).

Here, in the configuration, so that the configuration and the link (which imports the
configuration) share them without an import cycle.

Connection settings stay local (never settable over MQTT): a remote request that could change
where the agent connects or with which credentials would let anyone on the broker take it over.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Literal

from edge_agent.control.values import is_number

MqttProtocol = Literal[5, 4]  # 5: MQTT 5.0; 4: MQTT 3.1.1 (paho's protocol number)

DEFAULT_PORT = 1883
DEFAULT_TLS_PORT = 8883


@dataclass(frozen=True, slots=True)
class MqttSettings:
    """Connection settings of the MQTT link; the defaults suit a broker on the local network."""

    host: str
    agent_id: str = "sbms"
    port: int = DEFAULT_PORT
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # never printed in logs
    tls: bool = False
    ca_file: Path | None = None  # None with tls: the system's trusted CAs
    cert_file: Path | None = None  # client certificate (mutual TLS)
    key_file: Path | None = None
    # Certificate checking stays on unless explicitly disabled: a broker impersonator could
    # otherwise switch outputs off and read the whole configuration.
    tls_insecure: bool = False
    keepalive_s: int = 30
    base_topic: str = "sbms"
    client_id: str | None = None  # None: f"sbms-agent-{agent_id}"
    protocol: MqttProtocol = 5
    backoff_initial_s: float = 1.0
    backoff_max_s: float = 60.0
    event_queue_size: int = 1000
    # Requests waiting to be handled; more are dropped and counted (edge_agent.mqtt.limits).
    incoming_queue_size: int = 100
    # How long one broker operation (connect, publish acknowledgement) may take before the
    # connection is treated as dead and rebuilt.
    operation_timeout_s: float = 10.0
    # Native Home Assistant MQTT discovery, for users without the sbms integration. Off by
    # default: with the integration installed it would create every entity twice.
    ha_discovery: bool = False
    ha_discovery_prefix: str = "homeassistant"

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise ValueError("; ".join(problems))

    @property
    def effective_client_id(self) -> str:
        return self.client_id if self.client_id is not None else f"sbms-agent-{self.agent_id}"

    def problems(self) -> list[str]:
        """Every rule this instance breaks (empty when valid)."""
        problems: list[str] = []
        if not self.host:
            problems.append("host: must not be empty")
        if not 1 <= self.port <= 65535:
            problems.append("port: must be 1 to 65535")
        if self.password is not None and self.username is None:
            problems.append("password: needs a username")
        if (self.cert_file is None) != (self.key_file is None):
            problems.append("cert_file/key_file: give both or neither")
        if not self.tls and (self.ca_file or self.cert_file or self.tls_insecure):
            problems.append("tls: ca_file, cert_file and tls_insecure need tls: true")
        if not 5 <= self.keepalive_s <= 3600:
            problems.append("keepalive_s: must be 5 to 3600 seconds")
        if not _valid_base(self.base_topic):
            problems.append("base_topic: must be non-empty, without '+', '#' or edge '/'")
        if not _valid_base(self.ha_discovery_prefix):
            problems.append("ha_discovery_prefix: must be non-empty, without '+', '#' or edge '/'")
        if self.protocol not in (4, 5):
            problems.append("protocol: must be 5 (MQTT 5) or 4 (MQTT 3.1.1)")
        if not 0 < self.backoff_initial_s <= self.backoff_max_s:
            problems.append("backoff_initial_s: must be > 0 and <= backoff_max_s")
        if self.event_queue_size < 1:
            problems.append("event_queue_size: must be at least 1")
        if not 1 <= self.incoming_queue_size <= 10_000:
            problems.append("incoming_queue_size: must be between 1 and 10000")
        if self.operation_timeout_s <= 0:
            problems.append("operation_timeout_s: must be > 0")
        return problems


def _valid_base(base: str) -> bool:
    """A topic prefix the agent can build on: no wildcards, no empty first or last level."""
    return (
        bool(base)
        and not any(c in base for c in "+#")
        and not (base.startswith("/") or base.endswith("/"))
    )


_MAX_INTERVAL_S = 3600.0  # Home Assistant marks a sensor unavailable long before this anyway


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """The `publish` config section. A delta of 0 publishes on any change."""

    interval_s: float = 30.0  # a full state at least this often
    min_interval_s: float = 1.0  # and never more often than this
    soc_delta: float = 0.5  # percent
    voltage_delta: float = 0.05  # pack volts
    current_delta: float = 0.5  # amps (battery, PV, load), or the relative delta if larger
    current_relative_delta: float = 0.05  # fraction of the last published value
    cell_delta: float = 0.01  # volts, any cell
    temperature_delta: float = 0.5  # degrees Celsius, any sensor

    @classmethod
    def every_sample(cls) -> PublishSettings:
        """Publish every report: no deadbands, no rate limit (tests and latency benchmarks)."""
        return cls(
            interval_s=0.001,
            min_interval_s=0.0,
            soc_delta=0.0,
            voltage_delta=0.0,
            current_delta=0.0,
            current_relative_delta=0.0,
            cell_delta=0.0,
            temperature_delta=0.0,
        )


def validate_publish_settings(settings: PublishSettings) -> list[str]:
    """Problems as "publish.key: rule" lines, like `edge_agent.config` (empty = valid)."""
    problems: list[str] = []
    for item in fields(settings):
        value = getattr(settings, item.name)
        if not is_number(value):
            problems.append(f"publish.{item.name}: must be a number (got {value!r})")
        elif not math.isfinite(value) or value < 0:
            problems.append(f"publish.{item.name}: must be a finite number >= 0 (got {value!r})")
    if problems:
        return problems
    if not 0 < settings.interval_s <= _MAX_INTERVAL_S:
        problems.append(
            f"publish.interval_s: must be above 0 and at most {_MAX_INTERVAL_S:g} "
            f"(got {settings.interval_s:g})"
        )
    if settings.min_interval_s > settings.interval_s:
        problems.append(
            "publish.min_interval_s: must not exceed publish.interval_s "
            f"(got {settings.min_interval_s:g} > {settings.interval_s:g})"
        )
    if settings.current_relative_delta > 1:
        problems.append(
            "publish.current_relative_delta: must be between 0 and 1 "
            f"(got {settings.current_relative_delta:g})"
        )
    return problems
