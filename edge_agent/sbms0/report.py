"""Maps the latest SBMS frame onto the agent's normal ControlReport (same state payload).

Nothing is decided here: SoC, output states, lockouts and counters are the SBMS's own, read
from the frame, its flags and (over HTTP) the page's s2/xsbms/eA/eW. The agent only adds
staleness: no good frame for `stale_after_s` marks the measurement stale.
"""

from __future__ import annotations

from edge_agent.config import AgentConfig
from edge_agent.control.model import (
    ControlReport,
    EnergyCounters,
    Fault,
    Interlock,
    Measurement,
    SourceStats,
)
from edge_agent.sbms0.frame import CELL_INPUTS, SbmsFrame
from edge_agent.sbms0.rawdata import RawDataPage
from edge_agent.sbms0.receiver import SbmsReading

# eA/eW counter positions (rawdata.COUNTER_NAMES): battery discharge, PV1+PV2, load, external
# load. Index 0 rises with discharge (55 mAh in 37 s at -5.7 A on a real SBMS0).
_BATTERY_OUT, _PV_TOTAL, _LOAD, _EXTERNAL_LOAD = 0, 4, 5, 6
_MAH_PER_AH = 1000.0
_DWH_PER_WH = 10.0

# SBMS flag -> what the agent's vocabulary calls it.
_FLAG_FAULTS = {"OVLK": Fault.OVER_VOLTAGE_LOCKOUT, "UVLK": Fault.UNDER_VOLTAGE_LOCKOUT}
_FLAG_FAULTS_TEMPERATURE = {"IOT": Fault.OVER_TEMPERATURE}
_FLAG_INTERLOCKS = {
    "OV": Interlock.HVD,
    "UV": Interlock.LVD,
    "OVLK": Interlock.OVER_VOLTAGE_LOCKOUT,
    "UVLK": Interlock.UNDER_VOLTAGE_LOCKOUT,
    "IOT": Interlock.INTERNAL_OVER_TEMPERATURE,
}


def build_report(
    reading: SbmsReading | None,
    *,
    now: float,
    stale: bool,
    config: AgentConfig,
    stats: SourceStats,
    counters: EnergyCounters,
) -> ControlReport:
    if reading is None:
        return _empty_report(now, stale=stale, config=config, stats=stats, counters=counters)
    frame, page = reading.frame, reading.page
    pv_on, load_on = _output_states(frame, page)
    capacity = _capacity_ah(page, config)
    names = frame.flag_names
    interlocks = {_FLAG_INTERLOCKS[name] for name in names if name in _FLAG_INTERLOCKS}
    faults = {fault for name, fault in _FLAG_FAULTS.items() if name in names}
    faults |= {fault for name, fault in _FLAG_FAULTS_TEMPERATURE.items() if name in names}
    if stale:
        interlocks.add(Interlock.MEASUREMENT_STALE)
        faults.add(Fault.MEASUREMENT_FAILURE)
    measurement = _measurement(reading, config.control.cell_count)
    remaining = frame.soc / 100 * capacity
    return ControlReport(
        timestamp=now,
        outputs={"pv": pv_on, "load": load_on},
        soc=float(frame.soc),
        remaining_ah=remaining,
        capacity_ah=capacity,
        time_to_full_s=_time_to_full(measurement.battery_current, capacity - remaining),
        time_to_empty_s=_time_to_empty(measurement.battery_current, remaining),
        charge_allowed=pv_on,
        load_allowed=load_on,
        faults=frozenset(faults),
        interlocks=frozenset(interlocks),
        dual_pv_level=frame.dual_pv_level if frame.dual_pv_level in (1, 2, 3) else None,
        counters=counters,
        events=(),
        measurement=measurement,
        source_stats=stats,
    )


def counters_from_page(page: RawDataPage | None) -> EnergyCounters | None:
    """The SBMS's own energy counters, when the page carries both eA and eW.

    The SBMS counts no battery charge: battery_in stays 0 rather than being guessed."""
    if page is None or page.amp_hours_mah is None or page.watt_hours_dwh is None:
        return None
    amp_hours, watt_hours = page.amp_hours_mah, page.watt_hours_dwh
    if len(amp_hours) <= _EXTERNAL_LOAD or len(watt_hours) <= _EXTERNAL_LOAD:
        return None

    def total(values: tuple[int | None, ...], *indices: int) -> int:
        return sum(values[index] or 0 for index in indices)

    return EnergyCounters(
        battery_out_ah=total(amp_hours, _BATTERY_OUT) / _MAH_PER_AH,
        battery_out_wh=total(watt_hours, _BATTERY_OUT) / _DWH_PER_WH,
        pv_ah=total(amp_hours, _PV_TOTAL) / _MAH_PER_AH,
        pv_wh=total(watt_hours, _PV_TOTAL) / _DWH_PER_WH,
        load_ah=total(amp_hours, _LOAD, _EXTERNAL_LOAD) / _MAH_PER_AH,
        load_wh=total(watt_hours, _LOAD, _EXTERNAL_LOAD) / _DWH_PER_WH,
    )


def _measurement(reading: SbmsReading, cell_count: int) -> Measurement:
    frame, page = reading.frame, reading.page
    balancing: tuple[bool, ...] = ()
    if page is not None and page.status is not None:
        balancing = tuple(page.status.balancing[index] for index in CELL_INPUTS[cell_count])
    return Measurement(
        timestamp=reading.received_at,
        cell_voltages=tuple(mv / 1000 for mv in frame.cells_for(cell_count)),
        battery_current=frame.battery_ma / 1000,
        pv_current=(frame.pv1_ma + frame.pv2_ma) / 1000,
        internal_temperature=frame.internal_temperature_c,
        external_temperatures=(frame.external_temperature_c,),
        balancing=balancing,
        monitor_flags=frame.flag_names,
    )


def _output_states(frame: SbmsFrame, page: RawDataPage | None) -> tuple[bool, bool]:
    """PV and load on: the page's s2 when there is one, else the charge/discharge FET flags."""
    if page is not None and page.status is not None:
        return page.status.pv_on, page.status.load_on
    names = frame.flag_names
    return "CFET" in names, "DFET" in names


def _capacity_ah(page: RawDataPage | None, config: AgentConfig) -> float:
    if page is not None and page.extra is not None and page.extra.capacity_ah > 0:
        return float(page.extra.capacity_ah)
    return config.control.soc.capacity_ah


def _time_to_full(current_a: float, missing_ah: float) -> float | None:
    return missing_ah / current_a * 3600 if current_a > 0 else None


def _time_to_empty(current_a: float, remaining_ah: float) -> float | None:
    return remaining_ah / -current_a * 3600 if current_a < 0 else None


def _empty_report(
    now: float,
    *,
    stale: bool,
    config: AgentConfig,
    stats: SourceStats,
    counters: EnergyCounters,
) -> ControlReport:
    """Before the first good frame: nothing measured, outputs unknown (reported off)."""
    return ControlReport(
        timestamp=now,
        outputs={"pv": False, "load": False},
        soc=0.0,
        remaining_ah=0.0,
        capacity_ah=config.control.soc.capacity_ah,
        time_to_full_s=None,
        time_to_empty_s=None,
        charge_allowed=False,
        load_allowed=False,
        faults=frozenset({Fault.MEASUREMENT_FAILURE} if stale else ()),
        interlocks=frozenset({Interlock.MEASUREMENT_STALE} if stale else ()),
        dual_pv_level=None,
        counters=counters,
        events=(),
        measurement=None,
        source_stats=stats,
    )
