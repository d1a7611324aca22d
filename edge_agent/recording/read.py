"""Reading a recording (`record.py`) back, strictly, before anything is replayed.

Every line is checked: JSON, the keys its kind allows and no others, the types and counts
(as many cells as the configuration has), finite numbers, time never going back. The first
problem raises `RecordingError` naming the file, the line and what is wrong. Each source
replays its own recordings from here: `diy/replay.py` (a DIY box, through the controller or
the real drivers), `sbms0/replay.py` (a stock SBMS, through the real receiver).
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.config import AgentConfig, ConfigError, parse_config
from edge_agent.control.model import Measurement, MeasurementFailure, Sample
from edge_agent.control.persisted import PersistedState
from edge_agent.control.values import is_integer, is_number
from edge_agent.drivers.bus_log import OPS, READS, Transaction
from edge_agent.recording.record import (
    READABLE_VERSIONS,
    RECORD_FORMAT,
    RECORD_VERSION,
)

_HEADER_KEYS = frozenset(
    {
        "format",
        "version",
        "source",
        "agent_version",
        "started",
        "config",
        "state",
        "bus",
        "bus_name",
    }
)
_BUS_COVERAGE = (None, "start", "continued")
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
        "heat_power_w",  # added with issue 19: absent = no heat-path reading
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
    bus: str | None = None  # None, "start" or "continued" (see record.py)
    bus_name: str = "replayed bus"
    state_data: dict[str, Any] | None = None  # the state as recorded


@dataclass(frozen=True, slots=True)
class Entry:
    """One recorded event: `kind` is sample/failure (diy) or line/page/step (sbms0)."""

    line: int
    t: float
    kind: str
    sample: Sample | None = None
    text: str | None = None
    bus: tuple[Transaction, ...] | None = None  # the step's register transactions


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
    if data.get("version") not in READABLE_VERSIONS:
        raise RecordingError(
            f"{where}: recording version {data.get('version')!r}; this agent reads "
            f"versions {', '.join(map(str, READABLE_VERSIONS))} (it writes {RECORD_VERSION})"
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
    bus = data.get("bus")
    if bus not in _BUS_COVERAGE or (bus is not None and source != "diy"):
        raise RecordingError(f'{where}: "bus" must be null, "start" or "continued" (diy only)')
    bus_name = data.get("bus_name")
    if bus_name is not None and not isinstance(bus_name, str):
        raise RecordingError(f'{where}: "bus_name" must be a string or null')
    return RecordingHeader(
        str(source),
        started,
        config,
        state,
        str(version),
        bus,
        bus_name or "replayed bus",
        state_data or None,
    )


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
    extra = frozenset({"bus"}) if kind in ("sample", "failure") else frozenset()
    _only(where, data, frozenset({"t", kind}) | extra, f"a {kind} line")
    t = _number(where, data.get("t"), "t")
    value = data[kind]
    bus = _transactions(where, data["bus"]) if "bus" in data else None
    if kind == "sample":
        return Entry(number, t, kind, sample=_measurement(where, t, value, cells), bus=bus)
    if kind == "failure":
        failure = MeasurementFailure(t, _text(where, value, kind))
        return Entry(number, t, kind, sample=failure, bus=bus)
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
        heat_power_w=_optional(where, value.get("heat_power_w"), "heat_power_w"),
    )


def _transactions(where: str, value: object) -> tuple[Transaction, ...]:
    if not isinstance(value, list):
        raise RecordingError(f'{where}: "bus" must be a list of transactions')
    return tuple(_transaction(f"{where}: bus[{i}]", item) for i, item in enumerate(value))


def _transaction(where: str, item: object) -> Transaction:
    rule = "[address, op, register, data] or [address, op, register, data, [errno, message]]"
    if not isinstance(item, list) or len(item) not in (4, 5):
        raise RecordingError(f"{where}: a transaction is {rule}")
    address, op, register, data = item[:4]
    if not _byte(address) or address > 0x7F:
        raise RecordingError(f"{where}: the address must be a number 0 to 127")
    if op not in OPS:
        raise RecordingError(f"{where}: the op must be one of {', '.join(OPS)}, not {op!r}")
    if not _byte(register):
        raise RecordingError(f"{where}: the register must be a number 0 to 255")
    failed = len(item) == 5
    if failed:
        error = item[4]
        if not (
            isinstance(error, list)
            and len(error) == 2
            and is_integer(error[0])
            and isinstance(error[1], str)
        ):
            raise RecordingError(f"{where}: the error must be [errno, message]")
    if op in ("rb", "rw"):
        ok = (data is None) if failed else is_integer(data) and 0 <= data <= 0xFFFF
    elif op == "rk":
        ok = (is_integer(data) and 0 < data <= 32) if failed else _bytes(data)
    elif op == "wk":
        ok = _bytes(data)
    else:
        ok = is_integer(data) and 0 <= data <= 0xFFFF
    if not ok:
        what = "the bytes read" if op in READS and not failed else "its data"
        raise RecordingError(f"{where}: {OPS[op]} with invalid data {data!r} ({what})")
    return list(item)


def _byte(value: object) -> bool:
    return is_integer(value) and 0 <= value <= 0xFF


def _bytes(value: object) -> bool:
    return isinstance(value, list) and 0 < len(value) <= 32 and all(_byte(b) for b in value)


def _only(where: str, data: Mapping[str, Any], allowed: frozenset[str], what: str) -> None:
    unknown = sorted(set(data) - allowed)
    if unknown:
        raise RecordingError(
            f"{where}: {what} has unknown key(s) {', '.join(unknown)} "
            f"(allowed: {', '.join(sorted(allowed))})"
        )


def _number(where: str, value: object, name: str) -> float:
    if not is_number(value):
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
