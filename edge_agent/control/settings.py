"""Settings the control core runs with.

Plain frozen dataclasses: the YAML loader (`edge_agent.config`) builds and validates them, the
control core only reads them. All cell voltages are per cell, in volts; currents in amps
(positive = charging the battery); temperatures in degrees Celsius; times in seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum, StrEnum


class OutputType(IntEnum):
    """EXTIO output types, numbered as on the SBMS0."""

    UNUSED = 0
    HVD = 1  # charge sources: off when a cell reaches the high limit
    LVD = 2  # loads: off when a cell reaches the low limit
    HIGH_SOC = 3  # like HVD, at a SoC threshold
    LOW_SOC = 4  # like LVD, at a SoC threshold
    FAULT = 5  # asserted on lockout levels, over-temperature, measurement failure
    DUAL_PV = 6  # secondary (~2x) charge source, staged with the type 1 outputs
    # Our extension (the SBMS0 stops at 6): a DSSR20's heat path, on only while its array's
    # battery path is off because the battery is full (control/diversion.py, docs/diversion.md).
    DIVERSION = 7


class Wiring(StrEnum):
    """What an output physically switches. Local: only the configuration file says it.

    The type decides when an output would like to conduct; the wiring decides what may never
    be allowed (a charge-wired output conducts only while charging is allowed, whatever its
    type), and which types it may take (`control.extio.ALLOWED_TYPES`).
    """

    CHARGE = "charge"  # a charge source: DSSR20, a charger's remote on/off
    LOAD = "load"  # loads: an inverter's remote on/off, a BatteryProtect
    SIGNAL = "signal"  # a lamp, buzzer or another controller's input: switches no power
    FAULT = "fault"  # a remote-trip breaker or fault lamp: asserted on faults
    NONE = "none"  # connected to nothing
    # A DSSR20's heat path to a passive resistive load (a water heater element): never the
    # battery, never anything that can source current back (docs/diversion.md).
    HEATER = "heater"


@dataclass(frozen=True, slots=True)
class CellThresholds:
    """Cell-voltage limits, volts per cell. Order: uvlo < lvd < lvd_reconnect <
    hvd_reconnect < hvd < ovlo, and hvd_reconnect < eoc <= hvd; the widths and gaps the
    chemistry needs are in `control.envelope`.

    Each limit trips once its condition has held for its delay, as the ISL94203's own OV/UV
    timers do: a load step sags an LFP cell by tens of mV for a moment, and that must not cut
    the loads. Releasing is not delayed.
    """

    uvlo: float = 2.50  # under-voltage lockout (fault)
    # Loads off. 3.00 V (about 4 % left at rest) keeps a reserve for the agent's own computer,
    # which runs from the pack after LVD: at 2.80 V a 3 W controller took a 100 Ah 12 V pack
    # from LVD to UVLO in one night in the simulator.
    lvd: float = 3.00
    lvd_reconnect: float = 3.20  # loads back on when every cell is above this
    hvd_reconnect: float = 3.40  # charge back on when every cell is below this
    eoc: float = 3.53  # end of charge: SoC is synchronised to 100 %
    hvd: float = 3.60  # charge off
    ovlo: float = 3.75  # over-voltage lockout (fault)
    lockout_release_margin: float = 0.05  # a lockout clears this far back inside the limit
    hvd_delay_s: float = 1.0
    lvd_delay_s: float = 5.0
    ovlo_delay_s: float = 1.0  # the lockouts are the second line: their delays stay short
    uvlo_delay_s: float = 1.0


@dataclass(frozen=True, slots=True)
class BalanceSettings:
    """Balancing window written into the ISL94203 (the chip applies it)."""

    min_cell: float = 3.20  # CBMIN: balance only when every cell is above this
    max_cell: float = 3.65  # CBMAX: and below this
    min_delta: float = 0.010  # CBMINDV: start when the spread exceeds this
    max_delta: float = 0.50  # CBMAXDV: a larger spread means a fault, not imbalance
    min_charge_current: float = 0.3  # seed rule: balance only while charging above this


@dataclass(frozen=True, slots=True)
class SocAlarmSettings:
    """Thresholds for output types 3 and 4 and the SoC alarm events, percent."""

    high: float = 95.0  # type 3 output off at or above this
    high_release: float = 90.0  # and back on below this
    low: float = 20.0  # type 4 output off at or below this
    low_release: float = 25.0  # and back on above this


@dataclass(frozen=True, slots=True)
class TemperatureLimits:
    """Temperature interlocks, degrees Celsius."""

    charge_min: float = 0.0  # no charging below this (battery temperature)
    charge_max: float = 45.0  # no charging above this (battery temperature)
    charge_hysteresis: float = 2.0  # also the discharge window's
    discharge_min: float = -20.0  # loads off below this (battery temperature)
    discharge_max: float = 55.0  # loads off above this (battery temperature)
    internal_cutoff: float = 60.0  # charge and load off above this (board temperature)
    internal_release: float = 50.0  # back on below this


@dataclass(frozen=True, slots=True)
class DualPvSettings:
    """Dual-PV staging (output type 6 with type 1)."""

    imax: float = 50.0  # maximum battery charge current, amps
    up_to_l2_fraction: float = 0.50  # at L1, go to L2 below this fraction of imax
    up_to_l3_fraction: float = 0.66  # at L2, go to L3 below this fraction of imax
    down_fraction: float = 1.20  # step down when the charge current exceeds this fraction
    min_level_hold_s: float = 60.0  # stay at least this long on a level before stepping up


@dataclass(frozen=True, slots=True)
class MaxSocSettings:
    """SBMS0 max-SoC charge limit: charge to 100 % once a day, then cycle below max_soc."""

    enabled: bool = False
    max_soc: float = 90.0
    hysteresis: float = 3.0
    utc_offset_hours: float = 0.0  # where "a day" begins, for the once-a-day full charge


@dataclass(frozen=True, slots=True)
class SocSettings:
    """SoC estimator parameters."""

    capacity_ah: float = 100.0  # nominal; learned capacity replaces it between anchors
    coulombic_efficiency: float = 0.995  # charge in counts this fraction
    initial_soc: float = 50.0  # a new install starts here, as the SBMS0 does
    tail_current: float = 2.0  # charge current below which a CV charger has finished, amps
    eoc_hold_s: float = 30.0  # end of charge must hold this long before syncing to 100 %
    # SoC assigned at an LVD trip, when the operator knows it. None: the loaded cell's voltage,
    # corrected by a learned resistance and read on `ocv_curve`, decides (or nothing does).
    empty_soc: float | None = None
    rest_current: float = 0.0  # |current| below which the pack rests; 0 = capacity / 100
    rest_time_s: float = 5400.0  # a rest this long allows an OCV correction
    learn_capacity: bool = True
    learn_offset: bool = True  # learn the current-sense offset from drift between syncs
    # The cells' resting voltage curve, (SoC %, volts) from 0 to 100 %, from their datasheet
    # (battery.ocv_curve in the file). None: the built-in synthesis, read only at its very
    # ends because published curves disagree at the bottom (control/ocv_curve.py).
    ocv_curve: tuple[tuple[float, float], ...] | None = None


@dataclass(frozen=True, slots=True)
class ArraySettings:
    """What the diversion estimate knows of the PV array behind one charge output.

    Every value is optional: without them the estimate learns from the PV shunt alone."""

    output: str  # the charge output (type 1, 3 or 6) switching this array's DSSR20s
    rated_current_a: float | None = None  # the array's short-circuit current at STC, amps
    open_circuit_v: float | None = None  # the array's Voc at STC (caps the heater's voltage)
    heater_ohm: float | None = None  # its heat path's resistance; None: no heater on it


@dataclass(frozen=True, slots=True)
class DiversionSettings:
    """PV diversion (type 7 outputs) and the estimate of PV power while panels are off.

    See docs/diversion.md for the rules and the estimate."""

    # Both paths of a DSSR20 off for this long between one conducting and the other (break
    # before make, in both directions). Counted from the decisions, so at least one sample.
    dead_time_s: float = 2.0
    # Safe default True: the heater may warm the cells (a heater in or against the battery
    # box), so nothing is diverted while charging is blocked by battery temperature (too cold,
    # too hot or unreadable). False: the heater is elsewhere (a water tank); then charging
    # blocked by temperature is a reason to divert, like a full battery.
    heater_warms_battery: bool = True
    arrays: tuple[ArraySettings, ...] = ()
    # Site for the clear-sky model; None: latitude unknown (the estimate then scales by the
    # learned current alone), longitude from max_soc.utc_offset_hours, tilt = |latitude|.
    latitude_deg: float | None = None
    longitude_deg: float | None = None
    tilt_deg: float | None = None
    azimuth_deg: float | None = None  # the panels face this (0 north, 180 south); None: the equator
    # Which temperature input reads the heater's water tank (issue 19), published as
    # `temperatures.heater_tank`; None: no tank sensor. Wiring, like `arrays`: file-only.
    # Not used by the control core (model.temperatures labels the reading).
    tank_temperature: str | None = None


@dataclass(frozen=True, slots=True)
class OutputSettings:
    """One EXTIO output as the control core sees it (no pins: those are hardware)."""

    name: str  # e.g. "extio3"
    type: OutputType
    wiring: Wiring
    # A diversion (type 7) output: the charge output whose array's heat path it switches.
    # None: every charge-wired output (a box with one array). Local, like the wiring.
    diverts: str | None = None


def default_outputs() -> tuple[OutputSettings, ...]:
    """SBMS0 defaults: EXTIO3 loads, EXTIO4 charge, EXTIO5 unused, EXTIO6 fault."""
    return (
        OutputSettings("extio3", OutputType.LVD, Wiring.LOAD),
        OutputSettings("extio4", OutputType.HVD, Wiring.CHARGE),
        OutputSettings("extio5", OutputType.UNUSED, Wiring.NONE),
        OutputSettings("extio6", OutputType.FAULT, Wiring.FAULT),
    )


@dataclass(frozen=True, slots=True)
class ControlSettings:
    """Everything the pure control core needs."""

    cell_count: int = 8
    cells: CellThresholds = field(default_factory=CellThresholds)
    balance: BalanceSettings = field(default_factory=BalanceSettings)
    soc: SocSettings = field(default_factory=SocSettings)
    soc_alarms: SocAlarmSettings = field(default_factory=SocAlarmSettings)
    temperature: TemperatureLimits = field(default_factory=TemperatureLimits)
    dual_pv: DualPvSettings = field(default_factory=DualPvSettings)
    max_soc: MaxSocSettings = field(default_factory=MaxSocSettings)
    diversion: DiversionSettings = field(default_factory=DiversionSettings)
    outputs: tuple[OutputSettings, ...] = field(default_factory=default_outputs)
    stale_after_s: float = 5.0  # no good measurement for this long: charge and load off, fault on
    lockouts_latch: bool = False  # OVLO/UVLO faults stay until cleared by a command
    # A thermistor on the cells at the cell monitor's first external input (xT1). When fitted,
    # no reading means no charging: the divider reads "open" below about -8 C, so a box that
    # starts in the cold must not take the silence for a missing sensor.
    battery_thermistor: bool = True
