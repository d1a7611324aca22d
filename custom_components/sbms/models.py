"""Typed views of the agent's MQTT payloads (docs/protocol.md, version 1).

The integration ships without the agent, so it reads the payloads on its own: every parser
checks what it uses and raises `ProtocolError` naming the field, so one bad message is logged
and dropped instead of breaking entities. Fields a reader may meet absent (additions within a
protocol version) have defaults.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from .const import OUTPUT_TYPE_DUAL_PV, OUTPUT_TYPE_NAMES

MAX_PAYLOAD_BYTES = 262_144

Payload = str | bytes | bytearray


class ProtocolError(ValueError):
    """A payload that does not follow docs/protocol.md; the message names the field."""


def decode_object(payload: Payload, what: str) -> dict[str, Any]:
    """One JSON object from an MQTT payload."""
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise ProtocolError(f"{what}: payload of {len(payload)} bytes is too large")
    try:
        value = json.loads(payload)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"{what}: not JSON ({err})") from err
    if not isinstance(value, dict):
        raise ProtocolError(f"{what}: not a JSON object")
    return value


class _Reader:
    """Typed access to one JSON object, with errors that name `<what>.<key>`."""

    def __init__(self, data: Mapping[str, Any], what: str) -> None:
        self._data = data
        self.what = what

    def _fail(self, key: str, expected: str) -> ProtocolError:
        got = self._data.get(key)
        return ProtocolError(f"{self.what}.{key}: expected {expected}, got {got!r}")

    def raw(self, key: str) -> Any:
        if key not in self._data:
            raise ProtocolError(f"{self.what}.{key}: missing")
        return self._data[key]

    def has(self, key: str) -> bool:
        return key in self._data

    def number(self, key: str) -> float:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self._fail(key, "a number")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        if self._data.get(key) is None:
            return None
        return self.number(key)

    def integer(self, key: str) -> int:
        value = self.raw(key)
        if isinstance(value, bool) or not isinstance(value, int):
            raise self._fail(key, "an integer")
        return value

    def optional_integer(self, key: str) -> int | None:
        if self._data.get(key) is None:
            return None
        return self.integer(key)

    def text(self, key: str) -> str:
        value = self.raw(key)
        if not isinstance(value, str):
            raise self._fail(key, "a string")
        return value

    def flag(self, key: str) -> bool:
        value = self.raw(key)
        if not isinstance(value, bool):
            raise self._fail(key, "true or false")
        return value

    def obj(self, key: str, *, default: Mapping[str, Any] | None = None) -> _Reader:
        if default is not None and key not in self._data:
            return _Reader(default, f"{self.what}.{key}")
        value = self.raw(key)
        if not isinstance(value, dict):
            raise self._fail(key, "an object")
        return _Reader(value, f"{self.what}.{key}")

    def items(self, key: str) -> list[Any]:
        value = self.raw(key)
        if not isinstance(value, list):
            raise self._fail(key, "a list")
        return value

    def names(self) -> list[str]:
        return [str(key) for key in self._data]

    def numbers(self, key: str) -> tuple[float, ...]:
        values = self.items(key)
        if not all(isinstance(v, int | float) and not isinstance(v, bool) for v in values):
            raise self._fail(key, "a list of numbers")
        return tuple(float(v) for v in values)

    def flags(self, key: str) -> tuple[bool, ...]:
        values = self.items(key)
        if not all(isinstance(v, bool) for v in values):
            raise self._fail(key, "a list of true/false")
        return tuple(values)

    def texts(self, key: str) -> tuple[str, ...]:
        values = self.items(key)
        if not all(isinstance(v, str) for v in values):
            raise self._fail(key, "a list of strings")
        return tuple(values)


# What an output physically switches (`announce.outputs[i].wiring`, added within version 1).
# Only the box's configuration file says it; it never changes over MQTT.
OUTPUT_WIRINGS = ("charge", "load", "signal", "fault", "heater", "none")


@dataclass(frozen=True, slots=True)
class OutputInfo:
    """One EXTIO output as announced: its name and type (0-7).

    `wiring` and `settable_types` were added within protocol version 1: None from an older
    agent, which then takes any type for any output (its own rules still apply).
    """

    name: str
    type: int
    wiring: str | None = None
    settable_types: tuple[int, ...] | None = None

    @property
    def type_name(self) -> str:
        return OUTPUT_TYPE_NAMES[self.type]

    @property
    def remote_types(self) -> tuple[int, ...]:
        """The types a `config/set` may give this output, by number (all of them if unsaid)."""
        if self.settable_types is None:
            return tuple(range(len(OUTPUT_TYPE_NAMES)))
        return self.settable_types

    @property
    def type_choice(self) -> bool:
        """Whether a remote client has more than one type to choose from for this output."""
        return len(self.remote_types) > 1


@dataclass(frozen=True, slots=True)
class Announce:
    """The retained description of a battery box."""

    protocol_version: int
    agent_version: str
    agent_id: str
    model: str
    source: str
    serial: str
    cells: int
    capacity_ah: float
    pv_current: bool
    temperatures: tuple[str, ...]
    outputs: tuple[OutputInfo, ...]
    config_set: bool
    commands: frozenset[str]
    topics: Mapping[str, str]
    # `history/get` is answered from a data log (added within protocol version 1).
    history: bool = False

    @classmethod
    def from_payload(cls, payload: Payload) -> Announce:
        """Parse an announce; only `protocol_version` is read before the version check."""
        data = decode_object(payload, "announce")
        return cls.from_dict(data)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Announce:
        r = _Reader(data, "announce")
        protocol_version = r.integer("protocol_version")
        measurements = r.obj("measurements")
        capabilities = r.obj("capabilities")
        topics = r.obj("topics")
        return cls(
            protocol_version=protocol_version,
            agent_version=r.text("agent_version"),
            agent_id=r.text("agent_id"),
            model=r.text("model"),
            source=r.text("source"),
            serial=r.text("serial"),
            cells=r.integer("cells"),
            capacity_ah=r.number("capacity_ah"),
            pv_current=measurements.flag("pv_current"),
            temperatures=measurements.texts("temperatures"),
            outputs=tuple(_output(item, index) for index, item in enumerate(r.items("outputs"))),
            config_set=capabilities.flag("config_set"),
            commands=frozenset(capabilities.texts("commands")),
            topics={key: topics.text(key) for key in topics.names()},
            history=capabilities.flag("history") if capabilities.has("history") else False,
        )

    @property
    def estimates_soc(self) -> bool:
        """The agent estimates SoC itself; a stock SBMS0 source (`sbms0`) publishes the SBMS's."""
        return self.source != "sbms0"

    def output(self, name: str) -> OutputInfo | None:
        return next((output for output in self.outputs if output.name == name), None)

    @property
    def has_dual_pv(self) -> bool:
        """An output stages dual PV (type 6): Imax, the level sensor and its trigger exist."""
        return any(output.type == OUTPUT_TYPE_DUAL_PV for output in self.outputs)


def _output(item: Any, index: int) -> OutputInfo:
    if not isinstance(item, dict):
        raise ProtocolError(f"announce.outputs[{index}]: expected an object, got {item!r}")
    r = _Reader(item, f"announce.outputs[{index}]")
    output_type = r.integer("type")
    if not 0 <= output_type < len(OUTPUT_TYPE_NAMES):
        raise ProtocolError(
            f"announce.outputs[{index}].type: {output_type} is not 0-{len(OUTPUT_TYPE_NAMES) - 1}"
        )
    wiring: str | None = None
    if r.has("wiring"):
        wiring = r.text("wiring")
        if wiring not in OUTPUT_WIRINGS:
            raise ProtocolError(
                f"announce.outputs[{index}].wiring: expected one of "
                f"{', '.join(OUTPUT_WIRINGS)}, got {wiring!r}"
            )
    return OutputInfo(
        name=r.text("name"),
        type=output_type,
        wiring=wiring,
        settable_types=_settable_types(r) if r.has("settable_types") else None,
    )


def _settable_types(r: _Reader) -> tuple[int, ...]:
    """`settable_types`: output type numbers (0-7), kept sorted and without repeats."""
    values = r.items("settable_types")
    if not all(
        isinstance(v, int) and not isinstance(v, bool) and 0 <= v < len(OUTPUT_TYPE_NAMES)
        for v in values
    ):
        raise ProtocolError(
            f"{r.what}.settable_types: expected a list of output types "
            f"0-{len(OUTPUT_TYPE_NAMES) - 1}, got {values!r}"
        )
    return tuple(sorted(set(values)))


def protocol_version_of(payload: Payload) -> int:
    """Only the version, so a newer agent's announce is recognised even if its shape changed."""
    return _Reader(decode_object(payload, "announce"), "announce").integer("protocol_version")


@dataclass(frozen=True, slots=True)
class Counters:
    """Monotonic energy totals since installation (Ah and Wh)."""

    battery_in_ah: float
    battery_out_ah: float
    battery_in_wh: float
    battery_out_wh: float
    pv_ah: float
    pv_wh: float
    load_ah: float
    load_wh: float


# --- PV diversion (issue 19) ----------------------------------------------------------------

DIVERSION_COUNTER_FIELDS = (
    "diverted_wh",
    "diverted_measured_wh",
    "diverted_estimated_wh",
    "curtailed_wh",
)


@dataclass(frozen=True, slots=True)
class Diversion:
    """`state.diversion`: present only on a box that decides a PV diversion (docs/diversion.md).

    `power_w` is measured by a heat-path shunt when `measured`, else estimated; `available_w`
    is the surplus the disconnected arrays could give (None: no estimate). Counters in Wh.
    """

    diverting: bool
    power_w: float | None
    measured: bool
    available_w: float | None
    counters: Mapping[str, float]

    @classmethod
    def from_reader(cls, r: _Reader) -> Diversion:
        counters = r.obj("counters")
        return cls(
            diverting=r.flag("diverting"),
            power_w=r.optional_number("power_w"),
            measured=r.flag("measured"),
            available_w=r.optional_number("available_w"),
            counters={name: counters.number(name) for name in DIVERSION_COUNTER_FIELDS},
        )

    @property
    def surplus(self) -> bool:
        """Surplus available, as the agent's native discovery says it: diverting, or the
        disconnected arrays could give more than 0 W."""
        return self.diverting or (self.available_w is not None and self.available_w > 0)


@dataclass(frozen=True, slots=True)
class BoxState:
    """One telemetry message."""

    timestamp: float
    soc: float
    remaining_ah: float
    capacity_ah: float
    voltage: float | None
    battery_current: float | None
    battery_power: float | None
    pv_current: float | None
    pv_power: float | None
    load_current: float | None
    load_power: float | None
    cells: tuple[float, ...]
    cell_min: float | None
    cell_max: float | None
    cell_delta: float | None
    balancing: tuple[bool, ...]
    temperatures: Mapping[str, float | None]
    flags: tuple[str, ...]
    faults: tuple[str, ...]
    interlocks: tuple[str, ...]
    charge_allowed: bool
    load_allowed: bool
    outputs: Mapping[str, bool]
    dual_pv_level: int | None
    time_to_full_s: float | None
    time_to_empty_s: float | None
    counters: Counters
    measurement_ok: bool
    forced_off: Mapping[str, float] = field(default_factory=dict)
    # Added within protocol version 1, so a reader accepts their absence (None: unknown).
    high_soc_alarm: bool | None = None
    low_soc_alarm: bool | None = None
    # What the agent counts about its MQTT link and a stock SBMS source (for diagnostics;
    # None from agents that do not send them)
    link_stats: Mapping[str, Any] | None = None
    source_stats: Mapping[str, Any] | None = None
    # Half the ~95 % band around `soc`, SoC points (added within protocol version 1, issue
    # 16); None from an agent that does not estimate it (a stock SBMS0) or predates it.
    soc_uncertainty: float | None = None
    # PV diversion (added within protocol version 1, issue 19): None on a box without one.
    diversion: Diversion | None = None
    # PV energy per array, Wh, by charge output (issue 20, added within protocol version 1):
    # only from a dual-PV box with a PV shunt; None otherwise and from older agents.
    pv_arrays_wh: Mapping[str, float] | None = None

    @classmethod
    def from_payload(cls, payload: Payload) -> BoxState:
        return cls.from_dict(decode_object(payload, "state"))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> BoxState:
        r = _Reader(data, "state")
        temperatures = r.obj("temperatures")
        outputs = r.obj("outputs")
        forced = r.obj("forced_off", default={})
        counters = r.obj("counters")
        return cls(
            timestamp=r.number("timestamp"),
            soc=r.number("soc"),
            remaining_ah=r.number("remaining_ah"),
            capacity_ah=r.number("capacity_ah"),
            voltage=r.optional_number("voltage"),
            battery_current=r.optional_number("battery_current"),
            battery_power=r.optional_number("battery_power"),
            pv_current=r.optional_number("pv_current"),
            pv_power=r.optional_number("pv_power"),
            load_current=r.optional_number("load_current"),
            load_power=r.optional_number("load_power"),
            cells=r.numbers("cells"),
            cell_min=r.optional_number("cell_min"),
            cell_max=r.optional_number("cell_max"),
            cell_delta=r.optional_number("cell_delta"),
            balancing=r.flags("balancing"),
            temperatures={key: temperatures.optional_number(key) for key in temperatures.names()},
            flags=r.texts("flags"),
            faults=r.texts("faults"),
            interlocks=r.texts("interlocks"),
            charge_allowed=r.flag("charge_allowed"),
            load_allowed=r.flag("load_allowed"),
            outputs={key: outputs.flag(key) for key in outputs.names()},
            dual_pv_level=r.optional_integer("dual_pv_level"),
            time_to_full_s=r.optional_number("time_to_full_s"),
            time_to_empty_s=r.optional_number("time_to_empty_s"),
            counters=Counters(**{name: counters.number(name) for name in _COUNTER_FIELDS}),
            measurement_ok=r.flag("measurement_ok"),
            forced_off={key: forced.number(key) for key in forced.names()},
            high_soc_alarm=r.flag("high_soc_alarm") if r.has("high_soc_alarm") else None,
            low_soc_alarm=r.flag("low_soc_alarm") if r.has("low_soc_alarm") else None,
            link_stats=_counts(data.get("link_stats")),
            source_stats=_counts(data.get("source_stats")),
            soc_uncertainty=r.optional_number("soc_uncertainty"),
            diversion=Diversion.from_reader(r.obj("diversion")) if r.has("diversion") else None,
            pv_arrays_wh=_pv_arrays(r),
        )


_COUNTER_FIELDS = tuple(Counters.__dataclass_fields__)


def _pv_arrays(r: _Reader) -> Mapping[str, float] | None:
    """`pv_arrays_wh` (issue 20): absent from a box without dual PV and from older agents."""
    if not r.has("pv_arrays_wh"):
        return None
    arrays = r.obj("pv_arrays_wh")
    return {name: arrays.number(name) for name in arrays.names()}


def _counts(value: object) -> Mapping[str, Any] | None:
    """A counters object kept as sent (diagnostics show it); anything else is left out."""
    return dict(value) if isinstance(value, dict) else None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """The configuration in force (the retained `config` topic), kept as the agent sent it."""

    data: Mapping[str, Any]

    @classmethod
    def from_payload(cls, payload: Payload) -> AgentConfig:
        data = decode_object(payload, "config")
        r = _Reader(data, "config")
        r.integer("config_revision")
        r.obj("thresholds")
        r.items("outputs")
        return cls(data=data)

    @property
    def revision(self) -> int:
        return int(self.data["config_revision"])

    def value(self, section: str, key: str) -> Any:
        """One setting, `None` when the section or key is absent (or the section is null)."""
        part = self.data.get(section)
        return part.get(key) if isinstance(part, dict) else None

    def section(self, section: str) -> dict[str, Any]:
        part = self.data.get(section)
        return dict(part) if isinstance(part, dict) else {}

    @property
    def ocv_curve(self) -> str:
        """Which resting-voltage curve the agent's SoC reads near empty (issue 16): `configured`
        (the cells' own, `battery.ocv_curve`) or `built_in` (its LiFePO4 synthesis: the SoC's
        band stays wide there). The key is absent unless configured (added within 1)."""
        return "configured" if self.value("battery", "ocv_curve") else "built_in"

    @property
    def tank_temperature(self) -> str | None:
        """The temperature input that reads the heater tank (`diversion.tank_temperature`,
        issue 19), or None: none, or an agent from before it."""
        value = self.value("diversion", "tank_temperature")
        return value if isinstance(value, str) else None

    def remote_window(self, section: str, key: str) -> tuple[float, float] | None:
        """The range a remote change may move `section.key` in (`remote_window`, added within
        version 1), or None: an older agent, a setting it does not list, or a malformed entry
        (then the integration's own limits apply and the agent still decides)."""
        window = self.data.get("remote_window")
        part = window.get(section) if isinstance(window, dict) else None
        bounds = part.get(key) if isinstance(part, dict) else None
        if not isinstance(bounds, list) or len(bounds) != 2 or not all(map(_is_number, bounds)):
            return None
        low, high = float(bounds[0]), float(bounds[1])
        return (low, high) if low <= high else None


@dataclass(frozen=True, slots=True)
class RequestError:
    """One reason the agent gave for rejecting a request."""

    field: str
    reason: str


@dataclass(frozen=True, slots=True)
class RequestResult:
    """The agent's answer to `config/set` or a command."""

    request_id: str | None
    command: str
    accepted: bool
    errors: tuple[RequestError, ...]
    config_revision: int | None

    @classmethod
    def from_payload(cls, payload: Payload) -> RequestResult:
        r = _Reader(decode_object(payload, "result"), "result")
        request_id = r.raw("request_id")
        errors = []
        for index, item in enumerate(r.items("errors")):
            if not isinstance(item, dict):
                raise ProtocolError(f"result.errors[{index}]: expected an object")
            error = _Reader(item, f"result.errors[{index}]")
            errors.append(RequestError(field=error.text("field"), reason=error.text("reason")))
        status = r.text("status")
        if status not in {"accepted", "rejected"}:
            raise ProtocolError(f"result.status: expected accepted or rejected, got {status!r}")
        return cls(
            request_id=request_id if isinstance(request_id, str) else None,
            command=r.text("command"),
            accepted=status == "accepted",
            errors=tuple(errors),
            config_revision=r.optional_integer("config_revision"),
        )

    def describe(self) -> str:
        """The agent's reasons in one line, for forms, exceptions and repair issues."""
        return "; ".join(f"{error.field}: {error.reason}" for error in self.errors)


@dataclass(frozen=True, slots=True)
class AgentEvent:
    """One transition reported by the agent."""

    kind: str
    timestamp: float
    detail: Mapping[str, Any]

    @classmethod
    def from_payload(cls, payload: Payload) -> AgentEvent:
        r = _Reader(decode_object(payload, "event"), "event")
        detail = r.obj("detail")
        return cls(
            kind=r.text("kind"),
            timestamp=r.number("timestamp"),
            detail={key: detail.raw(key) for key in detail.names()},
        )


# The measured series of a data-log record, each `[mean, min, max]` or null.
HISTORY_SERIES = (
    "soc",
    "pack_voltage",
    "battery_current",
    "battery_power",
    "pv_current",
    "pv_power",
    "load_current",
    "load_power",
)


@dataclass(frozen=True, slots=True)
class Reading:
    """Mean and extremes of one value over an interval."""

    mean: float
    min: float
    max: float

    @classmethod
    def single(cls, value: float) -> Reading:
        """A value known only as a mean (temperatures, one cell): its own extremes."""
        return cls(value, value, value)


@dataclass(frozen=True, slots=True)
class HistoryRecord:
    """One interval of the agent's data log, as far as statistics use it (docs/protocol.md)."""

    start: float
    end: float
    series: Mapping[str, Reading | None]
    cell_min: float | None
    cell_max: float | None
    cell_delta: float | None
    cells: tuple[float | None, ...]
    internal_temperature: float | None
    external_temperatures: tuple[float | None, ...]
    dual_pv_level: int | None
    counters: Mapping[str, float]

    @classmethod
    def from_dict(cls, data: Any, what: str) -> HistoryRecord:
        if not isinstance(data, dict):
            raise ProtocolError(f"{what}: expected an object, got {data!r:.60}")
        r = _Reader(data, what)
        start, end = r.number("start"), r.number("end")
        if not end > start:
            raise ProtocolError(f"{what}.end: must be after start ({end:g} <= {start:g})")
        counters = r.obj("counters")
        return cls(
            start=start,
            end=end,
            series={name: _reading(r, name) for name in HISTORY_SERIES},
            cell_min=r.optional_number("cell_min"),
            cell_max=r.optional_number("cell_max"),
            cell_delta=r.optional_number("cell_delta"),
            cells=_optional_numbers(r, "cells"),
            internal_temperature=r.optional_number("internal_temperature"),
            external_temperatures=_optional_numbers(r, "external_temperatures"),
            dual_pv_level=r.optional_integer("dual_pv_level"),
            counters={name: counters.number(name) for name in counters.names()},
        )

    def external_temperature(self, index: int) -> float | None:
        """The mean of external sensor `index` (0 = battery, 1 = external2), if any."""
        temps = self.external_temperatures
        return temps[index] if index < len(temps) else None

    def cell(self, index: int) -> float | None:
        return self.cells[index] if index < len(self.cells) else None


def _reading(r: _Reader, key: str) -> Reading | None:
    if r.raw(key) is None:
        return None
    values = r.numbers(key)
    if len(values) != 3:
        raise ProtocolError(f"{r.what}.{key}: expected [mean, min, max], got {list(values)!r}")
    return Reading(*values)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _optional_numbers(r: _Reader, key: str) -> tuple[float | None, ...]:
    values = r.items(key)
    if not all(v is None or _is_number(v) for v in values):
        raise ProtocolError(f"{r.what}.{key}: expected a list of numbers or nulls")
    return tuple(None if v is None else float(v) for v in values)


@dataclass(frozen=True, slots=True)
class HistoryAnswer:
    """The agent's answer to `history/get`: a result, and a page of records when accepted."""

    result: RequestResult
    records: tuple[HistoryRecord, ...] = ()
    next_from: float | None = None

    @classmethod
    def from_payload(cls, payload: Payload) -> HistoryAnswer:
        result = RequestResult.from_payload(payload)
        if not result.accepted:
            return cls(result)
        r = _Reader(decode_object(payload, "history"), "history")
        records = tuple(
            HistoryRecord.from_dict(item, f"history.records[{index}]")
            for index, item in enumerate(r.items("records"))
        )
        return cls(result, records, r.optional_number("next_from"))
