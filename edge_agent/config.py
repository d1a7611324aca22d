"""The agent's configuration: one YAML file, validated before anything runs.

Validation is two-phase. First voluptuous checks the shape (known keys only, types, choices),
then the built settings are checked as a whole (threshold order, address ranges, pin clashes).
Every problem names its key path ("outputs[2].pin") and the rule broken; a configuration is
either returned complete or rejected with the full list: nothing is ever half-applied.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, cast

import voluptuous as vol
import voluptuous.error as vol_error
import yaml

from edge_agent.control.envelope import (
    LFP_RANGES,
    SAMPLE_INTERVAL,
    Range,
    default_remote_window,
    envelope_problems,
    envelope_range,
    setting_value,
)
from edge_agent.control.extio import ALLOWED_TYPES, charges, inferred_wiring, remote_types
from edge_agent.control.ocv_curve import curve_problem
from edge_agent.control.settings import (
    BalanceSettings,
    CellThresholds,
    ControlSettings,
    DualPvSettings,
    MaxSocSettings,
    OutputSettings,
    OutputType,
    SocAlarmSettings,
    SocSettings,
    TemperatureLimits,
    Wiring,
    default_outputs,
)
from edge_agent.mqtt.publish_settings import PublishSettings, validate_publish_settings
from edge_agent.mqtt.settings import MqttSettings
from edge_agent.problems import unknown_key

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
_NAME_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_NAME_RULE = "must be 1 to 64 letters, digits, '_' or '-'"


# ---------------------------------------------------------------------------------------------
# Settings objects
# ---------------------------------------------------------------------------------------------


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


class ConfigError(Exception):
    """The configuration was rejected. `problems` holds one line per problem."""

    def __init__(self, problems: Iterable[str], source: Path | None = None) -> None:
        self.problems = tuple(problems)
        self.source = source
        prefix = f"{source}: " if source is not None else ""
        super().__init__("\n".join(prefix + problem for problem in self.problems))


def default_config() -> AgentConfig:
    """A good 8S LFP box: the SBMS0 defaults on an ISL94203, an INA228 and an MCP23008 (the
    configuration an empty file gives, remote window included)."""
    return parse_config({})


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # "<<" merges may legitimately be overridden
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def load_config(path: Path) -> AgentConfig:
    """Read and validate a YAML configuration file. Raises ConfigError naming the file.

    A relative storage.state_path is taken relative to the configuration file's directory
    (a service's working directory is usually "/").
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}"], source=path) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_describe_yaml_error(exc)], source=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], source=path) from None
    if data is None:
        raise ConfigError(["the file is empty: expected a mapping of settings"], source=path)
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ConfigError([f"the top level must be a mapping of settings (got {kind})"], path)
    try:
        config = parse_config(data)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=path) from None
    return replace(config, storage=_absolute_storage(config.storage, path.parent))


def _absolute_storage(storage: StorageSettings, directory: Path) -> StorageSettings:
    def absolute(file: Path) -> Path:
        return file if file.is_absolute() else (directory / file).absolute()

    data_log_path = storage.data_log_path
    return replace(
        storage,
        state_path=absolute(storage.state_path),
        data_log_path=None if data_log_path is None else absolute(data_log_path),
    )


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = exc.problem or exc.context or "syntax error"
    return f"invalid YAML{where}: {problem}"


def parse_config(data: Mapping[str, Any]) -> AgentConfig:
    """Validate an already-parsed mapping (YAML or JSON) and build the configuration."""
    untrusted: object = data  # callers may pass JSON of any shape despite the annotation
    if not isinstance(untrusted, Mapping):
        kind = type(untrusted).__name__
        raise ConfigError([f"configuration: must be a mapping (got {kind})"])
    try:
        clean: dict[str, Any] = _TOP_SCHEMA(dict(data))
    except vol.MultipleInvalid as exc:
        raise ConfigError(_describe_invalid(error) for error in exc.errors) from None
    mqtt_problems: list[str] = []
    config = _build_config(clean, mqtt_problems)
    problems = [
        *validate_control_settings(config.control),
        *_validate_hardware(config.hardware),
        *_validate_timing(config),
        *_validate_data_log(config),
        *validate_publish_settings(config.publish),
        *_validate_source(config.source, clean),
        *_validate_remote_window(clean.get("remote_window", {}), config.control),
        *mqtt_problems,
    ]
    if problems:
        raise ConfigError(problems)
    return config


def _validate_remote_window(
    file_windows: Mapping[str, tuple[float, float]], control: ControlSettings
) -> list[str]:
    """A window may narrow the envelope, never widen it."""
    problems: list[str] = []
    if not control.soc.capacity_ah > 0.0:
        return problems  # named by the envelope check; C-rate ranges cannot be scaled
    for path, (low, high) in file_windows.items():
        allowed = envelope_range(path, control)
        if not Range(low, high).within(allowed):
            problems.append(
                f"remote_window.{path}: must lie within {allowed.describe()}, the LFP safety "
                f"envelope (got [{low:g}, {high:g}])"
            )
    return problems


# ---------------------------------------------------------------------------------------------
# Phase 1: shape and types (voluptuous)
# ---------------------------------------------------------------------------------------------


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise vol.Invalid(f"must be a number (got {value!r})")
    if not math.isfinite(value):
        raise vol.Invalid(f"must be a finite number (got {value!r})")
    return float(value)


def _ocv_curve(value: Any) -> tuple[tuple[float, float], ...]:
    """battery.ocv_curve: [[soc %, volts], ...] from the cells' datasheet (checked for shape
    here, for order and range with the rest of the battery in validate_control_settings)."""
    if not isinstance(value, list):
        raise vol.Invalid(f"must be a list of [soc %, volts] pairs (got {value!r})")
    points: list[tuple[float, float]] = []
    for index, pair in enumerate(value):
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise vol.Invalid(f"must be a [soc %, volts] pair (got {pair!r})", path=[index])
        try:
            points.append((_number(pair[0]), _number(pair[1])))
        except vol.Invalid as error:
            raise vol.Invalid(error.msg, path=[index]) from error
    return tuple(points)


def _integer(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid(f"must be a whole number (got {value!r})")
    return value


def _boolean(value: Any) -> bool:
    if not isinstance(value, bool):
        raise vol.Invalid(f"must be true or false (got {value!r})")
    return value


def _address(value: Any) -> int:
    """I2C addresses: YAML reads 0x28 as an int; a quoted "0x28" is accepted as well."""
    if isinstance(value, str):
        try:
            return int(value, 0)
        except ValueError:
            pass
    if isinstance(value, bool) or not isinstance(value, int):
        raise vol.Invalid(f"must be an I2C address such as 0x28 (got {value!r})")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not _NAME_PATTERN.match(value):
        raise vol.Invalid(f"{_NAME_RULE} (got {value!r})")
    return value


def _non_empty_string(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise vol.Invalid(f"must be a non-empty string (got {value!r})")
    return value


def _one_of(choices: Sequence[str]) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if value not in choices:
            raise vol.Invalid(f"must be one of {', '.join(choices)} (got {value!r})")
        return cast(str, value)

    return check


def _output_type(value: Any) -> OutputType:
    # 1.0 is the integer 1 in JSON (and JSON Schema); true is not a number here.
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 6:
        raise vol.Invalid(f"must be an output type 0 to 6 (got {value!r:.40})")
    return OutputType(value)


def _wiring(value: Any) -> Wiring:
    if value not in WIRINGS:
        raise vol.Invalid(f"must be one of {', '.join(WIRINGS)} (got {value!r})")
    return Wiring(value)


def _window(value: Any) -> tuple[float, float]:
    """A remote window entry: [lowest, highest] a remote client may set."""
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise vol.Invalid(f"must be a list [lowest, highest] (got {value!r})")
    low, high = (_number(item) for item in value)
    if low > high:
        raise vol.Invalid(f"lowest must not exceed highest (got [{low:g}, {high:g}])")
    return low, high


def _remote_window(value: Any) -> dict[str, tuple[float, float]]:
    """{section: {key: [low, high]}} -> {"section.key": (low, high)}, only settings that a
    remote client may change and that have an envelope range."""
    if not isinstance(value, Mapping):
        raise vol.Invalid(f"must be a mapping of sections (got {type(value).__name__})")
    errors: list[vol.Invalid] = []
    windows: dict[str, tuple[float, float]] = {}
    for section, keys in value.items():
        if not isinstance(keys, Mapping):
            errors.append(vol.Invalid("must be a mapping of settings", path=[section]))
            continue
        for key, entry in keys.items():
            path = f"{section}.{key}"
            if path not in LFP_RANGES or path.startswith("timing."):
                errors.append(
                    vol.Invalid("not a setting a remote client can change", path=[section, key])
                )
                continue
            try:
                windows[path] = _window(entry)
            except vol.Invalid as exc:
                exc.prepend([section, key])
                errors.append(exc)
    if errors:
        raise vol.MultipleInvalid(errors)
    return windows


def _gpio_line(value: Any) -> str | int:
    if isinstance(value, str) and value.strip():
        return value
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    raise vol.Invalid(f"must be a line name such as GPIO17 or an offset >= 0 (got {value!r})")


class _StrictMapping:
    """A mapping with only the given keys. Unknown keys are found and worded here (with the
    nearest known key), not by voluptuous, whose wording changes between releases."""

    def __init__(self, schema: dict[Any, Any]) -> None:
        self._known = tuple(str(getattr(key, "schema", key)) for key in schema)
        self._schema = vol.Schema(schema, extra=vol.ALLOW_EXTRA)

    def __call__(self, value: Any) -> dict[str, Any]:
        if not isinstance(value, Mapping):
            raise vol_error.DictInvalid("must be a mapping")
        errors: list[vol.Invalid] = [
            vol.Invalid(unknown_key(key, self._known), path=[key])
            for key in value
            if key not in self._known
        ]
        known_part = {key: item for key, item in value.items() if key in self._known}
        try:
            clean = cast(dict[str, Any], self._schema(known_part))
        except vol.MultipleInvalid as exc:
            errors.extend(exc.errors)
        if errors:
            raise vol.MultipleInvalid(errors)
        return clean


def _mapping(schema: dict[Any, Any]) -> _StrictMapping:
    return _StrictMapping(schema)


def _section_schema(settings_class: type[Any], exclude: tuple[str, ...] = ()) -> _StrictMapping:
    """Every field of a settings dataclass, optional, typed from its default value."""
    schema: dict[Any, Any] = {}
    for settings_field in fields(settings_class):
        if settings_field.name in exclude:
            continue
        default = settings_field.default
        validator: Any = _boolean if isinstance(default, bool) else _number
        if default is None:
            validator = vol.Any(None, validator)
        schema[vol.Optional(settings_field.name)] = validator
    return _mapping(schema)


_SHUNT_SCHEMA = _mapping(
    {
        vol.Optional("chip"): _one_of(SHUNT_CHIPS),
        vol.Optional("address"): _address,
        vol.Optional("rated_current_a"): _number,
        vol.Optional("rated_millivolts"): _number,
        vol.Optional("zero_offset_a"): _number,
    }
)

_LINE_COMMON: dict[Any, Any] = {
    vol.Required("driver"): _one_of(OUTPUT_DRIVERS),
    vol.Optional("active_low"): _boolean,
}
_OUTPUT_COMMON: dict[Any, Any] = {
    **_LINE_COMMON,
    vol.Required("name"): _name,
    vol.Optional("type"): _output_type,
    vol.Optional("wiring"): _wiring,
}
_DRIVER_KEYS: dict[str, dict[Any, Any]] = {
    "mcp23008": {vol.Required("address"): _address, vol.Required("pin"): _integer},
    "gpiod": {vol.Required("chip"): _non_empty_string, vol.Required("line"): _gpio_line},
}
_OUTPUT_SCHEMAS: dict[str, _StrictMapping] = {
    driver: _mapping({**_OUTPUT_COMMON, **keys}) for driver, keys in _DRIVER_KEYS.items()
}
_HEARTBEAT_SCHEMAS: dict[str, _StrictMapping] = {
    driver: _mapping({**_LINE_COMMON, **keys, vol.Required("hold_s"): _number})
    for driver, keys in _DRIVER_KEYS.items()
}


def _optional_shunt(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return _SHUNT_SCHEMA(value)


def _outputs(value: Any) -> list[dict[str, Any]]:
    """Each item is checked against its driver's keys; all items' problems are collected."""
    if not isinstance(value, list):
        raise vol.Invalid(f"must be a list of outputs (got {type(value).__name__})")
    errors: list[vol.Invalid] = []
    clean: list[dict[str, Any]] = []
    for index, item in enumerate(value):
        try:
            clean.append(_output_item(item))
        except vol.Invalid as exc:
            exc.prepend([index])
            errors.extend(exc.errors if isinstance(exc, vol.MultipleInvalid) else [exc])
    if errors:
        raise vol.MultipleInvalid(errors)
    return clean


def _output_item(item: Any) -> dict[str, Any]:
    return _by_driver(item, _OUTPUT_SCHEMAS)


def _heartbeat(item: Any) -> dict[str, Any]:
    return _by_driver(item, _HEARTBEAT_SCHEMAS)


def _by_driver(item: Any, schemas: Mapping[str, _StrictMapping]) -> dict[str, Any]:
    """A line's keys depend on its driver: check the driver first, then its own keys."""
    if not isinstance(item, Mapping):
        raise vol.Invalid(f"must be a mapping (got {type(item).__name__})")
    driver: Any = item.get("driver")
    if "driver" not in item:
        raise vol_error.RequiredFieldInvalid("required key is missing", path=["driver"])
    if not isinstance(driver, str) or driver not in schemas:
        raise vol.Invalid(
            f"must be one of {', '.join(OUTPUT_DRIVERS)} (got {driver!r})", path=["driver"]
        )
    return schemas[driver](dict(item))


_TOP_SCHEMA = _mapping(
    {
        vol.Optional("agent_id"): _name,
        vol.Optional("battery"): _mapping(
            {
                vol.Optional("chemistry"): _one_of(CHEMISTRIES),
                vol.Optional("cells"): _integer,
                vol.Optional("capacity_ah"): _number,
                vol.Optional("ocv_curve"): _ocv_curve,
            }
        ),
        vol.Optional("i2c_bus"): _integer,
        vol.Optional("cell_monitor"): _mapping(
            {
                vol.Optional("chip"): _one_of(CELL_MONITOR_CHIPS),
                vol.Optional("address"): _address,
                vol.Optional("battery_thermistor"): _boolean,
            }
        ),
        vol.Optional("battery_shunt"): _SHUNT_SCHEMA,
        vol.Optional("pv_shunt"): _optional_shunt,
        vol.Optional("outputs"): _outputs,
        vol.Optional("heartbeat"): _heartbeat,
        vol.Optional("remote_window"): _remote_window,
        vol.Optional("thresholds"): _section_schema(CellThresholds),
        vol.Optional("balancing"): _section_schema(BalanceSettings),
        # capacity_ah and ocv_curve are written once, under battery:
        vol.Optional("soc"): _section_schema(SocSettings, exclude=("capacity_ah", "ocv_curve")),
        vol.Optional("soc_alarms"): _section_schema(SocAlarmSettings),
        vol.Optional("temperature"): _section_schema(TemperatureLimits),
        vol.Optional("dual_pv"): _section_schema(DualPvSettings),
        vol.Optional("max_soc"): _section_schema(MaxSocSettings),
        vol.Optional("timing"): _mapping(
            {
                vol.Optional("sample_interval_s"): _number,
                vol.Optional("stale_after_s"): _number,
                vol.Optional("state_save_interval_s"): _number,
                vol.Optional("status_interval_s"): _number,
            }
        ),
        vol.Optional("storage"): _mapping(
            {
                vol.Optional("state_path"): _non_empty_string,
                vol.Optional("data_log_path"): _non_empty_string,
            }
        ),
        vol.Optional("data_log"): _mapping(
            {
                vol.Optional("enabled"): _boolean,
                vol.Optional("interval_s"): _integer,
                vol.Optional("retention_days"): _integer,
            }
        ),
        vol.Optional("source"): _mapping(
            {
                vol.Optional("type"): _one_of(SOURCE_TYPES),
                vol.Optional("serial"): _mapping(
                    {vol.Required("port"): _non_empty_string, vol.Optional("baud"): _integer}
                ),
                vol.Optional("http"): _mapping(
                    {
                        vol.Required("url"): _non_empty_string,
                        vol.Optional("interval_s"): _number,
                        vol.Optional("timeout_s"): _number,
                    }
                ),
                vol.Optional("stale_after_s"): _number,
                vol.Optional("require_checksum"): _boolean,
            }
        ),
        vol.Optional("lockouts_latch"): _boolean,
        vol.Optional("publish"): _section_schema(PublishSettings),
        vol.Optional("mqtt"): _mapping(
            {
                vol.Required("host"): _non_empty_string,
                vol.Optional("port"): _integer,
                vol.Optional("username"): _non_empty_string,
                vol.Optional("password"): str,
                vol.Optional("tls"): _boolean,
                vol.Optional("ca_file"): _non_empty_string,
                vol.Optional("cert_file"): _non_empty_string,
                vol.Optional("key_file"): _non_empty_string,
                vol.Optional("tls_insecure"): _boolean,
                vol.Optional("keepalive_s"): _integer,
                vol.Optional("base_topic"): _non_empty_string,
                vol.Optional("client_id"): _non_empty_string,
                vol.Optional("protocol"): vol.In([5, 4], msg="must be 5 (MQTT 5) or 4 (3.1.1)"),
                vol.Optional("backoff_initial_s"): _number,
                vol.Optional("backoff_max_s"): _number,
                vol.Optional("event_queue_size"): _integer,
                vol.Optional("incoming_queue_size"): _integer,
                vol.Optional("ha_discovery"): _boolean,
                vol.Optional("ha_discovery_prefix"): _non_empty_string,
            }
        ),
    }
)


def _describe_invalid(error: vol.Invalid) -> str:
    path = _format_path(error.path)
    if isinstance(error, vol_error.RequiredFieldInvalid):
        message = "required key is missing"
    elif isinstance(error, vol_error.DictInvalid):
        message = "must be a mapping"
    else:
        message = error.msg
    return f"{path}: {message}" if path else message


def _format_path(path: Sequence[Hashable]) -> str:
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else str(part)
    return text


# ---------------------------------------------------------------------------------------------
# Building the objects
# ---------------------------------------------------------------------------------------------


# Slotted dataclasses keep no class-level defaults: read them from default instances.
_DEFAULT_CONTROL = ControlSettings()
_DEFAULT_HARDWARE = HardwareSettings()
_DEFAULT_AGENT_ID = AgentConfig().agent_id


_MQTT_PATH_KEYS = ("ca_file", "cert_file", "key_file")


def _build_mqtt(
    section: Mapping[str, Any] | None, agent_id: str, problems: list[str]
) -> MqttSettings | None:
    """The MQTT link's settings; rule violations go to `problems` with their key paths."""
    if section is None:
        return None
    values: dict[str, Any] = {
        key: Path(value) if key in _MQTT_PATH_KEYS else value for key, value in section.items()
    }
    try:
        return MqttSettings(agent_id=agent_id, **values)
    except ValueError as err:
        problems.extend(f"mqtt.{problem}" for problem in str(err).split("; "))
        return None


def _build_config(clean: Mapping[str, Any], mqtt_problems: list[str] | None = None) -> AgentConfig:
    battery = clean.get("battery", {})
    timing = dict(clean.get("timing", {}))
    stale_after_s = timing.pop("stale_after_s", _DEFAULT_CONTROL.stale_after_s)
    soc = dict(clean.get("soc", {}))
    if "capacity_ah" in battery:
        soc["capacity_ah"] = battery["capacity_ah"]
    if "ocv_curve" in battery:
        soc["ocv_curve"] = battery["ocv_curve"]
    output_items: list[dict[str, Any]] | None = clean.get("outputs")
    source = _build_source(clean.get("source", {}))
    sbms0 = source.type == "sbms0"
    notes: list[str] = []
    control = ControlSettings(
        cell_count=battery.get("cells", _DEFAULT_CONTROL.cell_count),
        cells=CellThresholds(**clean.get("thresholds", {})),
        balance=BalanceSettings(**clean.get("balancing", {})),
        soc=SocSettings(**soc),
        soc_alarms=SocAlarmSettings(**clean.get("soc_alarms", {})),
        temperature=TemperatureLimits(**clean.get("temperature", {})),
        dual_pv=DualPvSettings(**clean.get("dual_pv", {})),
        max_soc=MaxSocSettings(**clean.get("max_soc", {})),
        outputs=_control_outputs_for(output_items, notes, sbms0=sbms0),
        stale_after_s=stale_after_s,
        lockouts_latch=clean.get("lockouts_latch", _DEFAULT_CONTROL.lockouts_latch),
        battery_thermistor=clean.get("cell_monitor", {}).get(
            "battery_thermistor", _DEFAULT_CONTROL.battery_thermistor
        ),
    )
    pv_shunt = clean.get("pv_shunt")
    hardware = HardwareSettings(
        i2c_bus=clean.get("i2c_bus", _DEFAULT_HARDWARE.i2c_bus),
        cell_monitor=CellMonitorSettings(
            **{
                key: value
                for key, value in clean.get("cell_monitor", {}).items()
                if key != "battery_thermistor"  # the control core's: ControlSettings
            }
        ),
        battery_shunt=ShuntSettings(**clean.get("battery_shunt", {})),
        pv_shunt=None if pv_shunt is None else ShuntSettings(**pv_shunt),
        outputs=_output_pins_for(output_items, sbms0=sbms0),
        heartbeat=_build_heartbeat(clean.get("heartbeat")),
    )
    storage = clean.get("storage", {})
    agent_id = clean.get("agent_id", _DEFAULT_AGENT_ID)
    return AgentConfig(
        control=control,
        hardware=hardware,
        timing=TimingSettings(**timing),
        storage=StorageSettings(**{key: Path(value) for key, value in storage.items()}),
        data_log=DataLogSettings(**clean.get("data_log", {})),
        agent_id=agent_id,
        publish=PublishSettings(**clean.get("publish", {})),
        mqtt=_build_mqtt(
            clean.get("mqtt"), agent_id, [] if mqtt_problems is None else mqtt_problems
        ),
        source=source,
        remote_window=_build_remote_window(clean.get("remote_window", {}), control),
        notes=tuple(notes),
    )


def _build_remote_window(
    file_windows: Mapping[str, tuple[float, float]], control: ControlSettings
) -> dict[str, Range]:
    """The defaults (scaled by this file's capacity) with the file's own windows on top."""
    window = default_remote_window(control)
    for path, (low, high) in file_windows.items():
        window[path] = Range(low, high, window[path].unit)
    return window


def _build_heartbeat(item: Mapping[str, Any] | None) -> HeartbeatSettings | None:
    if item is None:
        return None
    keys = {key: value for key, value in item.items() if key != "hold_s"}
    return HeartbeatSettings(OutputPinSettings(name=HEARTBEAT_LINE, **keys), item["hold_s"])


def effective_remote_window(config: AgentConfig) -> Mapping[str, Range]:
    """The window remote changes move in. A configuration built in code (not parsed from a
    file) has none of its own: the defaults for its settings apply."""
    return config.remote_window or default_remote_window(config.control)


def _control_outputs_for(
    items: Sequence[Mapping[str, Any]] | None, notes: list[str], *, sbms0: bool
) -> tuple[OutputSettings, ...]:
    if sbms0:
        return sbms0_outputs()  # the SBMS's own; an `outputs` section is rejected later
    return default_outputs() if items is None else _control_outputs(items, notes)


def _output_pins_for(
    items: Sequence[Mapping[str, Any]] | None, *, sbms0: bool
) -> tuple[OutputPinSettings, ...]:
    if sbms0:
        return ()  # the agent drives no pin on a stock SBMS
    return default_output_pins() if items is None else _pin_outputs(items)


def _build_source(section: Mapping[str, Any]) -> SourceSettings:
    serial = section.get("serial")
    http = section.get("http")
    return SourceSettings(
        type=section.get("type", "i2c"),
        serial=None if serial is None else SerialSourceSettings(**serial),
        http=None if http is None else HttpSourceSettings(**http),
        **{key: section[key] for key in ("stale_after_s", "require_checksum") if key in section},
    )


def _control_outputs(
    items: Sequence[Mapping[str, Any]], notes: list[str]
) -> tuple[OutputSettings, ...]:
    outputs: list[OutputSettings] = []
    for index, item in enumerate(items):
        output_type = item.get("type", OutputType.UNUSED)
        wiring = item.get("wiring")
        if wiring is None:
            wiring = inferred_wiring(output_type)
            notes.append(
                f"outputs[{index}] ({item['name']}): no wiring given, taken as "
                f"'{wiring.value}' from its type {int(output_type)}; say what it switches with "
                f"`wiring: {wiring.value}` (charge, load, signal, fault or none, docs/wiring.md)"
            )
        outputs.append(OutputSettings(name=item["name"], type=output_type, wiring=wiring))
    return tuple(outputs)


_CONTROL_OUTPUT_KEYS = ("type", "wiring")


def _pin_outputs(items: Sequence[Mapping[str, Any]]) -> tuple[OutputPinSettings, ...]:
    return tuple(
        OutputPinSettings(
            **{key: value for key, value in item.items() if key not in _CONTROL_OUTPUT_KEYS}
        )
        for item in items
    )


def config_to_dict(config: AgentConfig) -> dict[str, Any]:
    """The configuration as plain YAML/JSON data; `parse_config` rebuilds an equal object."""
    control = config.control
    hardware = config.hardware
    soc = _dataclass_dict(control.soc)
    capacity_ah = soc.pop("capacity_ah")
    ocv_curve = soc.pop("ocv_curve")
    battery: dict[str, Any] = {
        "chemistry": "lfp",
        "cells": control.cell_count,
        "capacity_ah": capacity_ah,
    }
    if ocv_curve is not None:
        battery["ocv_curve"] = [list(point) for point in ocv_curve]
    return {
        "agent_id": config.agent_id,
        "battery": battery,
        "i2c_bus": hardware.i2c_bus,
        "cell_monitor": {
            **_dataclass_dict(hardware.cell_monitor),
            "battery_thermistor": control.battery_thermistor,
        },
        "battery_shunt": _dataclass_dict(hardware.battery_shunt),
        "pv_shunt": None if hardware.pv_shunt is None else _dataclass_dict(hardware.pv_shunt),
        # A stock SBMS's outputs are its own (sbms0_outputs), not a file setting.
        **(
            {"outputs": _outputs_to_list(control.outputs, hardware.outputs)}
            if config.source.type == "i2c"
            else {}
        ),
        **(
            {}
            if hardware.heartbeat is None
            else {"heartbeat": _heartbeat_to_dict(hardware.heartbeat)}
        ),
        # A stock SBMS takes no remote changes: no window to show.
        **(
            {"remote_window": _remote_window_to_dict(effective_remote_window(config))}
            if config.source.type == "i2c"
            else {}
        ),
        "thresholds": _dataclass_dict(control.cells),
        "balancing": _dataclass_dict(control.balance),
        "soc": soc,
        "soc_alarms": _dataclass_dict(control.soc_alarms),
        "temperature": _dataclass_dict(control.temperature),
        "dual_pv": _dataclass_dict(control.dual_pv),
        "max_soc": _dataclass_dict(control.max_soc),
        "timing": {
            "sample_interval_s": config.timing.sample_interval_s,
            "stale_after_s": control.stale_after_s,
            "state_save_interval_s": config.timing.state_save_interval_s,
            "status_interval_s": config.timing.status_interval_s,
        },
        "storage": _storage_to_dict(config.storage),
        "data_log": _dataclass_dict(config.data_log),
        "lockouts_latch": control.lockouts_latch,
        "publish": _dataclass_dict(config.publish),
        **({} if config.mqtt is None else {"mqtt": _mqtt_to_dict(config.mqtt)}),
        **({} if config.source.type == "i2c" else {"source": _source_to_dict(config.source)}),
    }


def _heartbeat_to_dict(heartbeat: HeartbeatSettings) -> dict[str, Any]:
    return {**_line_to_dict(heartbeat.line), "hold_s": heartbeat.hold_s}


def _remote_window_to_dict(window: Mapping[str, Range]) -> dict[str, dict[str, list[float]]]:
    sections: dict[str, dict[str, list[float]]] = {}
    for path, allowed in window.items():
        section, _, key = path.partition(".")
        sections.setdefault(section, {})[key] = [allowed.low, allowed.high]
    return sections


def _storage_to_dict(storage: StorageSettings) -> dict[str, Any]:
    data = {"state_path": str(storage.state_path)}
    if storage.data_log_path is not None:
        data["data_log_path"] = str(storage.data_log_path)
    return data


def _source_to_dict(source: SourceSettings) -> dict[str, Any]:
    data = _dataclass_dict(source)
    for key in ("serial", "http"):
        value = getattr(source, key)
        data[key] = None if value is None else _dataclass_dict(value)
    return {key: value for key, value in data.items() if value is not None}


def _mqtt_to_dict(mqtt: MqttSettings) -> dict[str, Any]:
    data = _dataclass_dict(mqtt)
    del data["agent_id"]  # the top-level agent_id
    del data["operation_timeout_s"]  # not a file setting
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in data.items()
        if value is not None
    }


def _dataclass_dict(instance: Any) -> dict[str, Any]:
    return {item.name: getattr(instance, item.name) for item in fields(instance)}


def _outputs_to_list(
    control_outputs: Sequence[OutputSettings], pins: Sequence[OutputPinSettings]
) -> list[dict[str, Any]]:
    types = {output.name: output.type for output in control_outputs}
    if set(types) != {pin.name for pin in pins} or len(pins) != len(control_outputs):
        raise ValueError("control.outputs and hardware.outputs must name the same outputs")
    wirings = {output.name: output.wiring for output in control_outputs}
    return [
        {
            "name": pin.name,
            "type": int(types[pin.name]),
            "wiring": wirings[pin.name].value,
            **_line_to_dict(pin),
        }
        for pin in pins
    ]


def _line_to_dict(pin: OutputPinSettings) -> dict[str, Any]:
    item: dict[str, Any] = {"driver": pin.driver}
    if pin.driver == "mcp23008":
        item.update(address=pin.address, pin=pin.pin)
    else:
        item.update(chip=pin.chip, line=pin.line)
    item["active_low"] = pin.active_low
    return item


# ---------------------------------------------------------------------------------------------
# Phase 2: rules across values
# ---------------------------------------------------------------------------------------------


def validate_control_settings(settings: ControlSettings) -> list[str]:
    """Every rule the control core relies on, as "key.path: problem" lines (empty = valid):
    the LFP safety envelope (control.envelope: ranges, order, hysteresis widths and the gaps
    between each limit and its lockout) and the output rules (types allowed by the wiring).

    Paths use the YAML names, so remote configuration can report them the same way.
    """
    problems: list[str] = []
    low, high = CELL_COUNT_RANGE
    if not low <= settings.cell_count <= high:
        problems.append(
            f"battery.cells: must be between {low} and {high} (got {settings.cell_count})"
        )
    if settings.soc.capacity_ah > 0.0:  # C-rate ranges scale with it; a bad one is named first
        problems += envelope_problems(settings)
    else:
        problems.append(
            f"battery.capacity_ah: must be greater than 0 (got {settings.soc.capacity_ah:g})"
        )
    curve = settings.soc.ocv_curve
    if curve is not None and (problem := curve_problem(curve)) is not None:
        problems.append(f"battery.ocv_curve: {problem}")
    problems += _check_control_outputs(settings.outputs)
    return problems


def _between(path: str, value: float, low: float, high: float, unit: str = "") -> list[str]:
    if low <= value <= high:
        return []
    return [f"{path}: must be between {low:g} and {high:g}{unit} (got {value:g})"]


def _at_least(path: str, value: float, minimum: float, *, inclusive: bool = True) -> list[str]:
    if value > minimum or (inclusive and value == minimum):
        return []
    rule = "at least" if inclusive else "greater than"
    return [f"{path}: must be {rule} {minimum:g} (got {value:g})"]


def _check_control_outputs(outputs: Sequence[OutputSettings]) -> list[str]:
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, output in enumerate(outputs):
        path = f"outputs[{index}]"
        if not _NAME_PATTERN.match(output.name):
            problems.append(f"{path}.name: {_NAME_RULE} (got {output.name!r})")
        if output.name in first_index:
            problems.append(
                f"{path}.name: duplicate output name {output.name!r} "
                f"(also outputs[{first_index[output.name]}])"
            )
        else:
            first_index[output.name] = index
        allowed = ALLOWED_TYPES[output.wiring]
        if output.type not in allowed:
            problems.append(
                f"{path}.type: an output wired to {output.wiring.value} may be type "
                f"{_types_text(allowed)} (got {int(output.type)})"
            )
    types = [output.type for output in outputs]
    if OutputType.DUAL_PV in types and OutputType.HVD not in types:
        index = types.index(OutputType.DUAL_PV)
        problems.append(
            f"outputs[{index}].type: type 6 (dual PV) needs at least one type 1 (HVD) output"
        )
    return problems


def _types_text(types: frozenset[OutputType]) -> str:
    numbers = sorted(int(output_type) for output_type in types)
    if len(numbers) == 1:
        return str(numbers[0])
    return ", ".join(str(number) for number in numbers[:-1]) + f" or {numbers[-1]}"


def _validate_hardware(hardware: HardwareSettings) -> list[str]:
    problems = _at_least("i2c_bus", hardware.i2c_bus, 0)
    monitor = hardware.cell_monitor
    if monitor.address not in ISL_ADDRESSES:
        problems.append(
            f"cell_monitor.address: must be 0x28 or 0x29 for {monitor.chip} "
            f"(got {_hex(monitor.address)})"
        )
    shunts = [("battery_shunt", hardware.battery_shunt)]
    if hardware.pv_shunt is not None:
        shunts.append(("pv_shunt", hardware.pv_shunt))
    for path, shunt in shunts:
        problems += _check_shunt(path, shunt)
    pv_shunt = hardware.pv_shunt
    if pv_shunt is not None and pv_shunt.address == hardware.battery_shunt.address:
        problems.append(
            "pv_shunt.address: must differ from battery_shunt.address "
            f"(both {_hex(pv_shunt.address)})"
        )
    lines = hardware.outputs
    if hardware.heartbeat is not None:
        lines = (*lines, hardware.heartbeat.line)
    problems += _check_output_pins(lines)
    return problems


def _hex(address: int) -> str:
    return f"0x{address:02X}"


def _check_shunt(path: str, shunt: ShuntSettings) -> list[str]:
    problems: list[str] = []
    low, high = INA_ADDRESS_RANGE
    if not low <= shunt.address <= high:
        problems.append(
            f"{path}.address: must be between {_hex(low)} and {_hex(high)} for {shunt.chip} "
            f"(got {_hex(shunt.address)})"
        )
    problems += _at_least(f"{path}.rated_current_a", shunt.rated_current_a, 0.0, inclusive=False)
    problems += _at_least(f"{path}.rated_millivolts", shunt.rated_millivolts, 0.0, inclusive=False)
    return problems


def _check_output_pins(pins: Sequence[OutputPinSettings]) -> list[str]:
    problems: list[str] = []
    claimed: dict[tuple[str, str], str] = {}
    for index, pin in enumerate(pins):
        path = "heartbeat" if pin.name == HEARTBEAT_LINE else f"outputs[{index}]"
        if pin.driver == "mcp23008":
            problems += _check_mcp_pin(path, pin)
            key = ("mcp23008", f"{_hex(pin.address or 0)} pin {pin.pin}")
        else:
            key = ("gpiod", f"{pin.chip} line {pin.line}")
        if key in claimed:
            problems.append(f"{path}: {key[0]} {key[1]} is already used by {claimed[key]}")
        else:
            claimed[key] = path
    return problems


def _check_mcp_pin(path: str, pin: OutputPinSettings) -> list[str]:
    problems: list[str] = []
    low, high = MCP_ADDRESS_RANGE
    if pin.address is None or not low <= pin.address <= high:
        got = "none" if pin.address is None else _hex(pin.address)
        problems.append(
            f"{path}.address: must be between {_hex(low)} and {_hex(high)} for mcp23008 (got {got})"
        )
    first, last = MCP_PIN_RANGE
    if pin.pin is None or not first <= pin.pin <= last:
        problems.append(f"{path}.pin: must be between {first} and {last} (got {pin.pin})")
    return problems


def _validate_source(source: SourceSettings, clean: Mapping[str, Any]) -> list[str]:
    if source.type == "i2c":
        return [
            f"source.{key}: only for type sbms0"
            for key in ("serial", "http", "stale_after_s", "require_checksum")
            if key in clean.get("source", {})
        ]
    problems: list[str] = []
    if (source.serial is None) == (source.http is None):
        problems.append("source: type sbms0 needs exactly one of serial or http")
    if "outputs" in clean:
        problems.append("outputs: not with source type sbms0 (the SBMS drives its own outputs)")
    if source.serial is not None:
        problems += _at_least("source.serial.baud", source.serial.baud, 1200)
    if source.http is not None:
        http = source.http
        if not re.match(r"^https?://[^/\s]+", http.url):
            problems.append(
                f"source.http.url: must be an http:// or https:// URL (got {http.url!r})"
            )
        problems += _between("source.http.interval_s", http.interval_s, 0.1, 3600.0, " s")
        problems += _between("source.http.timeout_s", http.timeout_s, 0.1, 60.0, " s")
    problems += _between("source.stale_after_s", source.stale_after_s, 1.0, 3600.0, " s")
    if source.http is not None and source.stale_after_s < 2 * source.http.interval_s:
        problems.append(
            "source.stale_after_s: must be at least 2 x source.http.interval_s "
            f"(got {source.stale_after_s:g} < {2 * source.http.interval_s:g})"
        )
    return problems


def _validate_timing(config: AgentConfig) -> list[str]:
    timing = config.timing
    problems = [
        *_between(
            "timing.sample_interval_s",
            timing.sample_interval_s,
            SAMPLE_INTERVAL.low,
            SAMPLE_INTERVAL.high,
            " s",
        ),
        *_at_least(
            "timing.state_save_interval_s", timing.state_save_interval_s, 0.0, inclusive=False
        ),
        *_at_least("timing.status_interval_s", timing.status_interval_s, 0.0, inclusive=False),
    ]
    stale_after_s = config.control.stale_after_s
    if timing.sample_interval_s > 0 and stale_after_s < 2 * timing.sample_interval_s:
        problems.append(
            "timing.stale_after_s: must be at least 2 x timing.sample_interval_s "
            f"(got {stale_after_s:g} < {2 * timing.sample_interval_s:g})"
        )
    heartbeat = config.hardware.heartbeat
    if heartbeat is not None and (
        not heartbeat.hold_s >= HEARTBEAT_MARGIN * timing.sample_interval_s
    ):
        problems.append(
            f"heartbeat.hold_s: must be at least {HEARTBEAT_MARGIN:g} x "
            "timing.sample_interval_s, or the outputs drop between two samples "
            f"(got {heartbeat.hold_s:g} < {HEARTBEAT_MARGIN * timing.sample_interval_s:g})"
        )
    if heartbeat is not None and heartbeat.hold_s > 10.0:
        problems.append(
            f"heartbeat.hold_s: at most 10 s, the longest a dead agent may leave outputs on "
            f"(got {heartbeat.hold_s:g})"
        )
    return problems


def _validate_data_log(config: AgentConfig) -> list[str]:
    # Intervals align to wall-clock multiples: a whole number of seconds up to an hour.
    data_log = config.data_log
    problems = [
        *_between("data_log.interval_s", data_log.interval_s, 10, 3600, " s"),
        *_between("data_log.retention_days", data_log.retention_days, 1, 3660, " days"),
    ]
    if data_log.interval_s < config.timing.sample_interval_s:
        problems.append(
            "data_log.interval_s: must be at least timing.sample_interval_s "
            f"(got {data_log.interval_s} < {config.timing.sample_interval_s:g})"
        )
    return problems


# ---------------------------------------------------------------------------------------------
# Remote changes (MQTT config/set)
# ---------------------------------------------------------------------------------------------

# Sections a remote client may change, in the file's shape. Everything else is wiring (buses,
# chips, pins), identity or local policy and stays with whoever edits the file on the box.
REMOTE_SECTIONS = (
    "thresholds",
    "balancing",
    "soc",
    "soc_alarms",
    "temperature",
    "dual_pv",
    "max_soc",
    "publish",
)
REMOTE_READ_ONLY_KEYS = (
    "agent_id",
    "i2c_bus",
    "cell_monitor",
    "battery_shunt",
    "pv_shunt",
    "storage",
    "data_log",
    "timing",
    "mqtt",
    "heartbeat",
    "remote_window",  # how far a remote client may move a setting is the file's to say
)
_REMOTE_BATTERY_KEYS = ("capacity_ah",)
_BATTERY_WIRING_KEYS = ("chemistry", "cells", "ocv_curve")
_OUTPUT_WIRING_KEYS = (
    "name",
    "wiring",
    "driver",
    "address",
    "pin",
    "chip",
    "line",
    "active_low",
)
_READ_ONLY = "read-only over MQTT"
_OUTPUT_INDEX_PATH = re.compile(r"^outputs\[(\d+)\]")


def merge_remote_config(current: AgentConfig, changes: Mapping[str, Any]) -> AgentConfig:
    """The configuration in force with a remote change set applied, validated like the file.

    `changes` has the file's shape restricted to the remote sections, except that outputs are
    addressed by name: {"outputs": {"extio5": {"type": 6}}}. Raises ConfigError listing every
    problem as "key.path: reason"; output paths use the name ("outputs.extio5.type").
    """
    untrusted: object = changes
    if not isinstance(untrusted, Mapping):
        raise ConfigError([f"must be a mapping (got {type(untrusted).__name__})"])
    data = config_to_dict(current)
    # The window is the file's, carried over as it is: never derived again from values a remote
    # client set (a capacity doubled remotely must not double the next window).
    window = effective_remote_window(current)
    data.pop("remote_window", None)
    problems: list[str] = []
    for key, value in changes.items():
        problems += _merge_remote_key(data, str(key), value)
    names = [item["name"] for item in data["outputs"]]
    try:
        # Validated even when some keys were refused, so one answer lists every problem.
        merged = parse_config(data)
    except ConfigError as exc:
        problems += (_output_paths_by_name(problem, names) for problem in exc.problems)
    else:
        problems += _outside_window(current.control, merged.control, window)
        problems += _remote_type_changes(current.control, merged.control)
        problems += _charging_kept(current.control, merged.control)
    if problems:
        raise ConfigError(problems)
    return replace(merged, remote_window=window, notes=current.notes)


def _outside_window(
    current: ControlSettings, merged: ControlSettings, window: Mapping[str, Range]
) -> list[str]:
    """Every setting the change moves must land inside the window; one it leaves as it is
    may stay where the file put it."""
    problems: list[str] = []
    for path, allowed in window.items():
        value = setting_value(merged, path)
        if value is None or value == setting_value(current, path) or allowed.contains(value):
            continue
        problems.append(
            f"{path}: a remote change must stay within {allowed.describe()} "
            f"(remote_window of this box's configuration file) (got {value:g})"
        )
    return problems


def _charging_kept(current: ControlSettings, merged: ControlSettings) -> list[str]:
    """A remote change may not stop every charge source: the computer keeps drawing from the
    pack after LVD, and a box that can never charge again would take its cells below UVLO.
    Only the configuration file can do that."""
    if not any(charges(output) for output in current.outputs) or any(
        charges(output) for output in merged.outputs
    ):
        return []
    stopped = [
        output.name
        for output, after in zip(current.outputs, merged.outputs, strict=True)
        if charges(output) and not charges(after)
    ]
    return [
        f"outputs.{name}.type: {name} is the last output that charges the battery: only the "
        "configuration file can stop all charging (over MQTT it may be type 1, 3 or 6)"
        for name in stopped
    ]


def _remote_type_changes(current: ControlSettings, merged: ControlSettings) -> list[str]:
    """The wiring rules that only bind remote requests: no output becomes, or stops being, a
    fault output (the file's wiring rules are checked for every configuration)."""
    before = {output.name: output.type for output in current.outputs}
    problems: list[str] = []
    for output in merged.outputs:
        previous = before.get(output.name)
        if output.type == previous or output.type not in ALLOWED_TYPES[output.wiring]:
            continue  # unchanged, or already named by the wiring rule
        if previous is OutputType.FAULT:
            problems.append(
                f"outputs.{output.name}.type: {output.name} reports faults: only the "
                f"configuration file can make it anything else (got {int(output.type)})"
            )
        elif output.type not in remote_types(output.wiring):
            problems.append(
                f"outputs.{output.name}.type: only the configuration file makes an output a "
                f"fault output; over MQTT {output.name} may be type "
                f"{_types_text(remote_types(output.wiring))} (got {int(output.type)})"
            )
    return problems


def _merge_remote_key(data: dict[str, Any], key: str, value: Any) -> list[str]:
    if key in REMOTE_READ_ONLY_KEYS:
        return [f"{key}: {_READ_ONLY}"]
    if key == "battery":
        return _merge_remote_battery(data, value)
    if key == "outputs":
        return _merge_remote_outputs(data["outputs"], value)
    if key == "lockouts_latch":
        data[key] = value  # parse_config checks the type
        return []
    if key not in REMOTE_SECTIONS:
        known = (*REMOTE_SECTIONS, *REMOTE_READ_ONLY_KEYS, "battery", "outputs", "lockouts_latch")
        return [f"{key}: {unknown_key(key, known)}"]
    if not isinstance(value, Mapping):
        return [f"{key}: must be a mapping (got {_json_kind(value)})"]
    section = data.get(key)
    # A section this agent does not have yet still goes to parse_config, which names it.
    data[key] = {**(section if isinstance(section, Mapping) else {}), **value}
    return []


def _merge_remote_battery(data: dict[str, Any], value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"battery: must be a mapping (got {_json_kind(value)})"]
    problems: list[str] = []
    for key, item in value.items():
        if key in _REMOTE_BATTERY_KEYS:
            data["battery"][key] = item
        elif key in _BATTERY_WIRING_KEYS:
            problems.append(f"battery.{key}: {_READ_ONLY}")
        else:
            known = (*_REMOTE_BATTERY_KEYS, *_BATTERY_WIRING_KEYS)
            problems.append(f"battery.{key}: {unknown_key(key, known)}")
    return problems


def _merge_remote_outputs(items: list[dict[str, Any]], value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return [
            "outputs: must be a mapping of output name to settings, such as "
            f'{{"extio5": {{"type": 6}}}} (got {_json_kind(value)})'
        ]
    by_name = {item["name"]: item for item in items}
    problems: list[str] = []
    for name, settings in value.items():
        path = f"outputs.{name}"
        if name not in by_name:
            problems.append(f"{path}: unknown output (outputs: {', '.join(by_name)})")
        elif not isinstance(settings, Mapping):
            problems.append(f"{path}: must be a mapping (got {_json_kind(settings)})")
        else:
            problems += _merge_remote_output(by_name[name], path, settings)
    return problems


def _merge_remote_output(item: dict[str, Any], path: str, settings: Mapping[str, Any]) -> list[str]:
    problems: list[str] = []
    for key, setting in settings.items():
        if key == "type":
            item["type"] = setting
        elif key in _OUTPUT_WIRING_KEYS:
            problems.append(f"{path}.{key}: {_READ_ONLY}")
        else:
            known = ("type", *_OUTPUT_WIRING_KEYS)
            problems.append(f"{path}.{key}: {unknown_key(key, known)}")
    return problems


def _output_paths_by_name(problem: str, names: Sequence[str]) -> str:
    """ "outputs[2].type: ..." -> "outputs.extio5.type: ...": remote clients address by name."""
    match = _OUTPUT_INDEX_PATH.match(problem)
    if match is None or int(match.group(1)) >= len(names):
        return problem
    return f"outputs.{names[int(match.group(1))]}{problem[match.end() :]}"


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, list | tuple):
        return "a list"
    return type(value).__name__
