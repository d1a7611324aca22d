"""The configuration's settings objects: what a validated configuration file becomes.

Plain frozen dataclasses with the defaults of a good 8S LFP box; no checks here (`rules.py`)
and no reading or writing (`load.py`, `serialise.py`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.control.envelope import (
    Range,
    default_remote_window,
)
from edge_agent.control.settings import (
    ControlSettings,
    OutputSettings,
    OutputType,
    Wiring,
    default_outputs,
)

CellMonitorChip = Literal["isl94203", "isl94202"]
ShuntChip = Literal["ina228", "ina226"]
OutputDriver = Literal["mcp23008", "gpiod"]

CELL_MONITOR_CHIPS: tuple[CellMonitorChip, ...] = ("isl94203", "isl94202")
SHUNT_CHIPS: tuple[ShuntChip, ...] = ("ina228", "ina226")
OUTPUT_DRIVERS: tuple[OutputDriver, ...] = ("mcp23008", "gpiod")
CHEMISTRIES = ("lfp",)
SOURCE_TYPES = ("i2c", "sbms0")
SBMS0_BAUD_DEFAULT = 921600  # the SBMS's USART with the WiFi board fitted
# The data log's default file, named after the state database ("state.db" -> "state.datalog.db")
# so several agents sharing a directory keep separate logs.
DATA_LOG_SUFFIX = ".datalog.db"

CELL_COUNT_RANGE = (3, 8)
WIRINGS = tuple(wiring.value for wiring in Wiring)
# The heartbeat line's name among the output banks' lines: not a valid output name, so it can
# never clash with one (and never reaches the control core or MQTT).
HEARTBEAT_LINE = "@heartbeat"
# Pulses must come at least this much more often than the one-shot holds (jitter, a slow bus).
HEARTBEAT_MARGIN = 1.3
ISL_ADDRESSES = (0x28, 0x29)
INA_ADDRESS_RANGE = (0x40, 0x4F)
MCP_ADDRESS_RANGE = (0x20, 0x27)
MCP_PIN_RANGE = (0, 7)

# Names end up in MQTT topics and Home Assistant ids: no '/', '+', '#' or spaces.
NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
NAME_RULE = "must be 1 to 64 letters, digits, '_' or '-'"


@dataclass(frozen=True, slots=True)
class CellMonitorSettings:
    chip: CellMonitorChip = "isl94203"
    address: int = 0x28


@dataclass(frozen=True, slots=True)
class ShuntSettings:
    chip: ShuntChip = "ina228"
    address: int = 0x40
    rated_current_a: float = 250.0  # shunt rating: this current gives rated_millivolts
    rated_millivolts: float = 75.0
    zero_offset_a: float = 0.0  # subtracted from every reading (zero calibration)


@dataclass(frozen=True, slots=True)
class OutputPinSettings:
    """Where one EXTIO output is wired. mcp23008 uses address + pin, gpiod uses chip + line."""

    name: str
    driver: OutputDriver
    address: int | None = None  # mcp23008: 0x20-0x27
    pin: int | None = None  # mcp23008: 0-7
    chip: str | None = None  # gpiod: chip label ("pinctrl-bcm2835") or "/dev/gpiochipN"
    line: str | int | None = None  # gpiod: line name ("GPIO17") or offset
    active_low: bool = False


@dataclass(frozen=True, slots=True)
class HeartbeatSettings:
    """The line the agent pulses once per decided sample, retriggering the external one-shot
    that enables the outputs (docs/safety.md): a dead or hung agent stops the pulses, and the
    outputs go off in hardware within `hold_s`."""

    line: OutputPinSettings  # name HEARTBEAT_LINE
    hold_s: float  # the one-shot's shortest output pulse as built (its tW at the low end)


def default_output_pins() -> tuple[OutputPinSettings, ...]:
    """The default outputs (see `default_outputs`) on an MCP23008 at 0x20, pins 0-3."""
    return tuple(
        OutputPinSettings(name=output.name, driver="mcp23008", address=0x20, pin=index)
        for index, output in enumerate(default_outputs())
    )


@dataclass(frozen=True, slots=True)
class HardwareSettings:
    i2c_bus: int = 1
    cell_monitor: CellMonitorSettings = field(default_factory=CellMonitorSettings)
    battery_shunt: ShuntSettings = field(default_factory=ShuntSettings)
    pv_shunt: ShuntSettings | None = None
    outputs: tuple[OutputPinSettings, ...] = field(default_factory=default_output_pins)
    heartbeat: HeartbeatSettings | None = None


@dataclass(frozen=True, slots=True)
class SerialSourceSettings:
    port: str  # /dev/ttyUSB0, a /dev/serial/by-id/ link, or a pty in tests
    baud: int = SBMS0_BAUD_DEFAULT


@dataclass(frozen=True, slots=True)
class HttpSourceSettings:
    url: str  # the WiFi board's rawData page, e.g. http://192.168.4.1/rawData
    interval_s: float = 2.0  # the board refreshes about every 2 s
    timeout_s: float = 5.0


@dataclass(frozen=True, slots=True)
class SourceSettings:
    """Where measurements come from: our own I2C chips, or a stock SBMS0/SBMS120."""

    type: Literal["i2c", "sbms0"] = "i2c"
    serial: SerialSourceSettings | None = None
    http: HttpSourceSettings | None = None
    stale_after_s: float = 10.0  # sbms0: no valid frame this long -> measurement_ok false
    require_checksum: bool = False  # sbms0: also drop frames of firmware without a checksum


def sbms0_outputs() -> tuple[OutputSettings, ...]:
    """A stock SBMS's own two switched paths, read-only for the agent (CFET/DFET, s2)."""
    return (
        OutputSettings("pv", OutputType.HVD, Wiring.CHARGE),
        OutputSettings("load", OutputType.LVD, Wiring.LOAD),
    )


@dataclass(frozen=True, slots=True)
class TimingSettings:
    sample_interval_s: float = 1.0
    state_save_interval_s: float = 1.0
    status_interval_s: float = 1.0


@dataclass(frozen=True, slots=True)
class StorageSettings:
    state_path: Path = Path("/var/lib/sbms-agent/state.db")
    data_log_path: Path | None = None  # None: next to the state database (DATA_LOG_SUFFIX)

    @property
    def data_log_file(self) -> Path:
        if self.data_log_path is not None:
            return self.data_log_path
        return self.state_path.with_name(self.state_path.stem + DATA_LOG_SUFFIX)


@dataclass(frozen=True, slots=True)
class DataLogSettings:
    """The interval records (storage/data_log.py)."""

    enabled: bool = True
    interval_s: int = 120
    retention_days: int = 365


@dataclass(frozen=True, slots=True)
class AgentConfig:
    control: ControlSettings = field(default_factory=ControlSettings)
    hardware: HardwareSettings = field(default_factory=HardwareSettings)
    timing: TimingSettings = field(default_factory=TimingSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    data_log: DataLogSettings = field(default_factory=DataLogSettings)
    agent_id: str = "sbms"
    publish: PublishSettings = field(default_factory=PublishSettings)
    mqtt: MqttSettings | None = None  # None: no MQTT link (the agent still protects)
    source: SourceSettings = field(default_factory=SourceSettings)
    # How far remote changes may move each setting ("thresholds.hvd" -> range): the file's
    # `remote_window` over the defaults of control.envelope. Never settable remotely.
    remote_window: Mapping[str, Range] = field(default_factory=dict)
    # Things worth telling whoever runs the box (e.g. a wiring taken from a type): logged at
    # start and printed by check-config. Not part of the configuration's value.
    notes: tuple[str, ...] = field(default=(), compare=False)
    # Where a default stands in for what only the file can know (what the outputs switch, the
    # shunt's rating) or for security (TLS without a CA file): one line per key, logged at
    # start and printed by check-config. Not part of the configuration's value.
    warnings: tuple[str, ...] = field(default=(), compare=False)


class ConfigError(Exception):
    """The configuration was rejected. `problems` holds one line per problem."""

    def __init__(self, problems: Iterable[str], source: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source is not None else ""
        super().__init__("\n".join(prefix + problem for problem in self.problems))


def effective_remote_window(config: AgentConfig) -> Mapping[str, Range]:
    """The window remote changes move in. A configuration built in code (not parsed from a
    file) has none of its own: the defaults for its settings apply."""
    return config.remote_window or default_remote_window(config.control)
