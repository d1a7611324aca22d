"""The agent's data-log records folded into Home Assistant's hourly statistics; pure.

A measurement's hour is the duration-weighted mean of its records' means with the extremes of
their extremes; a counter's hour is its value at the end of the hour's last record. Records
fall in the hour their `start` is in (the log's intervals divide the hour by default: 2 min).
Nothing here touches Home Assistant, so the arithmetic is tested on its own (backfill.py
reads the agent and writes the recorder).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from .models import HistoryRecord, Reading

HOUR_S = 3600

# What one sensor takes from a record: a reading (mean/min/max), or a counter value.
MeasurementFn = Callable[[HistoryRecord], Reading | None]
CounterFn = Callable[[HistoryRecord], float | None]

# Home Assistant's rule for total_increasing sensors: a drop of more than 10 % is a reset
# (homeassistant/components/sensor/recorder.py reset_detected); the new cycle counts from 0.
RESET_FRACTION = 0.9


def hour_start(timestamp: float) -> int:
    """The start of the UTC hour holding `timestamp` (UNIX seconds)."""
    return int(timestamp // HOUR_S * HOUR_S)


@dataclass(frozen=True, slots=True)
class HourReading:
    """One hour of a measurement: the hour's start (UNIX seconds) and its reading."""

    start: int
    reading: Reading


@dataclass(frozen=True, slots=True)
class HourCounter:
    """One hour of a counter: its value at the end of the hour's last record."""

    start: int
    state: float


@dataclass(frozen=True, slots=True)
class HourSum:
    """One hour of a counter as Home Assistant stores it: the state and the running sum."""

    start: int
    state: float
    sum: float


@dataclass(slots=True)
class _Accumulator:
    weighted: float = 0.0
    seconds: float = 0.0
    low: float = float("inf")
    high: float = float("-inf")

    def add(self, reading: Reading, seconds: float) -> None:
        self.weighted += reading.mean * seconds
        self.seconds += seconds
        self.low = min(self.low, reading.min)
        self.high = max(self.high, reading.max)

    def reading(self) -> Reading:
        return Reading(self.weighted / self.seconds, self.low, self.high)


class HourlyFolder:
    """Folds records, page by page, into hours per sensor key; memory grows with hours only.

    Records must come oldest first (as `history/get` pages them); a record older than one
    already folded is ignored, so a repeated page is harmless.
    """

    def __init__(
        self,
        measurements: Mapping[str, MeasurementFn],
        counters: Mapping[str, CounterFn],
    ) -> None:
        self._measurement_fns = dict(measurements)
        self._counter_fns = dict(counters)
        self._readings: dict[str, dict[int, _Accumulator]] = {key: {} for key in measurements}
        self._counters: dict[str, dict[int, float]] = {key: {} for key in counters}
        self._last_start: float | None = None
        self.records = 0

    def add(self, records: Iterable[HistoryRecord]) -> None:
        for record in records:
            if self._last_start is not None and record.start <= self._last_start:
                continue
            self._last_start = record.start
            self.records += 1
            self._add(record)

    def _add(self, record: HistoryRecord) -> None:
        hour = hour_start(record.start)
        seconds = record.end - record.start
        for key, measurement_fn in self._measurement_fns.items():
            if (reading := measurement_fn(record)) is not None:
                self._readings[key].setdefault(hour, _Accumulator()).add(reading, seconds)
        for key, counter_fn in self._counter_fns.items():
            if (value := counter_fn(record)) is not None:
                self._counters[key][hour] = value  # the hour's last record wins

    def readings(self, key: str) -> list[HourReading]:
        """The hours of measurement `key` that had at least one value, oldest first."""
        hours = self._readings[key]
        return [HourReading(start, hours[start].reading()) for start in sorted(hours)]

    def counters(self, key: str) -> list[HourCounter]:
        """The hours of counter `key` that had at least one value, oldest first."""
        hours = self._counters[key]
        return [HourCounter(start, hours[start]) for start in sorted(hours)]


def fill_sums(existing: Sequence[HourSum], hours: Sequence[HourCounter]) -> list[HourSum]:
    """Rows for the `hours` Home Assistant has no row for, continuing its own rows.

    Each filled hour adds the counter's rise since the row before it (Home Assistant's or one
    filled here), so the rows Home Assistant compiles after a gap, which continue from its
    last row before the gap, follow without a step: the gap's energy is counted once, in the
    hours it happened. Hours that already have a row, and hours before the first row (no sum
    to continue), are left out.
    """
    rows_at = {row.start: row for row in existing}
    timeline = sorted({*rows_at, *(hour.start for hour in hours)})
    counter_at = {hour.start: hour.state for hour in hours}
    filled: list[HourSum] = []
    previous: HourSum | None = None
    for start in timeline:
        if start in rows_at:
            previous = rows_at[start]
        elif previous is not None:
            previous = _next_row(previous, start, counter_at[start])
            filled.append(previous)
    return filled


def _next_row(previous: HourSum, start: int, state: float) -> HourSum:
    if state < RESET_FRACTION * previous.state:
        return HourSum(start, state, previous.sum + state)  # a reset: the new cycle from 0
    return HourSum(start, state, previous.sum + state - previous.state)
