"""Monotonic energy counters (ampere-hours and watt-hours since installation), and the PV
diversion counters (watt-hours diverted to heat, measured or estimated, and curtailed)."""

from __future__ import annotations

import math
from dataclasses import replace

from edge_agent.control.model import DiversionCounters, EnergyCounters, net_load


class EnergyCounterAccumulator:
    """Adds one interval at a time. Totals never decrease: a negative, NaN or infinite
    increment is dropped, never subtracted."""

    def __init__(self, initial: EnergyCounters | None = None) -> None:
        self.totals = initial if initial is not None else EnergyCounters()

    def add_interval(
        self, battery_delta_ah: float, battery_voltage: float, pv_delta_ah: float | None
    ) -> EnergyCounters:
        """battery_delta_ah: signed charge into the battery over the interval (positive =
        charging); pv_delta_ah: PV charge over the interval, None without a PV shunt."""
        charged = max(0.0, battery_delta_ah)
        discharged = max(0.0, -battery_delta_ah)
        if pv_delta_ah is None:
            pv_ah = 0.0
            load_ah = discharged  # without a PV shunt, only the battery's discharge is seen
        else:
            pv_ah = max(0.0, pv_delta_ah)
            load_ah = net_load(pv_ah, battery_delta_ah)
        volts = max(0.0, battery_voltage)
        t = self.totals
        self.totals = replace(
            t,
            battery_in_ah=_grow(t.battery_in_ah, charged),
            battery_out_ah=_grow(t.battery_out_ah, discharged),
            battery_in_wh=_grow(t.battery_in_wh, charged * volts),
            battery_out_wh=_grow(t.battery_out_wh, discharged * volts),
            pv_ah=_grow(t.pv_ah, pv_ah),
            pv_wh=_grow(t.pv_wh, pv_ah * volts),
            load_ah=_grow(t.load_ah, load_ah),
            load_wh=_grow(t.load_wh, load_ah * volts),
        )
        return self.totals


def add_diversion(
    totals: DiversionCounters,
    *,
    measured_wh: float = 0.0,
    estimated_wh: float = 0.0,
    curtailed_wh: float = 0.0,
) -> DiversionCounters:
    """One interval's diverted (measured or estimated) and curtailed energy added. Like the
    energy counters, a negative, NaN or infinite increment is dropped, never subtracted, and
    `diverted_wh` grows by exactly what its two parts grew by."""
    measured = _grow(totals.diverted_measured_wh, measured_wh)
    estimated = _grow(totals.diverted_estimated_wh, estimated_wh)
    added = (measured - totals.diverted_measured_wh) + (estimated - totals.diverted_estimated_wh)
    return DiversionCounters(
        diverted_wh=_grow(totals.diverted_wh, added),
        diverted_measured_wh=measured,
        diverted_estimated_wh=estimated,
        curtailed_wh=_grow(totals.curtailed_wh, curtailed_wh),
    )


def _grow(total: float, increment: float) -> float:
    if not math.isfinite(increment) or increment <= 0.0:
        return total
    grown = total + increment
    return grown if math.isfinite(grown) else total
