"""The control core: the one place that combines measurements, state machines and
protections into output states.

Pure and deterministic: no I/O, time comes from the samples (and the `now` arguments).

Safety invariants, enforced in `_compose_outputs` and nowhere else:
* a charge-type output (1, 3, 6) is ON only while charging is allowed, a load-type output
  (2, 4) only while loads are allowed; both need a fresh, plausible measurement;
* the same by wiring, whatever the type: an output wired to a charge source conducts only
  while charging is allowed, one wired to loads only while loads are allowed, one wired to
  nothing never;
* an output forced off from outside stays OFF until its time (one that charges: until then
  or LVD, whichever comes first); nothing from outside turns anything on;
* a fault output (5) is asserted while any fault is active;
* a diversion output (type 7, or any output wired to a heater) conducts only while every
  battery path it belongs to is off because the battery is full (or blocked by battery
  temperature, when the heater does not warm the battery), never on a fault, stale
  measurements, a lockout or its own hold, and never together with its battery path: each
  waits until the other has been off for `diversion.dead_time_s` (control/diversion.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping

from edge_agent.control.counters import EnergyCounterAccumulator
from edge_agent.control.diversion import (
    BreakBeforeMake,
    DiversionConditions,
    DiversionEstimator,
    SampleInputs,
    diversion_wanted,
    path_is_full,
)
from edge_agent.control.dual_pv import DualPvStager, LevelChange
from edge_agent.control.extio import (
    OutputRequestInputs,
    charges,
    diversion_problems,
    diverts,
    requested_state,
    type_permits,
    wiring_permits,
)
from edge_agent.control.hysteresis import DelayedLimit, LowerLimit, Transition, UpperLimit
from edge_agent.control.model import (
    ControlEvent,
    ControlReport,
    DiversionReport,
    EventKind,
    Fault,
    Interlock,
    Measurement,
    MeasurementFailure,
)
from edge_agent.control.persisted import LimitStates, PersistedState
from edge_agent.control.protection import (
    MAX_PLAUSIBLE_CURRENT_A,
    StalenessMonitor,
    TemperatureInterlocks,
    VoltageLockouts,
    battery_temperature,
    implausibility,
)
from edge_agent.control.pv_arrays import PvArrayCounter, pv_arrays
from edge_agent.control.settings import ControlSettings, OutputType, Wiring
from edge_agent.control.soc import (
    NO_INTERVAL,
    Interval,
    SocEstimator,
    initial_soc_state,
    integrate_interval,
)

SECONDS_PER_DAY = 86400.0


class Controller:
    def __init__(
        self, settings: ControlSettings, now: float, persisted: PersistedState | None = None
    ) -> None:
        names = [output.name for output in settings.outputs]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate output names in {names}")
        pairing = diversion_problems(settings.outputs)
        if pairing:
            raise ValueError("; ".join(pairing))
        state = persisted or PersistedState(initial_soc_state(settings.soc))
        self.settings = settings
        self._outputs_by_name = {output.name: output for output in settings.outputs}
        self._has_dual_pv = any(o.type is OutputType.DUAL_PV for o in settings.outputs)
        self._build_state_machines(settings, state, now)
        self._full_charge_day = state.full_charge_day
        self._reported_faults = frozenset(state.reported_faults)
        self._forced_off: dict[str, float] = {
            name: until for name, until in state.forced_off.items() if name in names
        }
        self._last_timestamp = state.last_timestamp
        self._last_battery_current = state.last_battery_current
        self._last_pv_current = state.last_pv_current
        self._run_last_good_time: float | None = None  # this run only: clocks may jump at boot
        self._break_before_make = BreakBeforeMake(
            settings.outputs, settings.diversion.dead_time_s, now, state.paths_off_since
        )
        self._estimator = DiversionEstimator(
            settings.diversion, settings.outputs, settings.max_soc.utc_offset_hours, state.diversion
        )
        self._pv_arrays = PvArrayCounter(
            pv_arrays(settings.outputs), settings.diversion.arrays, state.pv_arrays
        )
        self._decided: dict[str, bool] = {}  # the last decision: what conducted since
        self._measurement: Measurement | None = None
        self._pending_events: list[ControlEvent] = []
        self._report: ControlReport | None = None
        self.last_failure_reason: str | None = None

    def _build_state_machines(
        self, settings: ControlSettings, state: PersistedState, now: float
    ) -> None:
        cells, limits, alarms = settings.cells, state.limits, settings.soc_alarms
        self._soc = SocEstimator(settings.soc, cells, state.soc)
        self._counters = EnergyCounterAccumulator(state.counters)
        pending = state.trips_pending
        self._hvd = DelayedLimit(
            UpperLimit(cells.hvd, cells.hvd_reconnect, active=limits.hvd_active),
            cells.hvd_delay_s,
            pending.get("hvd"),
        )
        self._lvd = DelayedLimit(
            LowerLimit(cells.lvd, cells.lvd_reconnect, active=limits.lvd_active),
            cells.lvd_delay_s,
            pending.get("lvd"),
        )
        self._high_soc = UpperLimit(alarms.high, alarms.high_release, active=limits.high_soc_alarm)
        self._low_soc = LowerLimit(alarms.low, alarms.low_release, active=limits.low_soc_alarm)
        max_soc = settings.max_soc
        self._max_soc_hold = UpperLimit(
            max_soc.max_soc, max_soc.max_soc - max_soc.hysteresis, active=limits.max_soc_holding
        )
        self._lockouts = VoltageLockouts(
            cells,
            settings.lockouts_latch,
            over_condition=limits.over_voltage_condition,
            under_condition=limits.under_voltage_condition,
            latched=state.latched_faults,
            over_pending_since=pending.get("ovlo"),
            under_pending_since=pending.get("uvlo"),
        )
        self._temperatures = TemperatureInterlocks(
            settings.temperature,
            too_cold=limits.charge_too_cold,
            too_hot=limits.charge_too_hot,
            internal_hot=limits.internal_over_temperature,
            discharge_too_cold=limits.discharge_too_cold,
            discharge_too_hot=limits.discharge_too_hot,
            thermistor_fitted=settings.battery_thermistor,
        )
        self._staleness = StalenessMonitor(settings.stale_after_s, now)
        self._dual_pv = DualPvStager(
            settings.dual_pv,
            state.dual_pv_level,
            state.dual_pv_level_since if state.dual_pv_level_since is not None else now,
            state.dual_pv_charging_was_allowed,
        )

    # --- public API -----------------------------------------------------------------------

    @property
    def report(self) -> ControlReport | None:
        return self._report

    def update(self, sample: Measurement | MeasurementFailure) -> ControlReport:
        """Take one sample (its timestamp is the time) and decide every output."""
        now = sample.timestamp
        events, self._pending_events = self._pending_events, []
        measurement = self._accept(sample)
        if measurement is not None:
            events.extend(self._ingest(measurement))
        else:
            events.extend(self._expire_pending_trips(now))
        self._report = self._decide(now, events, measurement)
        return self._report

    def force_off(self, output_name: str, until: float, now: float) -> None:
        """Hold an output OFF until `until` (replacing any earlier hold on it)."""
        output = self._outputs_by_name[output_name]  # KeyError for an unknown name
        if output.type is OutputType.FAULT or output.wiring is Wiring.FAULT:
            raise ValueError(f"{output_name} is a fault output: forcing it off hides faults")
        if math.isnan(until):
            raise ValueError("force_off until is NaN")
        self._forced_off[output_name] = until

    def cancel_force_off(self, output_name: str, now: float) -> None:
        if output_name not in self._outputs_by_name:
            raise KeyError(output_name)
        self._forced_off.pop(output_name, None)

    def clear_faults(self, now: float) -> bool:
        """Clear latched lockouts whose condition is gone; True when any was cleared."""
        return self._lockouts.clear_latched()

    def set_soc(self, soc_percent: float, now: float) -> None:
        self._soc.set_soc(soc_percent)

    def mark_full(self, now: float) -> None:
        self._pending_events.append(self._soc.mark_full(now))
        self._full_charge_day = self._local_day(now)

    def zero_current_offset(self, measured_current_at_rest: float) -> float:
        """The reading while no current flows is the offset (bounded to +-0.5 % of capacity
        in amps); returns the offset now in use."""
        return self._soc.set_offset(measured_current_at_rest)

    def snapshot(self) -> PersistedState:
        return PersistedState(
            soc=self._soc.state,
            counters=self._counters.totals,
            full_charge_day=self._full_charge_day,
            dual_pv_level=self._dual_pv.level,
            dual_pv_level_since=self._dual_pv.level_since,
            dual_pv_charging_was_allowed=self._dual_pv.charging_was_allowed,
            latched_faults=frozenset(self._lockouts.latched),
            reported_faults=self._reported_faults,
            limits=LimitStates(
                hvd_active=self._hvd.active,
                lvd_active=self._lvd.active,
                over_voltage_condition=self._lockouts.over_condition,
                under_voltage_condition=self._lockouts.under_condition,
                high_soc_alarm=self._high_soc.active,
                low_soc_alarm=self._low_soc.active,
                charge_too_cold=self._temperatures.charge_too_cold,
                charge_too_hot=self._temperatures.charge_too_hot,
                internal_over_temperature=self._temperatures.internal_over_temperature,
                max_soc_holding=self._max_soc_hold.active,
                discharge_too_cold=self._temperatures.discharge_too_cold,
                discharge_too_hot=self._temperatures.discharge_too_hot,
            ),
            forced_off=dict(self._forced_off),
            trips_pending=self._trips_pending(),
            last_timestamp=self._last_timestamp,
            last_battery_current=self._last_battery_current,
            last_pv_current=self._last_pv_current,
            diversion=self._estimator.state,
            paths_off_since=self._break_before_make.off_since_all,
            pv_arrays=self._pv_arrays.state,
        )

    def _trips_pending(self) -> dict[str, float]:
        pending = {
            "hvd": self._hvd.pending_since,
            "lvd": self._lvd.pending_since,
            "ovlo": self._lockouts.over_pending_since,
            "uvlo": self._lockouts.under_pending_since,
        }
        return {name: since for name, since in pending.items() if since is not None}

    # --- ingesting a good measurement -----------------------------------------------------

    def _accept(self, sample: Measurement | MeasurementFailure) -> Measurement | None:
        if isinstance(sample, MeasurementFailure):
            self.last_failure_reason = sample.reason
            return None
        reason = implausibility(sample, self.settings.cell_count, self._run_last_good_time)
        if reason is None:
            reason = self._charge_delta_problem(sample)
        if reason is not None:
            self.last_failure_reason = reason
            return None
        return sample

    def _charge_delta_problem(self, measurement: Measurement) -> str | None:
        delta = measurement.charge_delta_ah
        previous = self._run_last_good_time
        if delta is None or previous is None:
            return None
        # One second of slack covers timestamp jitter against the accumulator's own clock.
        limit = MAX_PLAUSIBLE_CURRENT_A * (measurement.timestamp - previous + 1.0) / 3600.0
        return None if abs(delta) <= limit else f"charge delta {delta} Ah implausible"

    def _ingest(self, m: Measurement) -> list[ControlEvent]:
        now = m.timestamp
        self._staleness.record_good(now)
        self._run_last_good_time = now
        events: list[ControlEvent] = []
        hvd = self._hvd.update(m.max_cell, now)
        lvd = self._lvd.update(m.min_cell, now)
        events += _limit_events(
            hvd, now, EventKind.HVD_TRIP, EventKind.HVD_RELEASE, _trip_cell(m, highest=True)
        )
        events += _limit_events(
            lvd, now, EventKind.LVD_TRIP, EventKind.LVD_RELEASE, _trip_cell(m, highest=False)
        )
        self._lockouts.update(m.max_cell, m.min_cell, now)
        self._temperatures.update(
            battery_temperature(m.external_temperatures), m.internal_temperature
        )
        events += self._count_charge(m, hvd_tripped=hvd.tripped, lvd_tripped=lvd.tripped)
        events += self._update_soc_limits(now)
        if hvd.released and self._has_dual_pv:
            # Restart on the smallest source: the pack is near full.
            events += _level_events(self._dual_pv.restart_at_lowest(now), now)
        self._measurement = m
        return events

    def _expire_pending_trips(self, now: float) -> list[ControlEvent]:
        """A failed sample does not hold a trip off: a crossing whose delay has run trips."""
        last = self._measurement  # the reading whose crossing has now lasted its delay
        events = _limit_events(
            self._hvd.expire(now),
            now,
            EventKind.HVD_TRIP,
            EventKind.HVD_RELEASE,
            _trip_cell(last, highest=True),
        )
        events += _limit_events(
            self._lvd.expire(now),
            now,
            EventKind.LVD_TRIP,
            EventKind.LVD_RELEASE,
            _trip_cell(last, highest=False),
        )
        self._lockouts.expire(now)
        return events

    def _count_charge(
        self, m: Measurement, *, hvd_tripped: bool, lvd_tripped: bool
    ) -> list[ControlEvent]:
        now = m.timestamp
        previous = self._last_timestamp
        if previous is not None and now < previous:
            previous = None  # clock went back across a restart: the interval is unknown
        interval = integrate_interval(
            previous, self._last_battery_current, now, m.battery_current, m.charge_delta_ah
        )
        update = self._soc.update(m, interval, hvd_tripped=hvd_tripped, lvd_tripped=lvd_tripped)
        if update.full_sync:
            self._full_charge_day = self._local_day(now)
        pv_interval = NO_INTERVAL
        if m.pv_current is not None:
            pv_interval = integrate_interval(
                previous, self._last_pv_current, now, m.pv_current, None
            )
        pv_delta = None if m.pv_current is None else _pv_charge(pv_interval, interval)
        pv_wh_before = self._counters.totals.pv_wh
        self._counters.add_interval(update.battery_delta_ah, m.battery_voltage, pv_delta)
        if self._pv_arrays.arrays and m.pv_current is not None:
            # What conducted through the interval is the previous decision (persisted).
            self._pv_arrays.add_interval(
                self._counters.totals.pv_wh - pv_wh_before,
                pv_current_a=m.pv_current,
                interval_s=None if previous is None else now - previous,
            )
        self._last_timestamp = now
        self._last_battery_current = m.battery_current
        self._last_pv_current = m.pv_current
        return list(update.events)

    def _update_soc_limits(self, now: float) -> list[ControlEvent]:
        soc = self._soc.soc
        events = _limit_events(
            self._high_soc.update(soc), now, EventKind.HIGH_SOC_ALARM, EventKind.HIGH_SOC_CLEAR
        )
        events += _limit_events(
            self._low_soc.update(soc), now, EventKind.LOW_SOC_ALARM, EventKind.LOW_SOC_CLEAR
        )
        full_today = self._full_charge_day == self._local_day(now)
        if self.settings.max_soc.enabled and full_today:
            self._max_soc_hold.update(soc)
        else:
            self._max_soc_hold.active = False  # a new day: one charge to 100 % is allowed
        return events

    def _local_day(self, now: float) -> int:
        offset_s = self.settings.max_soc.utc_offset_hours * 3600.0
        return math.floor((now + offset_s) / SECONDS_PER_DAY)

    # --- deciding -------------------------------------------------------------------------

    def _decide(
        self, now: float, events: list[ControlEvent], measurement: Measurement | None
    ) -> ControlReport:
        fresh = self._staleness.fresh(now)
        faults = self._active_faults(now)
        charge_blocks = self._charge_blocks(fresh, faults)
        load_blocks = self._load_blocks(fresh, faults)
        charge_allowed = not charge_blocks
        load_allowed = not load_blocks
        if measurement is not None and self._has_dual_pv:
            change = self._dual_pv.update(now, measurement.battery_current, charge_allowed)
            events += _level_events(change, now)
        self._drop_expired_holds(now)
        conditions = DiversionConditions(
            fresh=fresh,
            fault_active=bool(faults),
            charge_blocks=charge_blocks,
            high_soc_alarm=self._high_soc.active,
            heater_warms_battery=self.settings.diversion.heater_warms_battery,
        )
        outputs = self._compose_outputs(now, charge_allowed, load_allowed, faults, conditions)
        # Nothing to say on a box with no diversion output and no array described to the
        # estimate: no report, so no `diversion` in the state (docs/protocol.md).
        diversion = (
            self._diversion_report(now, measurement, outputs, conditions)
            if self._estimator.arrays
            else None
        )
        self._decided = dict(outputs)
        self._pv_arrays.note_decision(outputs)
        interlocks = set(charge_blocks | load_blocks)
        if self._forced_off:
            interlocks.add(Interlock.FORCED_OFF)
        events += self._fault_events(faults, now)
        return ControlReport(
            timestamp=now,
            outputs=outputs,
            soc=self._soc.soc,
            remaining_ah=self._soc.remaining_ah,
            capacity_ah=self._soc.capacity_ah,
            time_to_full_s=self._soc.time_to_full_s(),
            time_to_empty_s=self._soc.time_to_empty_s(),
            charge_allowed=charge_allowed,
            load_allowed=load_allowed,
            faults=faults,
            interlocks=frozenset(interlocks),
            dual_pv_level=self._dual_pv.level if self._has_dual_pv else None,
            counters=self._counters.totals,
            events=tuple(events),
            measurement=self._measurement,
            forced_off=dict(self._forced_off),
            high_soc_alarm=self._high_soc.active,
            low_soc_alarm=self._low_soc.active,
            soc_uncertainty=self._soc.uncertainty,
            diversion=diversion,
            pv_arrays_wh=dict(self._pv_arrays.energy_wh) if self._pv_arrays.arrays else None,
        )

    def _diversion_report(
        self,
        now: float,
        measurement: Measurement | None,
        outputs: Mapping[str, bool],
        conditions: DiversionConditions,
    ) -> DiversionReport:
        """Estimate and count (from a good measurement), or report the last counters."""
        estimator = self._estimator
        full = {
            name: path_is_full(self._outputs_by_name[name], conditions) and not outputs[name]
            for name in estimator.arrays
        }
        paths = self._break_before_make.paths
        if measurement is None:
            last = self._measurement
            volts = last.battery_voltage if last is not None else 0.0
            # No fresh sample: nothing is estimated as available or flowing.
            return estimator.report(now, volts, None, is_on=outputs, full={}, heat_paths=paths)
        inputs = SampleInputs(
            now=measurement.timestamp,
            pv_current=measurement.pv_current,
            battery_voltage=measurement.battery_voltage,
            heat_power_w=measurement.heat_power_w,
        )
        return estimator.update(
            inputs, was_on=self._decided, is_on=outputs, full=full, heat_paths=paths
        )

    def _active_faults(self, now: float) -> frozenset[Fault]:
        faults = set(self._lockouts.active_faults())
        if self._temperatures.internal_over_temperature:
            faults.add(Fault.OVER_TEMPERATURE)
        if self._staleness.failing(now):
            faults.add(Fault.MEASUREMENT_FAILURE)
        return frozenset(faults)

    def _charge_blocks(self, fresh: bool, faults: frozenset[Fault]) -> frozenset[Interlock]:
        blocks = set(self._temperatures.charge_interlocks())
        if not fresh:
            blocks.add(Interlock.MEASUREMENT_STALE)
        if self._hvd.active:
            blocks.add(Interlock.HVD)
        if Fault.OVER_VOLTAGE_LOCKOUT in faults:
            blocks.add(Interlock.OVER_VOLTAGE_LOCKOUT)
        if self._max_soc_hold.active:
            blocks.add(Interlock.MAX_SOC)
        return frozenset(blocks)

    def _load_blocks(self, fresh: bool, faults: frozenset[Fault]) -> frozenset[Interlock]:
        blocks = set(self._temperatures.load_interlocks())
        if not fresh:
            blocks.add(Interlock.MEASUREMENT_STALE)
        if self._lvd.active:
            blocks.add(Interlock.LVD)
        if Fault.UNDER_VOLTAGE_LOCKOUT in faults:
            blocks.add(Interlock.UNDER_VOLTAGE_LOCKOUT)
        return frozenset(blocks)

    def _drop_expired_holds(self, now: float) -> None:
        """Holds end at their time; a hold on an output that charges also ends at LVD: the
        agent's own computer keeps drawing from an empty pack, which must not be left
        without its charge sources (a forgotten hold would take it below UVLO)."""
        empty = self._lvd.active
        for name, until in list(self._forced_off.items()):
            if now >= until or (empty and charges(self._outputs_by_name[name])):
                del self._forced_off[name]

    def _compose_outputs(
        self,
        now: float,
        charge_allowed: bool,
        load_allowed: bool,
        faults: frozenset[Fault],
        diversion: DiversionConditions,
    ) -> dict[str, bool]:
        """The only place output states are decided; see the module docstring."""
        requests = OutputRequestInputs(
            high_soc_alarm=self._high_soc.active,
            low_soc_alarm=self._low_soc.active,
            dual_pv_level=self._dual_pv.level if self._has_dual_pv else None,
            fault_active=bool(faults),
        )
        states: dict[str, bool] = {}
        for output in self.settings.outputs:
            permitted = type_permits(output.type, charge_allowed, load_allowed) and (
                wiring_permits(output.wiring, charge_allowed, load_allowed)
            )
            held_off = output.name in self._forced_off and now < self._forced_off[output.name]
            if diverts(output):
                paths = [
                    self._outputs_by_name[name]
                    for name in self._break_before_make.paths[output.name]
                ]
                states[output.name] = diversion_wanted(output, paths, diversion, held_off)
                continue
            wanted = requested_state(output.type, requests)
            states[output.name] = wanted and permitted and not held_off
        # Break before make: the heat paths and their battery paths, each after the other.
        states.update(self._break_before_make.settle(now, states))
        return states

    def _fault_events(self, faults: frozenset[Fault], now: float) -> list[ControlEvent]:
        raised = sorted(faults - self._reported_faults)
        cleared = sorted(self._reported_faults - faults)
        self._reported_faults = faults
        return [ControlEvent(EventKind.FAULT_RAISED, now, {"fault": f.value}) for f in raised] + [
            ControlEvent(EventKind.FAULT_CLEARED, now, {"fault": f.value}) for f in cleared
        ]


def _trip_cell(m: Measurement | None, *, highest: bool) -> dict[str, float | int]:
    """The cell that crossed a disconnect level (1 = bottom of the stack) and its voltage,
    so a trip says why it happened; {} without a reading."""
    if m is None or not m.cell_voltages:
        return {}
    cells = m.cell_voltages
    volts = max(cells) if highest else min(cells)
    return {"cell": cells.index(volts) + 1, "voltage": volts}


def _limit_events(
    transition: Transition,
    now: float,
    trip: EventKind,
    release: EventKind,
    trip_detail: Mapping[str, float | int] | None = None,
) -> list[ControlEvent]:
    if transition.tripped:
        return [ControlEvent(trip, now, dict(trip_detail or {}))]
    if transition.released:
        return [ControlEvent(release, now)]
    return []


def _level_events(change: LevelChange | None, now: float) -> list[ControlEvent]:
    if change is None:
        return []
    detail = {"from": change.previous, "to": change.new}
    return [ControlEvent(EventKind.DUAL_PV_LEVEL, now, detail)]


def _pv_charge(pv_interval: Interval, battery_interval: Interval) -> float:
    """PV has no hardware accumulator: count it over the same time as the battery."""
    if pv_interval.counted_s <= 0.0 or battery_interval.counted_s <= 0.0:
        return 0.0
    return pv_interval.charge_ah * min(1.0, battery_interval.counted_s / pv_interval.counted_s)
