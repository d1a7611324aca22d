"""Protections: plausibility of a sample, staleness, temperature interlocks, voltage lockouts.

Each part only decides; `Controller` combines the decisions into output states.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from edge_agent.control.hysteresis import DelayedLimit, LowerLimit, UpperLimit
from edge_agent.control.model import Fault, Interlock, Measurement
from edge_agent.control.settings import CellThresholds, TemperatureLimits

MIN_PLAUSIBLE_CELL_V = 0.5
MAX_PLAUSIBLE_CELL_V = 5.0
MAX_PLAUSIBLE_CURRENT_A = 2000.0
# Wide enough for any real board or battery; outside it a sensor or decoder is broken
# (checksum-valid SBMS frames have carried an internal temperature of 91 C).
MIN_PLAUSIBLE_TEMPERATURE_C = -55.0
MAX_PLAUSIBLE_TEMPERATURE_C = 150.0


def implausibility(
    measurement: Measurement, cell_count: int, previous_timestamp: float | None
) -> str | None:
    """Why this measurement cannot be trusted, or None when it looks physically possible."""
    if not math.isfinite(measurement.timestamp):
        return "timestamp is not finite"
    if previous_timestamp is not None and measurement.timestamp < previous_timestamp:
        return "timestamp went backwards"
    if len(measurement.cell_voltages) != cell_count:
        return f"{len(measurement.cell_voltages)} cells, expected {cell_count}"
    cells = measurement.cell_voltages
    if not all(MIN_PLAUSIBLE_CELL_V <= v <= MAX_PLAUSIBLE_CELL_V for v in cells):
        # Written so that NaN fails the range check too.
        return "cell voltage outside 0.5..5.0 V"
    return _current_problem(measurement) or _other_value_problem(measurement)


def _current_problem(measurement: Measurement) -> str | None:
    for label, value in (
        ("battery current", measurement.battery_current),
        ("pv current", measurement.pv_current),
    ):
        if value is not None and not abs(value) <= MAX_PLAUSIBLE_CURRENT_A:
            return f"{label} {value} A beyond +-{MAX_PLAUSIBLE_CURRENT_A:g} A"
    delta = measurement.charge_delta_ah
    if delta is not None and not math.isfinite(delta):
        return "charge delta is not finite"
    return None


def _other_value_problem(measurement: Measurement) -> str | None:
    pack = measurement.pack_voltage
    if pack is not None and not (0.0 <= pack <= MAX_PLAUSIBLE_CELL_V * 32):
        return f"pack voltage {pack} V implausible"
    temperatures: list[float | None] = [measurement.internal_temperature]
    temperatures.extend(measurement.external_temperatures)
    for value in temperatures:
        if value is not None and not (
            MIN_PLAUSIBLE_TEMPERATURE_C <= value <= MAX_PLAUSIBLE_TEMPERATURE_C
        ):
            return f"temperature {value} C implausible"
    return None


def battery_temperature(external_temperatures: Sequence[float | None]) -> float | None:
    """The battery's thermistor is the cell monitor's first external input (xT1)."""
    return external_temperatures[0] if external_temperatures else None


class StalenessMonitor:
    """Tracks how long ago the last good measurement arrived."""

    def __init__(self, stale_after_s: float, started_at: float) -> None:
        self.stale_after_s = stale_after_s
        self.reference_time = started_at  # last good measurement, or start-up
        self.has_good_measurement = False

    def record_good(self, now: float) -> None:
        self.reference_time = now
        self.has_good_measurement = True

    def failing(self, now: float) -> bool:
        """No good measurement for longer than stale_after_s (start-up counts as the start)."""
        return now - self.reference_time > self.stale_after_s

    def fresh(self, now: float) -> bool:
        """A good measurement exists and is recent enough to act on."""
        return self.has_good_measurement and not self.failing(now)


class TemperatureInterlocks:
    """Battery charge- and discharge-temperature windows and board over-temperature, with
    hysteresis.

    A missing reading keeps the previous decision: a sensor that vanishes while charging is
    blocked must not unblock it. With a battery thermistor fitted, a missing reading also blocks
    charging by itself (too cold to read, or a broken wire); a box without one never blocks
    charging or loads by battery temperature.
    """

    def __init__(
        self,
        limits: TemperatureLimits,
        *,
        too_cold: bool = False,
        too_hot: bool = False,
        internal_hot: bool = False,
        discharge_too_cold: bool = False,
        discharge_too_hot: bool = False,
        thermistor_fitted: bool = False,
    ) -> None:
        hysteresis = limits.charge_hysteresis
        self._thermistor_fitted = thermistor_fitted
        self._battery_known = False  # until a measurement says otherwise
        self._too_cold = _below(limits.charge_min, hysteresis, too_cold)
        self._too_hot = _above(limits.charge_max, hysteresis, too_hot)
        self._discharge_too_cold = _below(limits.discharge_min, hysteresis, discharge_too_cold)
        self._discharge_too_hot = _above(limits.discharge_max, hysteresis, discharge_too_hot)
        self._internal_hot = UpperLimit(
            limits.internal_cutoff, limits.internal_release, inclusive=False, active=internal_hot
        )

    def update(self, battery_celsius: float | None, internal_celsius: float | None) -> None:
        self._battery_known = battery_celsius is not None
        if battery_celsius is not None:
            for limit in (
                self._too_cold,
                self._too_hot,
                self._discharge_too_cold,
                self._discharge_too_hot,
            ):
                limit.update(battery_celsius)
        if internal_celsius is not None:
            self._internal_hot.update(internal_celsius)

    @property
    def charge_too_cold(self) -> bool:
        return self._too_cold.active

    @property
    def charge_too_hot(self) -> bool:
        return self._too_hot.active

    @property
    def internal_over_temperature(self) -> bool:
        return self._internal_hot.active

    @property
    def discharge_too_cold(self) -> bool:
        return self._discharge_too_cold.active

    @property
    def discharge_too_hot(self) -> bool:
        return self._discharge_too_hot.active

    @property
    def battery_temperature_unknown(self) -> bool:
        return self._thermistor_fitted and not self._battery_known

    def charge_interlocks(self) -> frozenset[Interlock]:
        found: set[Interlock] = set()
        if self.battery_temperature_unknown:
            found.add(Interlock.BATTERY_TEMPERATURE_UNKNOWN)
        if self.charge_too_cold:
            found.add(Interlock.CHARGE_TOO_COLD)
        if self.charge_too_hot:
            found.add(Interlock.CHARGE_TOO_HOT)
        if self.internal_over_temperature:
            found.add(Interlock.INTERNAL_OVER_TEMPERATURE)
        return frozenset(found)

    def load_interlocks(self) -> frozenset[Interlock]:
        found: set[Interlock] = set()
        if self.discharge_too_cold:
            found.add(Interlock.DISCHARGE_TOO_COLD)
        if self.discharge_too_hot:
            found.add(Interlock.DISCHARGE_TOO_HOT)
        if self.internal_over_temperature:
            found.add(Interlock.INTERNAL_OVER_TEMPERATURE)
        return frozenset(found)


def _below(trip: float, hysteresis: float, active: bool) -> LowerLimit:
    return LowerLimit(trip, trip + hysteresis, inclusive=False, active=active)


def _above(trip: float, hysteresis: float, active: bool) -> UpperLimit:
    return UpperLimit(trip, trip - hysteresis, inclusive=False, active=active)


class VoltageLockouts:
    """Secondary voltage limits (OVLO/UVLO), each tripping after its short delay. With
    `latch`, a lockout stays until `clear_latched` is called after its condition has gone."""

    def __init__(
        self,
        cells: CellThresholds,
        latch: bool,
        *,
        over_condition: bool = False,
        under_condition: bool = False,
        latched: Iterable[Fault] = (),
        over_pending_since: float | None = None,
        under_pending_since: float | None = None,
    ) -> None:
        margin = cells.lockout_release_margin
        self._over = DelayedLimit(
            UpperLimit(cells.ovlo, cells.ovlo - margin, active=over_condition),
            cells.ovlo_delay_s,
            over_pending_since,
        )
        self._under = DelayedLimit(
            LowerLimit(cells.uvlo, cells.uvlo + margin, active=under_condition),
            cells.uvlo_delay_s,
            under_pending_since,
        )
        self.latch = latch
        self.latched: set[Fault] = set(latched) & _LOCKOUT_FAULTS if latch else set()

    def update(self, max_cell: float, min_cell: float, now: float) -> None:
        self._over.update(max_cell, now)
        self._under.update(min_cell, now)
        if self.latch:
            self.latched |= self._conditions()

    def expire(self, now: float) -> None:
        """No measurement now: lockouts whose delay ran out while pending trip anyway."""
        self._over.expire(now)
        self._under.expire(now)
        if self.latch:
            self.latched |= self._conditions()

    @property
    def over_pending_since(self) -> float | None:
        return self._over.pending_since

    @property
    def under_pending_since(self) -> float | None:
        return self._under.pending_since

    @property
    def over_condition(self) -> bool:
        return self._over.active

    @property
    def under_condition(self) -> bool:
        return self._under.active

    def active_faults(self) -> frozenset[Fault]:
        return frozenset(self._conditions() | self.latched)

    def clear_latched(self) -> bool:
        """Drop latched lockouts whose condition is gone; True when any was dropped."""
        clearable = self.latched - self._conditions()
        self.latched -= clearable
        return bool(clearable)

    def _conditions(self) -> set[Fault]:
        found: set[Fault] = set()
        if self._over.active:
            found.add(Fault.OVER_VOLTAGE_LOCKOUT)
        if self._under.active:
            found.add(Fault.UNDER_VOLTAGE_LOCKOUT)
        return found


_LOCKOUT_FAULTS = frozenset({Fault.OVER_VOLTAGE_LOCKOUT, Fault.UNDER_VOLTAGE_LOCKOUT})
