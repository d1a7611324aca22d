"""The controller's state that survives a restart: `PersistedState`, written as JSON by the
storage layer and read back here, every field checked, every error naming its key.

Pure: the storage layer hands in the decoded document, nothing here reads a file.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Protocol, TypeVar

from edge_agent.control.diversion import ArrayLearning, EstimatorState
from edge_agent.control.model import DiversionCounters, EnergyCounters, Fault
from edge_agent.control.pv_arrays import PvArrayState
from edge_agent.control.resistance import ResistanceBand, ResistanceState, StepWatch
from edge_agent.control.soc import AnchorKind, LowReference, SocState
from edge_agent.control.values import is_integer, is_number

PERSISTED_FORMAT_VERSION = 1


class _Dataclass(Protocol):
    __dataclass_fields__: ClassVar[dict[str, Any]]


_Numbers = TypeVar("_Numbers", bound=_Dataclass)


@dataclass(frozen=True, slots=True)
class LimitStates:
    """Hysteresis memories, persisted so a restart inside a band keeps the last decision."""

    hvd_active: bool = False
    lvd_active: bool = False
    over_voltage_condition: bool = False
    under_voltage_condition: bool = False
    high_soc_alarm: bool = False
    low_soc_alarm: bool = False
    charge_too_cold: bool = False
    charge_too_hot: bool = False
    internal_over_temperature: bool = False
    max_soc_holding: bool = False
    discharge_too_cold: bool = False
    discharge_too_hot: bool = False


# Limits whose trip waits for a delay; their pending crossings are persisted by these names.
DELAYED_LIMITS = ("hvd", "lvd", "ovlo", "uvlo")


@dataclass(frozen=True, slots=True)
class PersistedState:
    """Everything that must survive a restart."""

    soc: SocState
    counters: EnergyCounters = field(default_factory=EnergyCounters)
    full_charge_day: int | None = None  # local day of the last full sync (max-SoC limit)
    dual_pv_level: int = 1
    dual_pv_level_since: float | None = None
    dual_pv_charging_was_allowed: bool = False
    latched_faults: frozenset[Fault] = frozenset()
    reported_faults: frozenset[Fault] = frozenset()
    limits: LimitStates = field(default_factory=LimitStates)
    forced_off: Mapping[str, float] = field(default_factory=dict)  # output name -> until
    # limit name (DELAYED_LIMITS) -> first sample of a crossing that has not tripped yet
    trips_pending: Mapping[str, float] = field(default_factory=dict)
    last_timestamp: float | None = None  # last good measurement
    last_battery_current: float | None = None
    last_pv_current: float | None = None
    # PV diversion: its counters and what the estimate learned (absent in older states), and
    # since when each battery and heat path has been off (None: on at the last decision).
    diversion: EstimatorState = field(default_factory=EstimatorState)
    paths_off_since: Mapping[str, float | None] = field(default_factory=dict)
    # PV energy per array on a dual-PV box (issue 20; absent in older states).
    pv_arrays: PvArrayState = field(default_factory=PvArrayState)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe (infinite force-off times are written as null)."""
        return {
            "version": PERSISTED_FORMAT_VERSION,
            "soc": json_shaped({**asdict(self.soc), "anchor_kind": self.soc.anchor_kind.value}),
            "counters": asdict(self.counters),
            "full_charge_day": self.full_charge_day,
            "dual_pv_level": self.dual_pv_level,
            "dual_pv_level_since": self.dual_pv_level_since,
            "dual_pv_charging_was_allowed": self.dual_pv_charging_was_allowed,
            "latched_faults": sorted(f.value for f in self.latched_faults),
            "reported_faults": sorted(f.value for f in self.reported_faults),
            "limits": asdict(self.limits),
            "forced_off": {
                name: (until if math.isfinite(until) else None)
                for name, until in sorted(self.forced_off.items())
            },
            "trips_pending": dict(sorted(self.trips_pending.items())),
            "last_timestamp": self.last_timestamp,
            "last_battery_current": self.last_battery_current,
            "last_pv_current": self.last_pv_current,
            "diversion": {
                **_diversion_dict(self.diversion),
                "paths_off_since": dict(sorted(self.paths_off_since.items())),
            },
            "pv_arrays": {
                "energy_wh": dict(sorted(self.pv_arrays.energy_wh.items())),
                "alone_a": dict(sorted(self.pv_arrays.alone_a.items())),
                "conducting": list(self.pv_arrays.conducting),
            },
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> PersistedState:
        """Rebuild from `to_dict` output; ValueError naming the key on malformed data."""
        reader = StateReader(data, "")
        version = reader.integer("version")
        if version != PERSISTED_FORMAT_VERSION:
            raise ValueError(f"persisted state key 'version': unsupported {version}")
        level = reader.integer("dual_pv_level")
        if not 1 <= level <= 3:
            raise ValueError(f"persisted state key 'dual_pv_level': {level} outside 1..3")
        return cls(
            soc=_read_soc_state(reader.child("soc")),
            counters=reader.child("counters").numbers(EnergyCounters, non_negative=True),
            full_charge_day=reader.optional_integer("full_charge_day"),
            dual_pv_level=level,
            dual_pv_level_since=reader.optional_number("dual_pv_level_since"),
            dual_pv_charging_was_allowed=reader.boolean("dual_pv_charging_was_allowed"),
            latched_faults=reader.faults("latched_faults"),
            reported_faults=reader.faults("reported_faults"),
            limits=_read_limits(reader.child("limits")),
            forced_off=reader.forced_off("forced_off"),
            trips_pending=reader.trips_pending("trips_pending"),
            last_timestamp=reader.optional_number("last_timestamp"),
            last_battery_current=reader.optional_number("last_battery_current"),
            last_pv_current=reader.optional_number("last_pv_current"),
            diversion=_read_diversion(reader),
            paths_off_since=_read_paths_off_since(reader),
            pv_arrays=_read_pv_arrays(reader),
        )


class StateReader:
    """Typed access to a saved mapping; every error is a ValueError naming the full key."""

    def __init__(self, data: Any, prefix: str) -> None:
        if not isinstance(data, Mapping):
            raise ValueError(f"persisted state key '{prefix or '<root>'}': not a mapping")
        self.data = data
        self.prefix = prefix

    def key(self, key: str) -> str:
        """The full dotted key of `key` under this reader."""
        return f"{self.prefix}.{key}" if self.prefix else key

    def bad(self, key: str, problem: str) -> ValueError:
        """The error for a bad value at `key`, for the caller to raise."""
        return ValueError(f"persisted state key '{self.key(key)}': {problem}")

    def get(self, key: str) -> Any:
        """The raw value at `key`; missing is an error."""
        if key not in self.data:
            raise self.bad(key, "missing")
        return self.data[key]

    def child(self, key: str) -> StateReader:
        return StateReader(self.get(key), self.key(key))

    def number(self, key: str) -> float:
        value = self.get(key)
        if not is_number(value):
            raise self.bad(key, f"expected a number, got {value!r}")
        if not math.isfinite(value):
            raise self.bad(key, f"not finite: {value!r}")
        return float(value)

    def optional_number(self, key: str) -> float | None:
        return None if self.get(key) is None else self.number(key)

    def non_negative(self, key: str) -> float:
        value = self.number(key)
        if value < 0.0:
            raise self.bad(key, f"negative: {value}")
        return value

    def optional_child(self, key: str) -> StateReader | None:
        """The mapping at `key`, None when it is null."""
        return None if self.get(key) is None else self.child(key)

    def numbers(self, kind: type[_Numbers], *, non_negative: bool = False) -> _Numbers:
        """A dataclass whose fields are all numbers, each read from its own key."""
        read = self.non_negative if non_negative else self.number
        return kind(**{item.name: read(item.name) for item in fields(kind)})

    def integer(self, key: str) -> int:
        value = self.get(key)
        if not is_integer(value):
            raise self.bad(key, f"expected an integer, got {value!r}")
        return value

    def optional_integer(self, key: str) -> int | None:
        return None if self.get(key) is None else self.integer(key)

    def boolean(self, key: str) -> bool:
        value = self.get(key)
        if not isinstance(value, bool):
            raise self.bad(key, f"expected true or false, got {value!r}")
        return value

    def faults(self, key: str) -> frozenset[Fault]:
        value = self.get(key)
        if not isinstance(value, list):
            raise self.bad(key, f"expected a list, got {value!r}")
        try:
            return frozenset(Fault(item) for item in value)
        except ValueError as error:
            raise self.bad(key, str(error)) from error

    def trips_pending(self, key: str) -> dict[str, float]:
        """Absent in states saved before delays existed: nothing pending then."""
        if key not in self.data:
            return {}
        pending = self.child(key)
        result: dict[str, float] = {}
        for name in pending.data:
            if name not in DELAYED_LIMITS:
                raise self.bad(key, f"unknown limit {name!r}")
            result[name] = pending.number(name)
        return result

    def forced_off(self, key: str) -> dict[str, float]:
        holds = self.child(key)
        result: dict[str, float] = {}
        for name in holds.data:
            if not isinstance(name, str):
                raise self.bad(key, f"output name {name!r} is not a string")
            result[name] = math.inf if holds.data[name] is None else holds.number(name)
        return result


def json_shaped(value: Any) -> Any:
    """Tuples as lists, so a snapshot equals what its JSON reads back as."""
    if isinstance(value, dict):
        return {key: json_shaped(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [json_shaped(item) for item in value]
    return value


def _read_soc_state(reader: StateReader) -> SocState:
    capacity = reader.number("capacity_ah")
    if capacity <= 0.0:
        raise reader.bad("capacity_ah", f"must be positive, got {capacity}")
    try:
        anchor_kind = AnchorKind(reader.get("anchor_kind"))
    except ValueError as error:
        raise reader.bad("anchor_kind", str(error)) from error
    return SocState(
        charge_ah=reader.number("charge_ah"),
        capacity_ah=capacity,
        offset_a=reader.number("offset_a"),
        anchor_kind=anchor_kind,
        anchor_time=reader.optional_number("anchor_time"),
        counted_since_anchor_ah=reader.number("counted_since_anchor_ah"),
        eoc_since=reader.optional_number("eoc_since"),
        eoc_synced=reader.boolean("eoc_synced"),
        rest_since=reader.optional_number("rest_since"),
        rest_corrected=reader.boolean("rest_corrected"),
        current_ema_a=reader.optional_number("current_ema_a"),
        last_sample_time=reader.optional_number("last_sample_time"),
        uncounted_s=reader.number("uncounted_s"),
        uncounted_at_anchor_s=reader.number("uncounted_at_anchor_s"),
        last_sync_time=reader.optional_number("last_sync_time"),
        full_reference_time=reader.optional_number("full_reference_time"),
        counted_since_full_ah=reader.number("counted_since_full_ah"),
        uncounted_at_full_s=reader.number("uncounted_at_full_s"),
        **_read_soc_uncertainty(reader),
    )


def _read_soc_uncertainty(reader: StateReader) -> dict[str, Any]:
    """The uncertainty, low reference and resistance of issue 16; a state saved before them
    lacks the keys and continues as a new install's uncertainty (SocEstimator fills it)."""
    if "band_sigma" not in reader.data:
        return {}
    low = reader.optional_child("low_reference")
    return {
        "band_sigma": reader.non_negative("band_sigma"),
        "band_soc": reader.number("band_soc"),
        "band_time": reader.optional_number("band_time"),
        "band_charge_in_ah": reader.number("band_charge_in_ah"),
        "capacity_sigma_ah": reader.number("capacity_sigma_ah"),
        "offset_sigma_a": reader.number("offset_sigma_a"),
        "low_reference": None if low is None else low.numbers(LowReference),
        "resistance": _read_resistance(reader.child("resistance")),
        # Added after the rest of issue 16: a state saved without it has no floor.
        "band_floor_sigma": (
            reader.number("band_floor_sigma") if "band_floor_sigma" in reader.data else 0.0
        ),
    }


def _read_resistance(reader: StateReader) -> ResistanceState:
    bands = reader.get("bands")
    if not isinstance(bands, list | tuple):
        raise reader.bad("bands", f"expected a list, got {bands!r}")
    learned = []
    for index in range(len(bands)):
        band = StateReader(bands[index], reader.key(f"bands.{index}"))
        ohm, current = band.number("ohm"), band.number("current_a")
        if ohm < 0.0 or current <= 0.0:
            raise band.bad("ohm", f"implausible band {ohm} ohm at {current} A")
        learned.append(ResistanceBand(current, ohm, band.integer("learnings")))
    watch = reader.optional_child("watch")
    return ResistanceState(
        bands=tuple(learned),
        watch=None if watch is None else watch.numbers(StepWatch),
        last_current_a=reader.optional_number("last_current_a"),
        last_min_cell_v=reader.optional_number("last_min_cell_v"),
    )


def _diversion_dict(state: EstimatorState) -> dict[str, Any]:
    return {
        "counters": asdict(state.counters),
        "learned": {name: asdict(item) for name, item in sorted(state.learned.items())},
        "last_time": state.last_time,
        "last_heat_power_w": state.last_heat_power_w,
    }


def _read_diversion(reader: StateReader) -> EstimatorState:
    """Issue 19's diversion counters and learning; a state saved before them lacks the key
    and starts from zero."""
    if "diversion" not in reader.data:
        return EstimatorState()
    item = reader.child("diversion")
    learned_reader = item.child("learned")
    learned = {}
    for name in learned_reader.data:
        entry = learned_reader.child(str(name))
        learned[str(name)] = ArrayLearning(
            entry.number("amps_per_clear_sky"), entry.number("learned_at")
        )
    return EstimatorState(
        counters=item.child("counters").numbers(DiversionCounters, non_negative=True),
        learned=learned,
        last_time=item.optional_number("last_time"),
        last_heat_power_w=item.optional_number("last_heat_power_w"),
    )


def _read_paths_off_since(reader: StateReader) -> dict[str, float | None]:
    if "diversion" not in reader.data or "paths_off_since" not in reader.data["diversion"]:
        return {}
    paths = reader.child("diversion").child("paths_off_since")
    return {str(name): paths.optional_number(str(name)) for name in paths.data}


def _read_pv_arrays(reader: StateReader) -> PvArrayState:
    """Issue 20's per-array PV energy; a state saved before it starts every array at 0."""
    if "pv_arrays" not in reader.data:
        return PvArrayState()
    item = reader.child("pv_arrays")
    values: dict[str, dict[str, float]] = {}
    for key in ("energy_wh", "alone_a"):
        part = item.child(key)
        values[key] = {str(name): part.non_negative(str(name)) for name in part.data}
    conducting = item.get("conducting")
    if not isinstance(conducting, list) or not all(isinstance(n, str) for n in conducting):
        raise item.bad("conducting", f"expected a list of output names, got {conducting!r}")
    return PvArrayState(values["energy_wh"], values["alone_a"], tuple(conducting))


# Limit memories added after the first release: a state saved before them lacks the key.
_LATER_LIMITS = ("discharge_too_cold", "discharge_too_hot")


def _read_limits(reader: StateReader) -> LimitStates:
    return LimitStates(
        **{
            limit.name: reader.boolean(limit.name)
            for limit in fields(LimitStates)
            if limit.name not in _LATER_LIMITS or limit.name in reader.data
        }
    )
