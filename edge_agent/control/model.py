"""Values that flow into and out of the control core.

Measurements come in (from the hardware sampler or a stock SBMS decoder); a report comes out
with the desired output states, SoC, counters and events. Units: volts, amps (positive =
charging the battery), ampere-hours, watt-hours, degrees Celsius, UNIX seconds.

The values derived from a measurement or a report that several layers show (the load current,
the named temperatures, whether the measured fields are current) are defined here, once: the
state payload, the publishing policy and the data log all read them from this module.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


@dataclass(frozen=True, slots=True)
class Measurement:
    """One good sample of the battery box."""

    timestamp: float
    cell_voltages: tuple[float, ...]
    battery_current: float
    # Charge counted by the shunt monitor's own accumulator since the previous measurement (an
    # INA228 integrates at every conversion, so polling gaps lose nothing). None: the control
    # core integrates battery_current over the interval instead.
    charge_delta_ah: float | None = None
    pv_current: float | None = None  # None when no PV shunt is fitted
    pack_voltage: float | None = None  # shunt monitor bus voltage; None: sum of the cells
    internal_temperature: float | None = None
    external_temperatures: tuple[float | None, ...] = ()
    balancing: tuple[bool, ...] = ()
    monitor_flags: frozenset[str] = frozenset()  # cell monitor status flags currently set
    # Power into the heat paths, from a shunt monitor on them (an INA228's POWER register);
    # None when no heat-path shunt is fitted: the diverted power is then estimated.
    heat_power_w: float | None = None

    @property
    def min_cell(self) -> float:
        return min(self.cell_voltages)

    @property
    def max_cell(self) -> float:
        return max(self.cell_voltages)

    @property
    def cell_delta(self) -> float:
        return self.max_cell - self.min_cell

    @property
    def battery_voltage(self) -> float:
        if self.pack_voltage is not None:
            return self.pack_voltage
        return sum(self.cell_voltages)


@dataclass(frozen=True, slots=True)
class MeasurementFailure:
    """A sample that could not be taken or was implausible."""

    timestamp: float
    reason: str


Sample = Measurement | MeasurementFailure


class Fault(StrEnum):
    """Conditions that assert a type 5 (fault) output."""

    OVER_VOLTAGE_LOCKOUT = "over_voltage_lockout"
    UNDER_VOLTAGE_LOCKOUT = "under_voltage_lockout"
    OVER_TEMPERATURE = "over_temperature"
    MEASUREMENT_FAILURE = "measurement_failure"


class Interlock(StrEnum):
    """Reasons a charge or load output is held off."""

    HVD = "hvd"
    LVD = "lvd"
    CHARGE_TOO_COLD = "charge_too_cold"
    CHARGE_TOO_HOT = "charge_too_hot"
    DISCHARGE_TOO_COLD = "discharge_too_cold"
    DISCHARGE_TOO_HOT = "discharge_too_hot"
    BATTERY_TEMPERATURE_UNKNOWN = "battery_temperature_unknown"
    INTERNAL_OVER_TEMPERATURE = "internal_over_temperature"
    OVER_VOLTAGE_LOCKOUT = "over_voltage_lockout"
    UNDER_VOLTAGE_LOCKOUT = "under_voltage_lockout"
    MEASUREMENT_STALE = "measurement_stale"
    MAX_SOC = "max_soc"
    FORCED_OFF = "forced_off"


class EventKind(StrEnum):
    """Transitions worth telling the outside world about."""

    HVD_TRIP = "hvd_trip"
    HVD_RELEASE = "hvd_release"
    LVD_TRIP = "lvd_trip"
    LVD_RELEASE = "lvd_release"
    HIGH_SOC_ALARM = "high_soc_alarm"
    HIGH_SOC_CLEAR = "high_soc_clear"
    LOW_SOC_ALARM = "low_soc_alarm"
    LOW_SOC_CLEAR = "low_soc_clear"
    FAULT_RAISED = "fault_raised"
    FAULT_CLEARED = "fault_cleared"
    DUAL_PV_LEVEL = "dual_pv_level"
    SOC_SYNC = "soc_sync"


@dataclass(frozen=True, slots=True)
class ControlEvent:
    kind: EventKind
    timestamp: float
    detail: Mapping[str, str | float | int | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EnergyCounters:
    """Monotonic totals since installation; they never go backwards."""

    battery_in_ah: float = 0.0
    battery_out_ah: float = 0.0
    battery_in_wh: float = 0.0
    battery_out_wh: float = 0.0
    pv_ah: float = 0.0
    pv_wh: float = 0.0
    load_ah: float = 0.0
    load_wh: float = 0.0


@dataclass(frozen=True, slots=True)
class SourceStats:
    """Counters of a source that receives frames (a stock SBMS), published in the state as
    `source_stats`: good frames (`frames_ok`, of which `frames_unchecked` carried no checksum),
    dropped ones (`frames_bad`, by damage class in `bad_by_kind`), link failures and frames
    taken as a new reference (`reanchored`)."""

    frames_ok: int = 0
    frames_unchecked: int = 0
    frames_bad: int = 0
    link_errors: int = 0
    reanchored: int = 0
    bad_by_kind: tuple[tuple[str, int], ...] = ()  # (kind, count), sorted by kind


@dataclass(frozen=True, slots=True)
class DiversionCounters:
    """Monotonic totals of PV diversion since installation, watt-hours; never go backwards.

    `diverted_wh` = `diverted_measured_wh` + `diverted_estimated_wh`: each interval is counted
    measured when a heat-path shunt read it, estimated otherwise. `curtailed_wh` is the PV the
    arrays could have given while disconnected because the battery was full and nothing took
    it (estimated: thrown away)."""

    diverted_wh: float = 0.0
    diverted_measured_wh: float = 0.0
    diverted_estimated_wh: float = 0.0
    curtailed_wh: float = 0.0


@dataclass(frozen=True, slots=True)
class DiversionReport:
    """PV diversion as decided and estimated for one sample (docs/diversion.md)."""

    diverting: bool  # any diversion output conducting
    power_w: float  # into the heat paths now (measured, or estimated)
    measured: bool  # power_w came from a heat-path shunt
    # PV the disconnected arrays could give at the battery voltage now, for the arrays whose
    # battery path is off because the battery is full (surplus); None: no estimate possible.
    available_w: float | None
    counters: DiversionCounters


@dataclass(frozen=True, slots=True)
class ControlReport:
    """What the control core decided for one sample."""

    timestamp: float
    outputs: Mapping[str, bool]  # output name -> desired state (True = conducting)
    soc: float  # percent
    remaining_ah: float
    capacity_ah: float  # learned capacity in use
    time_to_full_s: float | None
    time_to_empty_s: float | None
    charge_allowed: bool
    load_allowed: bool
    faults: frozenset[Fault]
    interlocks: frozenset[Interlock]
    dual_pv_level: int | None  # 1..3 when a type 6 output exists
    counters: EnergyCounters
    events: tuple[ControlEvent, ...]
    measurement: Measurement | None  # the last good measurement
    # output name -> end of its hold (time base of `timestamp`); only holds still running
    forced_off: Mapping[str, float] = field(default_factory=dict)
    high_soc_alarm: bool = False  # the SoC alarms as decided, with their hysteresis
    low_soc_alarm: bool = False
    # Half the ~95 % band around `soc`, SoC points (issue 16); None where the source's own SoC
    # is reported (a stock SBMS0 says nothing of its certainty).
    soc_uncertainty: float | None = None
    # A source that receives frames (a stock SBMS) counts them here; None for the I2C box.
    source_stats: SourceStats | None = None
    # None where no diversion is decided: a stock SBMS0 as the source, or a box with neither
    # a diversion output nor an array under `diversion.arrays`.
    diversion: DiversionReport | None = None
    # PV energy per array, Wh since counted (control/pv_arrays.py); None without dual PV.
    pv_arrays_wh: Mapping[str, float] | None = None


# ---------------------------------------------------------------------------------------------
# Derived values, defined once for every layer that shows them
# ---------------------------------------------------------------------------------------------

TEMPERATURE_NAMES = ("internal", "battery", "external2")
# The PV diversion's water tank (issue 19): the reading of the input that
# `diversion.tank_temperature` names, under this key. Only xT2 may read it: the die is not a
# probe and xT1 is the battery's.
HEATER_TANK = "heater_tank"
TANK_TEMPERATURE_INPUTS = ("external2",)


def net_load(pv_in: float, battery_in: float) -> float:
    """What went to the loads: PV in minus what the battery took (currents or charges). Never
    negative: a negative remainder is another charge source, not a load."""
    return max(0.0, pv_in - battery_in)


def load_current(measurement: Measurement) -> float | None:
    """Current into the loads. None without a PV shunt (the battery's discharge alone is not
    the load while PV is charging)."""
    if measurement.pv_current is None:
        return None
    return net_load(measurement.pv_current, measurement.battery_current)


def temperatures(
    measurement: Measurement | None, tank_input: str | None = None
) -> dict[str, float | None]:
    """internal = the cell monitor's die, battery = xT1, external2 = xT2; with `tank_input`
    (DiversionSettings.tank_temperature), `heater_tank` too: that input's reading, which
    stays under the input's own name as well (a reader of the input keeps working)."""
    if measurement is None:
        readings: dict[str, float | None] = dict.fromkeys(TEMPERATURE_NAMES)
    else:
        external = measurement.external_temperatures
        readings = {
            "internal": measurement.internal_temperature,
            "battery": external[0] if len(external) > 0 else None,
            "external2": external[1] if len(external) > 1 else None,
        }
    if tank_input is not None:
        readings[HEATER_TANK] = readings[tank_input]
    return readings


def measurement_ok(report: ControlReport) -> bool:
    """True while the measured fields are current: a good measurement exists and is not
    stale. A single failed read does not clear it; staleness (stale_after_s) does."""
    return report.measurement is not None and Interlock.MEASUREMENT_STALE not in report.interlocks
