"""Folds control reports into one record per interval. Pure: no I/O, time comes with reports.

Intervals are aligned to multiples of `interval_s` since the UNIX epoch (12:00:00, 12:02:00,
...), so records of several boxes or restarts line up. A report whose time falls outside the
open interval closes it (also when the clock stepped backwards) and opens the one it belongs to.

Reports without a measurement (the sample failed) count as `missing`: they add nothing to the
measured means and extremes, which would otherwise be dragged towards zero. The SoC is taken
from every report, since the estimator always has one.

Outputs: `outputs` is the state at the interval's last report (what a reader needs to continue
a timeline); `outputs_on` names every output that was on in at least one report, so a short
pulse between two records is never invisible.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field

from edge_agent.control.model import ControlReport, Measurement, load_current
from edge_agent.storage.data_log import Record, Stat


@dataclass(slots=True)
class _Running:
    """Mean and extremes of one quantity, skipping absent values."""

    total: float = 0.0
    count: int = 0
    minimum: float = math.inf
    maximum: float = -math.inf

    def add(self, value: float | None) -> None:
        if value is None or not math.isfinite(value):
            return
        self.total += value
        self.count += 1
        self.minimum = min(self.minimum, value)
        self.maximum = max(self.maximum, value)

    def stat(self) -> Stat | None:
        if self.count == 0:
            return None
        return Stat(self.total / self.count, self.minimum, self.maximum)

    def mean(self) -> float | None:
        return None if self.count == 0 else self.total / self.count


@dataclass(slots=True)
class _Interval:
    start: int
    samples: int = 0
    missing: int = 0
    stats: dict[str, _Running] = field(default_factory=dict)
    cell_min: _Running = field(default_factory=_Running)
    cell_max: _Running = field(default_factory=_Running)
    cell_delta: _Running = field(default_factory=_Running)
    cells: list[_Running] = field(default_factory=list)
    internal_temperature: _Running = field(default_factory=_Running)
    external_temperatures: list[_Running] = field(default_factory=list)
    outputs: dict[str, bool] = field(default_factory=dict)
    outputs_on: set[str] = field(default_factory=set)
    dual_pv_level: int | None = None
    counters: dict[str, float] = field(default_factory=dict)
    faults: set[str] = field(default_factory=set)
    interlocks: set[str] = field(default_factory=set)
    monitor_flags: set[str] = field(default_factory=set)

    def running(self, name: str) -> _Running:
        return self.stats.setdefault(name, _Running())


class DataAggregator:
    """Feed every report to `add`; it returns a record each time an interval closes."""

    def __init__(self, interval_s: int) -> None:
        if interval_s <= 0:
            raise ValueError(f"interval_s must be positive (got {interval_s})")
        self.interval_s = interval_s
        self._open: _Interval | None = None

    def add(self, report: ControlReport) -> Record | None:
        """Take one report; the previous interval's record when this one starts a new one."""
        start = math.floor(report.timestamp / self.interval_s) * self.interval_s
        closed = None
        if self._open is not None and self._open.start != start:
            closed = self.flush()
        if self._open is None:
            self._open = _Interval(start)
        _add_report(self._open, report)
        return closed

    def flush(self) -> Record | None:
        """Close the interval in progress now (shutdown); None when there is none."""
        interval, self._open = self._open, None
        return None if interval is None else _record(interval, self.interval_s)


def _add_report(interval: _Interval, report: ControlReport) -> None:
    interval.running("soc").add(report.soc)
    interval.outputs = dict(report.outputs)
    interval.outputs_on.update(name for name, on in report.outputs.items() if on)
    interval.dual_pv_level = report.dual_pv_level
    interval.counters = dataclasses.asdict(report.counters)
    interval.faults.update(report.faults)
    interval.interlocks.update(report.interlocks)
    measurement = report.measurement
    # report.measurement is the last *good* one: only a fresh one counts as a sample.
    if measurement is None or measurement.timestamp != report.timestamp:
        interval.missing += 1
        return
    interval.samples += 1
    _add_measurement(interval, measurement)


def _add_measurement(interval: _Interval, measurement: Measurement) -> None:
    volts = measurement.battery_voltage
    load = load_current(measurement)
    pv = measurement.pv_current
    interval.running("pack_voltage").add(volts)
    interval.running("battery_current").add(measurement.battery_current)
    interval.running("battery_power").add(measurement.battery_current * volts)
    interval.running("pv_current").add(pv)
    interval.running("pv_power").add(None if pv is None else pv * volts)
    interval.running("load_current").add(load)
    interval.running("load_power").add(None if load is None else load * volts)
    cells = measurement.cell_voltages
    if cells:
        interval.cell_min.add(min(cells))
        interval.cell_max.add(max(cells))
        interval.cell_delta.add(max(cells) - min(cells))
    _add_each(interval.cells, cells)
    interval.internal_temperature.add(measurement.internal_temperature)
    _add_each(interval.external_temperatures, measurement.external_temperatures)
    interval.monitor_flags.update(measurement.monitor_flags)


def _add_each(runnings: list[_Running], values: tuple[float | None, ...]) -> None:
    while len(runnings) < len(values):
        runnings.append(_Running())
    for running, value in zip(runnings, values, strict=False):
        running.add(value)


def _record(interval: _Interval, interval_s: int) -> Record:
    def stat(name: str) -> Stat | None:
        running = interval.stats.get(name)
        return None if running is None else running.stat()

    return Record(
        start=interval.start,
        end=interval.start + interval_s,
        samples=interval.samples,
        missing=interval.missing,
        soc=stat("soc"),
        pack_voltage=stat("pack_voltage"),
        battery_current=stat("battery_current"),
        battery_power=stat("battery_power"),
        pv_current=stat("pv_current"),
        pv_power=stat("pv_power"),
        load_current=stat("load_current"),
        load_power=stat("load_power"),
        cell_min=None if interval.cell_min.count == 0 else interval.cell_min.minimum,
        cell_max=None if interval.cell_max.count == 0 else interval.cell_max.maximum,
        cell_delta=None if interval.cell_delta.count == 0 else interval.cell_delta.maximum,
        cells=tuple(mean for mean in (r.mean() for r in interval.cells) if mean is not None),
        internal_temperature=interval.internal_temperature.mean(),
        external_temperatures=tuple(r.mean() for r in interval.external_temperatures),
        outputs=interval.outputs,
        outputs_on=frozenset(interval.outputs_on),
        dual_pv_level=interval.dual_pv_level,
        counters=interval.counters,
        faults=frozenset(interval.faults),
        interlocks=frozenset(interval.interlocks),
        monitor_flags=frozenset(interval.monitor_flags),
    )
