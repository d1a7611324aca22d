"""Turns one round of chip reads into a Measurement for the control core.

Any I2C failure or implausible reading becomes a MeasurementFailure: the control core decides
what a missing measurement means for the outputs (after `stale_after_s`, everything off).
The heat-path shunt is the exception: no protection reads it, so its failure only leaves the
diverted power unmeasured (estimated instead, docs/diversion.md) and never fails the sample.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass

from edge_agent.control.model import Measurement, MeasurementFailure, Sample
from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.ina2xx import ShuntMonitor, ShuntReading
from edge_agent.drivers.isl94203 import CellMonitorReading, Isl94203

_LOGGER = logging.getLogger(__name__)

# Hardware charge counts are only trusted across gaps this long; beyond it (a suspended or
# frozen process) the accumulator is still right, but log it so the gap is visible.
_LONG_GAP_S = 60.0


@dataclass(slots=True)
class _ChargeTracker:
    """Turns a shunt monitor's running charge total into per-sample deltas."""

    last_total_ah: float | None = None

    def delta(self, total_ah: float | None) -> float | None:
        if total_ah is None:
            return None
        previous, self.last_total_ah = self.last_total_ah, total_ah
        if previous is None:
            return None  # first sample after start or a chip reset: nothing to compare with
        return total_ah - previous

    def reset(self) -> None:
        self.last_total_ah = None


class Sampler:
    """Reads the cell monitor and shunt monitors once per call."""

    def __init__(
        self,
        cell_monitor: Isl94203,
        battery_shunt: ShuntMonitor,
        pv_shunt: ShuntMonitor | None = None,
        heat_shunt: ShuntMonitor | None = None,
    ) -> None:
        self._cell_monitor = cell_monitor
        self._battery_shunt = battery_shunt
        self._pv_shunt = pv_shunt
        self._heat_shunt = heat_shunt
        self.heat_failures = 0  # heat-path shunt reads that failed (the sample went on)
        self._heat_failing = False
        self._battery_charge = _ChargeTracker()
        self._last_good: float | None = None
        self.failures = 0

    def sample(self, now: float) -> Sample:
        try:
            cells = self._cell_monitor.read()
            battery = self._battery_shunt.read(now)
            pv = self._pv_shunt.read(now) if self._pv_shunt is not None else None
        except DeviceError as err:
            # A chip that dropped off the bus may come back reset: restart charge deltas.
            self._battery_charge.reset()
            return self._fail(now, str(err))
        problem = _implausible(cells, battery, pv)
        if problem is not None:
            return self._fail(now, problem)
        if self._last_good is not None and now - self._last_good > _LONG_GAP_S:
            _LOGGER.info(
                "Sampling gap of %.0f s; charge taken from the shunt monitor",
                now - self._last_good,
            )
        self._last_good = now
        heat_power_w = self._heat_power(now)
        return Measurement(
            timestamp=now,
            cell_voltages=cells.cell_voltages,
            battery_current=battery.current_a,
            charge_delta_ah=self._battery_charge.delta(battery.charge_ah),
            pv_current=pv.current_a if pv is not None else None,
            pack_voltage=_pack_voltage(cells, battery),
            internal_temperature=cells.internal_temperature_c,
            external_temperatures=cells.external_temperatures_c,
            balancing=cells.balancing,
            monitor_flags=cells.flags,
            heat_power_w=heat_power_w,
        )

    def _heat_power(self, now: float) -> float | None:
        """The heat paths' power from their shunt, or None (none fitted, or it failed: logged
        once per outage, counted in `heat_failures`)."""
        if self._heat_shunt is None:
            return None
        try:
            power = self._heat_shunt.read(now).power_w
        except DeviceError as err:
            self.heat_failures += 1
            if not self._heat_failing:
                _LOGGER.warning("Heat-path shunt not read, diverted power estimated: %s", err)
            self._heat_failing = True
            return None
        if self._heat_failing:
            _LOGGER.info("Heat-path shunt read again")
        self._heat_failing = False
        return power if math.isfinite(power) else None

    def _fail(self, now: float, reason: str) -> MeasurementFailure:
        self.failures += 1
        return MeasurementFailure(timestamp=now, reason=reason)


def _pack_voltage(cells: CellMonitorReading, battery: ShuntReading) -> float | None:
    """The shunt monitor's bus voltage when it is wired to the pack, else None (sum of cells)."""
    cell_sum = sum(cells.cell_voltages)
    if abs(battery.bus_voltage_v - cell_sum) <= 0.1 * cell_sum:
        return battery.bus_voltage_v
    return None


def _implausible(
    cells: CellMonitorReading, battery: ShuntReading, pv: ShuntReading | None
) -> str | None:
    """A reason the readings cannot be trusted, or None. The control core re-checks limits."""
    values = [*cells.cell_voltages, battery.current_a, battery.bus_voltage_v]
    if pv is not None:
        values.append(pv.current_a)
    if any(math.isnan(v) or math.isinf(v) for v in values):
        return "a reading is not a number"
    return None
