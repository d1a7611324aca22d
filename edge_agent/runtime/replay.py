"""Reading a recording (`record.py`) strictly, and replaying a DIY box's through the controller.

Every line is checked: JSON, the keys its kind allows and no others, the types and counts
(as many cells as the configuration has), finite numbers, time never going back. The first
problem raises `RecordingError` naming the file, the line and what is wrong. The replay builds
the real `Controller` from the recorded configuration (or another one) and state, and feeds it
the recorded samples at their recorded times: the decisions are the live run's.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.control.controller import Controller, PersistedState
from edge_agent.control.model import ControlReport, Measurement, MeasurementFailure, Sample
from edge_agent.runtime.record import RECORD_FORMAT, RECORD_VERSION

_HEADER_KEYS = frozenset(
    {"format", "version", "source", "agent_version", "started", "config", "state"}
)
_SAMPLE_KEYS = frozenset(
    {
        "cell_voltages",
        "battery_current",
        "charge_delta_ah",
        "pv_current",
        "pack_voltage",
        "internal_temperature",
        "external_temperatures",
        "balancing",
        "monitor_flags",
    }
)
_SOURCES = ("diy", "sbms0")
_ENTRY_KINDS = {"diy": ("sample", "failure"), "sbms0": ("line", "page", "step")}


class RecordingError(Exception):
    """A recording that cannot be replayed; the message names the file and line."""


@dataclass(frozen=True, slots=True)
class RecordingHeader:
    source: str
    started: float
    config: AgentConfig
    state: PersistedState | None
    agent_version: str


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded event: `kind` is sample/failure (diy) or line/page/step (sbms0)."""

    line: int
    t: float
    kind: str
    sample: Sample | None = None
    text: str | None = None


def read_header(path: Path) -> RecordingHeader:
    with _open(path) as lines:
        for number, raw in lines:
            return _header(path, number, raw)
    raise RecordingError(f"{path}: empty file: not a recording")


def read_entries(path: Path, header: RecordingHeader) -> Iterator[Entry]:
    """The entries after the header, checked one by one (a bad line raises when reached)."""
    cells = header.config.control.cell_count
    previous = -math.inf
    with _open(path) as lines:
        for number, raw in lines:
            if number == 1:
                continue
            entry = _entry(path, number, raw, header.source, cells)
            if entry.t < previous:
                raise RecordingError(
                    f"{path}:{number}: time {entry.t} is before the previous line's {previous}"
                )
            previous = entry.t
            yield entry


def read_recording(path: Path) -> tuple[RecordingHeader, list[Entry]]:
    """The whole file, validated before anything is replayed."""
    header = read_header(path)
    return header, list(read_entries(path, header))


def replay_diy(
    header: RecordingHeader, entries: list[Entry], config: AgentConfig | None = None
) -> Iterator[ControlReport]:
    """The controller's report for every recorded sample, in order."""
    settings = (config or header.config).control
    controller = Controller(settings, header.started, header.state)
    for entry in entries:
        assert entry.sample is not None
        yield controller.update(entry.sample)


# -- validation -------------------------------------------------------------------------------


class _Lines:
    def __init__(self, path: Path) -> None:
        self._path = path
        try:
            self._file = path.open(encoding="utf-8")
        except OSError as err:
            raise RecordingError(f"{path}: cannot open: {err.strerror or err}") from err

    def __enter__(self) -> Iterator[tuple[int, str]]:
        return self._numbered()

    def __exit__(self, *exc_info: object) -> None:
        self._file.close()

    def _numbered(self) -> Iterator[tuple[int, str]]:
        number = 0
        try:
            for number, raw in enumerate(self._file, start=1):
                yield number, raw
        except UnicodeDecodeError as err:
            raise RecordingError(f"{self._path}:{number + 1}: not UTF-8 text ({err})") from err


def _open(path: Path) -> _Lines:
    return _Lines(path)


def _object(path: Path, number: int, raw: str) -> dict[str, Any]:
    if not raw.endswith("\n"):
        raise RecordingError(f"{path}:{number}: the line is cut off (no newline at its end)")
    try:
        data = json.loads(raw, parse_constant=_no_constant)
    except ValueError as err:
        raise RecordingError(f"{path}:{number}: not JSON: {err}") from err
    if not isinstance(data, dict):
        raise RecordingError(f"{path}:{number}: a JSON object expected, not {_kind(data)}")
    return data


def _no_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number JSON allows")


def _header(path: Path, number: int, raw: str) -> RecordingHeader:
    data = _object(path, number, raw)
    where = f"{path}:{number}"
    if data.get("format") != RECORD_FORMAT:
        raise RecordingError(f'{where}: not a recording ("format" is not {RECORD_FORMAT!r})')
    if data.get("version") != RECORD_VERSION:
        raise RecordingError(
            f"{where}: recording version {data.get('version')!r}; this agent reads "
            f"version {RECORD_VERSION}"
        )
    _only(where, data, _HEADER_KEYS, "the header")
    source = data.get("source")
    if source not in _SOURCES:
        raise RecordingError(f'{where}: "source" must be one of {", ".join(_SOURCES)}')
    started = _number(where, data.get("started"), "started")
    config_data = data.get("config")
    if not isinstance(config_data, dict):
        raise RecordingError(f'{where}: "config" must be an object')
    try:
        config = parse_config(config_data)
    except ConfigError as err:
        raise RecordingError(f"{where}: the recorded configuration is invalid: {err}") from err
    state_data = data.get("state")
    state = None
    if state_data is not None:
        if not isinstance(state_data, dict):
            raise RecordingError(f'{where}: "state" must be an object or null')
        try:
            state = PersistedState.from_dict(state_data)
        except ValueError as err:
            raise RecordingError(f"{where}: the recorded state is unusable: {err}") from err
    version = data.get("agent_version", "")
    return RecordingHeader(str(source), started, config, state, str(version))


def _entry(path: Path, number: int, raw: str, source: str, cells: int) -> Entry:
    data = _object(path, number, raw)
    where = f"{path}:{number}"
    allowed = _ENTRY_KINDS[source]
    kinds = [kind for kind in allowed if kind in data]
    if len(kinds) != 1:
        raise RecordingError(
            f'{where}: a {source} line holds "t" and exactly one of '
            + ", ".join(f'"{k}"' for k in allowed)
        )
    kind = kinds[0]
    if "t" not in data:
        raise RecordingError(f'{where}: a {kind} line has no "t" (its time)')
    _only(where, data, frozenset({"t", kind}), f"a {kind} line")
    t = _number(where, data.get("t"), "t")
    value = data[kind]
    if kind == "sample":
        return Entry(number, t, kind, sample=_measurement(where, t, value, cells))
    if kind == "failure":
        return Entry(number, t, kind, sample=MeasurementFailure(t, _text(where, value, kind)))
    if kind == "step":
        if value is not True:
            raise RecordingError(f'{where}: "step" must be true')
        return Entry(number, t, kind)
    return Entry(number, t, kind, text=_text(where, value, kind))


def _measurement(where: str, t: float, value: object, cells: int) -> Measurement:
    if not isinstance(value, dict):
        raise RecordingError(f'{where}: "sample" must be an object')
    _only(where, value, _SAMPLE_KEYS, "a sample")
    missing = sorted({"cell_voltages", "battery_current"} - set(value))
    if missing:
        raise RecordingError(f"{where}: the sample has no {', '.join(missing)}")
    volts = value["cell_voltages"]
    if not isinstance(volts, list) or len(volts) != cells:
        raise RecordingError(
            f"{where}: cell_voltages must list {cells} numbers (the recorded configuration's "
            f"cells), got {len(volts) if isinstance(volts, list) else _kind(volts)}"
        )
    temperatures = value.get("external_temperatures", [])
    balancing = value.get("balancing", [])
    flags = value.get("monitor_flags", [])
    if not isinstance(temperatures, list):
        raise RecordingError(f"{where}: external_temperatures must be a list")
    if not isinstance(balancing, list) or not all(isinstance(b, bool) for b in balancing):
        raise RecordingError(f"{where}: balancing must be a list of true/false")
    if not isinstance(flags, list) or not all(isinstance(f, str) for f in flags):
        raise RecordingError(f"{where}: monitor_flags must be a list of strings")
    return Measurement(
        timestamp=t,
        cell_voltages=tuple(_number(where, v, f"cell_voltages[{i}]") for i, v in enumerate(volts)),
        battery_current=_number(where, value["battery_current"], "battery_current"),
        charge_delta_ah=_optional(where, value.get("charge_delta_ah"), "charge_delta_ah"),
        pv_current=_optional(where, value.get("pv_current"), "pv_current"),
        pack_voltage=_optional(where, value.get("pack_voltage"), "pack_voltage"),
        internal_temperature=_optional(
            where, value.get("internal_temperature"), "internal_temperature"
        ),
        external_temperatures=tuple(
            _optional(where, v, f"external_temperatures[{i}]") for i, v in enumerate(temperatures)
        ),
        balancing=tuple(balancing),
        monitor_flags=frozenset(flags),
    )


def _only(where: str, data: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecordingError(
            f"{where}: {what} has unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _number(where: str, value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise RecordingError(f'{where}: "{name}" must be a number, not {_kind(value)}')
    if not math.isfinite(value):
        raise RecordingError(f'{where}: "{name}" must be finite')
    return float(value)


def _optional(where: str, value: object, name: str) -> float | None:
    return None if value is None else _number(where, value, name)


def _text(where: str, value: object, name: str) -> str:
    if not isinstance(value, str):
        raise RecordingError(f'{where}: "{name}" must be a string, not {_kind(value)}')
    return value


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "true/false", int: "a number", float: "a number", str: "a string"}.get(
        type(value), "a list" if isinstance(value, list) else "an object"
    )
