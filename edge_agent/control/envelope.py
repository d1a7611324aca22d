"""The LiFePO4 safety envelope: limits that no setting crosses, from the file or from outside.

This is the one place the chemistry's limits live. The configuration file may narrow inside
them, never widen them; a remote change (MQTT `config/set`) moves only inside a narrower
window that the file sets (`remote_window`, defaults below). Sources for every number are in
docs/safety.md; in short: every current large LFP cell datasheet (EVE, CATL, Lishen, REPT,
Gotion, CALB) charges to 3.65 V at most, discharges to 2.5 V, charges between 0 and 55 C at the
tightest and discharges between -20 and 55 C; BMS practice puts the over-voltage cut-off at
3.65-3.80 V with 0.5-4 s delays.

Settings are named by their configuration path ("thresholds.hvd"), as in the file and in the
errors a client sees. Currents are bounded in C (amps per Ah of the nominal capacity).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.control.settings import ControlSettings


@dataclass(frozen=True, slots=True)
class Range:
    """An inclusive range; with `per_capacity` the bounds are in C and scale with capacity."""

    low: float
    high: float
    unit: str = ""
    per_capacity: bool = False

    def scaled(self, capacity_ah: float) -> Range:
        """The range in the setting's own unit (amps for a C-rate range)."""
        if not self.per_capacity:
            return self
        return Range(self.low * capacity_ah, self.high * capacity_ah, "A")

    def contains(self, value: float) -> bool:
        return self.low <= value <= self.high

    def within(self, other: Range) -> bool:
        return other.low <= self.low and self.high <= other.high

    def intersect(self, other: Range) -> Range:
        return Range(max(self.low, other.low), min(self.high, other.high), self.unit)

    def describe(self) -> str:
        unit = f" {self.unit}" if self.unit else ""
        return f"{self.low:g} to {self.high:g}{unit}"


@dataclass(frozen=True, slots=True)
class Gap:
    """`upper` must exceed `lower` by at least `minimum` (strictly, when the minimum is 0)."""

    lower: str
    upper: str
    minimum: float
    unit: str
    what: str  # why the gap matters, for the error message


# --- the envelope ---------------------------------------------------------------------------

CHARGE_VOLTAGE_MAX = 3.65  # every current LFP datasheet: charge to 3.65 V per cell at most
DISCHARGE_VOLTAGE_MIN = 2.50  # datasheets: 2.5 V above 0 C (2.0 V below it is not adopted)
LOCKOUT_VOLTAGE_MAX = 3.80  # BMS hardware cut-offs sit at 3.65-3.80 V; never beyond

LFP_RANGES: Mapping[str, Range] = {
    # Cell voltages, volts per cell.
    "thresholds.hvd": Range(3.40, CHARGE_VOLTAGE_MAX, "V"),
    "thresholds.eoc": Range(3.40, CHARGE_VOLTAGE_MAX, "V"),
    "thresholds.hvd_reconnect": Range(3.20, 3.55, "V"),
    "thresholds.ovlo": Range(3.60, LOCKOUT_VOLTAGE_MAX, "V"),
    "thresholds.lvd_reconnect": Range(3.00, 3.40, "V"),
    "thresholds.lvd": Range(2.60, 3.25, "V"),
    "thresholds.uvlo": Range(DISCHARGE_VOLTAGE_MIN, 3.00, "V"),
    "thresholds.lockout_release_margin": Range(0.02, 0.50, "V"),
    # How long a limit's condition must hold before it trips. The lockouts are the second
    # line: their delays stay short (BMS practice 0.5-2 s, the ISL94203's default 1 s).
    "thresholds.hvd_delay_s": Range(0.0, 10.0, "s"),
    "thresholds.lvd_delay_s": Range(0.0, 30.0, "s"),
    "thresholds.ovlo_delay_s": Range(0.0, 2.0, "s"),
    "thresholds.uvlo_delay_s": Range(0.0, 2.0, "s"),
    # Balancing window written into the ISL94203: balancing above the charge limit is moot.
    "balancing.min_cell": Range(3.00, 3.60, "V"),
    "balancing.max_cell": Range(3.30, CHARGE_VOLTAGE_MAX, "V"),
    "balancing.min_delta": Range(0.005, 0.10, "V"),
    "balancing.max_delta": Range(0.02, 0.50, "V"),
    "balancing.min_charge_current": Range(0.0, 0.1, "C", per_capacity=True),
    # State of charge.
    "battery.capacity_ah": Range(1.0, 10000.0, "Ah"),
    "soc.coulombic_efficiency": Range(0.95, 1.0),
    "soc.initial_soc": Range(0.0, 100.0, "%"),
    "soc.empty_soc": Range(0.0, 30.0, "%"),
    "soc.tail_current": Range(0.0, 0.1, "C", per_capacity=True),
    "soc.eoc_hold_s": Range(0.0, 3600.0, "s"),
    "soc.rest_current": Range(0.0, 0.05, "C", per_capacity=True),
    "soc.rest_time_s": Range(1800.0, 86400.0, "s"),  # LFP relaxes for 90 minutes
    "soc_alarms.high": Range(0.0, 100.0, "%"),
    "soc_alarms.high_release": Range(0.0, 100.0, "%"),
    "soc_alarms.low": Range(0.0, 100.0, "%"),
    "soc_alarms.low_release": Range(0.0, 100.0, "%"),
    # Battery temperature, degrees Celsius: no charging below 0 C (every datasheet), none
    # above 55 C (the lowest datasheet maximum); discharge within -20..55 C (the tightest
    # common window).
    "temperature.charge_min": Range(0.0, 20.0, "C"),
    "temperature.charge_max": Range(20.0, 55.0, "C"),
    "temperature.charge_hysteresis": Range(1.0, 10.0, "C"),
    "temperature.discharge_min": Range(-20.0, 10.0, "C"),
    "temperature.discharge_max": Range(30.0, 55.0, "C"),
    # The board (cell monitor die): its parts are rated to 85 C.
    "temperature.internal_cutoff": Range(40.0, 80.0, "C"),
    "temperature.internal_release": Range(30.0, 75.0, "C"),
    # Charge current staging: at most 1C continuous (many cells: 0.5C; the file may narrow).
    "dual_pv.imax": Range(0.01, 1.0, "C", per_capacity=True),
    "dual_pv.up_to_l2_fraction": Range(0.05, 0.95),
    "dual_pv.up_to_l3_fraction": Range(0.05, 0.99),
    "dual_pv.down_fraction": Range(1.01, 2.0),
    "dual_pv.min_level_hold_s": Range(0.0, 3600.0, "s"),
    "max_soc.max_soc": Range(10.0, 100.0, "%"),
    "max_soc.hysteresis": Range(1.0, 50.0, "%"),
    "max_soc.utc_offset_hours": Range(-12.0, 14.0, "h"),
    "timing.stale_after_s": Range(0.2, 60.0, "s"),
    # PV diversion's break before make: both paths of a DSSR20 off this long between one
    # conducting and the other (at least one sample either way, whatever the setting).
    "diversion.dead_time_s": Range(0.0, 60.0, "s"),
}

# Sampling: protection acts once per sample, so a slow one is a slow protection.
SAMPLE_INTERVAL = Range(0.05, 10.0, "s")

LFP_GAPS: tuple[Gap, ...] = (
    Gap("thresholds.uvlo", "thresholds.lvd", 0.10, "V", "so UVLO stays a second line"),
    Gap("thresholds.lvd", "thresholds.lvd_reconnect", 0.10, "V", "LVD hysteresis"),
    Gap("thresholds.lvd_reconnect", "thresholds.hvd_reconnect", 0.0, "V", ""),
    Gap("thresholds.hvd_reconnect", "thresholds.eoc", 0.0, "V", ""),
    Gap("thresholds.hvd_reconnect", "thresholds.hvd", 0.10, "V", "HVD hysteresis"),
    Gap("thresholds.hvd", "thresholds.ovlo", 0.05, "V", "so OVLO stays a second line"),
    Gap("balancing.min_cell", "balancing.max_cell", 0.0, "V", ""),
    Gap("balancing.min_delta", "balancing.max_delta", 0.0, "V", ""),
    Gap("soc_alarms.low", "soc_alarms.low_release", 1.0, "%", "low SoC alarm hysteresis"),
    Gap("soc_alarms.low_release", "soc_alarms.high_release", 0.0, "%", ""),
    Gap("soc_alarms.high_release", "soc_alarms.high", 1.0, "%", "high SoC alarm hysteresis"),
    Gap("temperature.charge_min", "temperature.charge_max", 10.0, "C", "a charge window"),
    Gap("temperature.discharge_min", "temperature.discharge_max", 10.0, "C", "a load window"),
    Gap("temperature.internal_release", "temperature.internal_cutoff", 5.0, "C", "hysteresis"),
    Gap("dual_pv.up_to_l2_fraction", "dual_pv.up_to_l3_fraction", 0.0, "", ""),
)

# eoc may equal hvd (sync at the trip itself); every other pair above is strict.
EOC_AT_MOST_HVD = ("thresholds.eoc", "thresholds.hvd")


# --- remote window --------------------------------------------------------------------------

# How far a remote client may move a setting when the file does not say (`remote_window`).
# Narrower than the envelope where a setting protects the cells; a setting not listed here may
# move across its whole envelope range. LVD stays at 3.00 V or above: the agent's own computer
# keeps drawing from the pack after LVD, and the 4 % an LVD of 3.00 V leaves is what carries it
# through a night (an LVD of 2.90 V took a 4S pack below UVLO in the simulated month).
DEFAULT_REMOTE_WINDOW: Mapping[str, Range] = {
    "thresholds.hvd": Range(3.45, 3.60, "V"),
    "thresholds.eoc": Range(3.40, 3.60, "V"),
    "thresholds.hvd_reconnect": Range(3.30, 3.50, "V"),
    "thresholds.ovlo": Range(3.65, 3.75, "V"),
    "thresholds.lvd_reconnect": Range(3.10, 3.35, "V"),
    "thresholds.lvd": Range(3.00, 3.20, "V"),
    # UVLO cuts the loads, not the computer: raised close to LVD it would be passed by the
    # computer's own draw at night. Set it once for the cells in the file.
    "thresholds.uvlo": Range(2.50, 2.60, "V"),
    "thresholds.lockout_release_margin": Range(0.05, 0.20, "V"),
    "thresholds.hvd_delay_s": Range(0.0, 5.0, "s"),
    "thresholds.lvd_delay_s": Range(1.0, 30.0, "s"),
    "thresholds.ovlo_delay_s": Range(0.0, 2.0, "s"),
    "thresholds.uvlo_delay_s": Range(0.0, 2.0, "s"),
    "balancing.max_cell": Range(3.40, 3.65, "V"),
    # A high-SoC (type 3) charge output must still charge to half full; a low-SoC (type 4)
    # load output must still be cut before the pack is half empty.
    "soc_alarms.high": Range(50.0, 100.0, "%"),
    "soc_alarms.high_release": Range(40.0, 99.0, "%"),
    "soc_alarms.low": Range(0.0, 50.0, "%"),
    "soc_alarms.low_release": Range(1.0, 60.0, "%"),
    "temperature.charge_min": Range(0.0, 10.0, "C"),
    "temperature.charge_max": Range(35.0, 45.0, "C"),
    "temperature.charge_hysteresis": Range(1.0, 5.0, "C"),
    "temperature.discharge_min": Range(-20.0, 0.0, "C"),
    "temperature.discharge_max": Range(45.0, 55.0, "C"),
    "temperature.internal_cutoff": Range(50.0, 70.0, "C"),
    "temperature.internal_release": Range(40.0, 65.0, "C"),
    "dual_pv.imax": Range(0.01, 0.5, "C", per_capacity=True),
    # Never shorter than 1 s from outside: time for a slow solid-state relay to let go, and
    # for the break before make to span a sample at the usual 1 s sampling.
    "diversion.dead_time_s": Range(1.0, 10.0, "s"),
}
# The nominal capacity may be corrected remotely, within a factor of two of the file's.
CAPACITY_REMOTE_FACTOR = 2.0

_SECTIONS = {
    "thresholds": "cells",
    "balancing": "balance",
    "soc": "soc",
    "soc_alarms": "soc_alarms",
    "temperature": "temperature",
    "dual_pv": "dual_pv",
    "max_soc": "max_soc",
    "diversion": "diversion",
}


def setting_value(settings: ControlSettings, path: str) -> float | None:
    """The value of a setting named by its configuration path (None: not set, e.g. empty_soc)."""
    if path == "battery.capacity_ah":
        return settings.soc.capacity_ah
    if path == "timing.stale_after_s":
        return settings.stale_after_s
    section, _, key = path.partition(".")
    value: float | None = getattr(getattr(settings, _SECTIONS[section]), key)
    return value


def envelope_range(path: str, settings: ControlSettings) -> Range:
    """The envelope's range for a setting, in the setting's unit (C-rates scaled)."""
    return LFP_RANGES[path].scaled(settings.soc.capacity_ah)


def envelope_problems(settings: ControlSettings) -> list[str]:
    """Every way these settings leave the envelope, as "path: problem" lines (empty: inside)."""
    problems: list[str] = []
    for path in LFP_RANGES:
        value = setting_value(settings, path)
        if value is None:
            continue
        allowed = envelope_range(path, settings)
        if not allowed.contains(value):
            unit = f" {allowed.unit}" if allowed.unit else ""
            problems.append(
                f"{path}: must be between {allowed.low:g} and {allowed.high:g}{unit}, the LFP "
                f"safety envelope (got {value:g})"
            )
    problems += _gap_problems(settings)
    return problems


def _gap_problems(settings: ControlSettings) -> list[str]:
    problems: list[str] = []
    for gap in LFP_GAPS:
        low = setting_value(settings, gap.lower)
        high = setting_value(settings, gap.upper)
        if low is None or high is None:
            continue
        if gap.minimum <= 0.0:
            if not low < high:
                problems.append(f"{gap.lower}: must be below {gap.upper} (got {low:g} >= {high:g})")
        elif not high - low >= gap.minimum - 1e-9:
            unit = f" {gap.unit}" if gap.unit else ""
            problems.append(
                f"{gap.lower}: must be at least {gap.minimum:g}{unit} below {gap.upper}, "
                f"{gap.what} (got {low:g} and {high:g})"
            )
    eoc = settings.cells.eoc
    if eoc > settings.cells.hvd:
        lower, upper = EOC_AT_MOST_HVD
        problems.append(f"{lower}: must not exceed {upper} (got {eoc:g} > {settings.cells.hvd:g})")
    return problems


def default_remote_window(file_settings: ControlSettings) -> dict[str, Range]:
    """The window remote changes move in unless the file says otherwise: the defaults above,
    the file's capacity within a factor of two, and the envelope for the rest, all in the
    settings' own units (C-rates scaled by the file's capacity)."""
    capacity = file_settings.soc.capacity_ah
    window = {
        path: DEFAULT_REMOTE_WINDOW.get(path, allowed).scaled(capacity)
        for path, allowed in LFP_RANGES.items()
        if not path.startswith("timing.")
    }
    window["battery.capacity_ah"] = Range(
        capacity / CAPACITY_REMOTE_FACTOR, capacity * CAPACITY_REMOTE_FACTOR, "Ah"
    ).intersect(LFP_RANGES["battery.capacity_ah"])
    return window
