"""Phase 1 of validation: the file's shape and types, with voluptuous (known keys only,
types, choices), every problem worded by the agent and named by its key path."""

from __future__ import annotations

import math
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import fields
from typing import Any, cast

import voluptuous as vol
import voluptuous.error as vol_error

from edge_agent.config.link import PublishSettings
from edge_agent.config.model import (
    CELL_MONITOR_CHIPS,
    CHEMISTRIES,
    NAME_PATTERN,
    NAME_RULE,
    OUTPUT_DRIVERS,
    SHUNT_CHIPS,
    SOURCE_TYPES,
    WIRINGS,
)
from edge_agent.control.envelope import (
    LFP_RANGES,
)
from edge_agent.control.model import TANK_TEMPERATURE_INPUTS
from edge_agent.control.settings import (
    BalanceSettings,
    CellThresholds,
    DiversionSettings,
    DualPvSettings,
    MaxSocSettings,
    OutputType,
    SocAlarmSettings,
    SocSettings,
    TemperatureLimits,
    Wiring,
)
from edge_agent.control.values import is_integer, is_number
from edge_agent.problems import unknown_key


def _number(value: Any) -> float:
    if not is_number(value):
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
    if not is_integer(value):
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
    if not is_integer(value):
        raise vol.Invalid(f"must be an I2C address such as 0x28 (got {value!r})")
    return value


def _name(value: Any) -> str:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        raise vol.Invalid(f"{NAME_RULE} (got {value!r})")
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
    last = int(max(OutputType))  # 7, diversion: our extension of the SBMS0's 0-6
    if not is_integer(value) or not 0 <= value <= last:
        raise vol.Invalid(f"must be an output type 0 to {last} (got {value!r:.40})")
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
    if is_integer(value) and value >= 0:
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
    return _mapping(_section_fields(settings_class, exclude))


def _section_fields(settings_class: type[Any], exclude: tuple[str, ...] = ()) -> dict[Any, Any]:
    schema: dict[Any, Any] = {}
    for settings_field in fields(settings_class):
        if settings_field.name in exclude:
            continue
        default = settings_field.default
        validator: Any = _boolean if isinstance(default, bool) else _number
        if default is None:
            validator = vol.Any(None, validator)
        schema[vol.Optional(settings_field.name)] = validator
    return schema


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
    # A diversion output's array: the charge output whose DSSR20s' heat path it switches.
    vol.Optional("diverts"): _name,
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


def _optional_number(value: Any) -> float | None:
    return None if value is None else _number(value)


_ARRAY_SCHEMA = _mapping(
    {
        vol.Required("output"): _name,
        vol.Optional("rated_current_a"): _optional_number,
        vol.Optional("open_circuit_v"): _optional_number,
        vol.Optional("heater_ohm"): _optional_number,
    }
)


def _each(what: str, check: Callable[[Any], dict[str, Any]]) -> Callable[[Any], Any]:
    """A list whose items are each checked by `check`; every item's problems are collected,
    each under its index."""

    def validate(value: Any) -> list[dict[str, Any]]:
        if not isinstance(value, list):
            raise vol.Invalid(f"must be a list of {what} (got {type(value).__name__})")
        errors: list[vol.Invalid] = []
        clean: list[dict[str, Any]] = []
        for index, item in enumerate(value):
            try:
                clean.append(check(item))
            except vol.Invalid as exc:
                exc.prepend([index])
                errors.extend(exc.errors if isinstance(exc, vol.MultipleInvalid) else [exc])
        if errors:
            raise vol.MultipleInvalid(errors)
        return clean

    return validate


# diversion.arrays: what the estimate knows of each array.
_arrays = _each("arrays", _ARRAY_SCHEMA)


def _tank_temperature(value: Any) -> str | None:
    """diversion.tank_temperature: the input the tank's thermistor is wired to, or none."""
    if value is None or value in TANK_TEMPERATURE_INPUTS:
        return cast(str | None, value)
    allowed = ", ".join(TANK_TEMPERATURE_INPUTS)
    raise vol.Invalid(
        f"must be a temperature input that can read the heater tank: {allowed} (the cell "
        f"monitor's xT2), or null for no tank sensor (got {value!r:.40})"
    )


_DIVERSION_SCHEMA = _mapping(
    {
        **_section_fields(DiversionSettings, exclude=("arrays", "tank_temperature")),
        vol.Optional("arrays"): _arrays,
        vol.Optional("tank_temperature"): _tank_temperature,
    }
)


def _optional_shunt(value: Any) -> dict[str, Any] | None:
    if value is None:
        return None
    return _SHUNT_SCHEMA(value)


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


# Each output is checked against its driver's keys.
_outputs = _each("outputs", _output_item)


TOP_SCHEMA = _mapping(
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
        vol.Optional("heat_shunt"): _optional_shunt,
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
        vol.Optional("diversion"): _DIVERSION_SCHEMA,
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


def describe_invalid(error: vol.Invalid) -> str:
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
