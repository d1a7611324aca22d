"""How a remote change (MQTT `config/set`) is merged onto the configuration in force: only
the remote sections, outputs addressed by name, validated like the file, then held to the
file's `remote_window`, its wiring and its charge sources (docs/safety.md)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any

from edge_agent.config.load import parse_config
from edge_agent.config.model import AgentConfig, ConfigError, effective_remote_window
from edge_agent.config.rules import types_text
from edge_agent.config.serialise import config_to_dict
from edge_agent.control.envelope import (
    Range,
    setting_value,
)
from edge_agent.control.extio import ALLOWED_TYPES, charges, remote_types
from edge_agent.control.settings import (
    ControlSettings,
    OutputType,
)
from edge_agent.problems import unknown_key

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
    "heat_shunt",
    "storage",
    "data_log",
    "timing",
    "mqtt",
    "heartbeat",
    "remote_window",  # how far a remote client may move a setting is the file's to say
)
_REMOTE_BATTERY_KEYS = ("capacity_ah",)
_BATTERY_WIRING_KEYS = ("chemistry", "cells", "ocv_curve")
# What a heater may warm, which arrays it heats from and which input reads its tank are
# wiring: only the file says them (docs/diversion.md). The dead time (inside its remote
# window) and the site may move.
_REMOTE_DIVERSION_KEYS = ("dead_time_s", "latitude_deg", "longitude_deg", "tilt_deg", "azimuth_deg")
_DIVERSION_WIRING_KEYS = ("heater_warms_battery", "arrays", "tank_temperature")
_OUTPUT_WIRING_KEYS = (
    "name",
    "wiring",
    "diverts",
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
    return replace(merged, remote_window=window, notes=current.notes, warnings=current.warnings)


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
                f"{types_text(remote_types(output.wiring))} (got {int(output.type)})"
            )
    return problems


def _merge_remote_key(data: dict[str, Any], key: str, value: Any) -> list[str]:
    if key in REMOTE_READ_ONLY_KEYS:
        return [f"{key}: {_READ_ONLY}"]
    if key == "battery":
        return _merge_remote_battery(data, value)
    if key == "diversion":
        return _merge_remote_diversion(data, value)
    if key == "outputs":
        return _merge_remote_outputs(data["outputs"], value)
    if key == "lockouts_latch":
        data[key] = value  # parse_config checks the type
        return []
    if key not in REMOTE_SECTIONS:
        known = (
            *REMOTE_SECTIONS,
            *REMOTE_READ_ONLY_KEYS,
            "battery",
            "diversion",
            "outputs",
            "lockouts_latch",
        )
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


def _merge_remote_diversion(data: dict[str, Any], value: Any) -> list[str]:
    if not isinstance(value, Mapping):
        return [f"diversion: must be a mapping (got {_json_kind(value)})"]
    problems: list[str] = []
    for key, item in value.items():
        if key in _REMOTE_DIVERSION_KEYS:
            data["diversion"][key] = item  # parse_config checks the type and the range
        elif key in _DIVERSION_WIRING_KEYS:
            problems.append(f"diversion.{key}: {_READ_ONLY}")
        else:
            known = (*_REMOTE_DIVERSION_KEYS, *_DIVERSION_WIRING_KEYS)
            problems.append(f"diversion.{key}: {unknown_key(key, known)}")
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
