"""Household loads: an always-on base load and a switched profile behind the LVD output.

Like the weather, each local day's switched-load power is generated once, per second, from a
generator seeded with (seed, day): the profile does not depend on how time is stepped. Loads
draw constant power, so their current is watts over the pack voltage.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.simulator.lfp import FloatArray
from edge_agent.simulator.pv import SECONDS_PER_DAY

_LOAD_STREAM = 2


@dataclass(frozen=True, slots=True)
class HouseholdLoadSpec:
    """The switched loads (off when the LVD output opens), watts."""

    standby_w: float = 10.0
    daytime_w: float = 30.0  # 08:00..18:00
    morning_peak_w: float = 100.0
    morning_peak_hour: float = 7.5
    evening_peak_w: float = 250.0
    evening_peak_hour: float = 19.5
    peak_width_h: float = 1.5  # gaussian sigma of each peak
    fridge_w: float = 80.0
    fridge_period_s: float = 2700.0
    fridge_duty: float = 0.4
    events_per_day: float = 2.0  # kettle, pump, power tool: poisson count
    event_power_w: tuple[float, float] = (600.0, 1500.0)
    event_duration_s: tuple[float, float] = (120.0, 900.0)
    event_hours: tuple[float, float] = (7.0, 22.0)

    def scaled(self, factor: float) -> HouseholdLoadSpec:
        """The same profile with every power multiplied by `factor` (e.g. for a 12 V box)."""
        return HouseholdLoadSpec(
            standby_w=self.standby_w * factor,
            daytime_w=self.daytime_w * factor,
            morning_peak_w=self.morning_peak_w * factor,
            morning_peak_hour=self.morning_peak_hour,
            evening_peak_w=self.evening_peak_w * factor,
            evening_peak_hour=self.evening_peak_hour,
            peak_width_h=self.peak_width_h,
            fridge_w=self.fridge_w * factor,
            fridge_period_s=self.fridge_period_s,
            fridge_duty=self.fridge_duty,
            events_per_day=self.events_per_day,
            event_power_w=(self.event_power_w[0] * factor, self.event_power_w[1] * factor),
            event_duration_s=self.event_duration_s,
            event_hours=self.event_hours,
        )


def generate_day_load(spec: HouseholdLoadSpec, seed: int, day: int) -> FloatArray:
    """Switched-load power per second of one local day, watts (deterministic in seed, day)."""
    rng = np.random.default_rng([seed, _LOAD_STREAM, day])
    seconds = np.arange(SECONDS_PER_DAY, dtype=np.float64)
    hours = seconds / 3600.0
    power = np.full(SECONDS_PER_DAY, spec.standby_w)
    power += np.where((hours >= 8.0) & (hours < 18.0), spec.daytime_w, 0.0)
    for peak_w, peak_hour in (
        (spec.morning_peak_w, spec.morning_peak_hour),
        (spec.evening_peak_w, spec.evening_peak_hour),
    ):
        power += peak_w * np.exp(-0.5 * ((hours - peak_hour) / spec.peak_width_h) ** 2)
    phase = rng.uniform(0.0, spec.fridge_period_s)
    fridge_on = ((seconds + phase) % spec.fridge_period_s) < spec.fridge_duty * spec.fridge_period_s
    power += np.where(fridge_on, spec.fridge_w, 0.0)
    for _ in range(int(rng.poisson(spec.events_per_day))):
        start = int(rng.uniform(*spec.event_hours) * 3600.0)
        duration = int(rng.uniform(*spec.event_duration_s))
        power[start : start + duration] += rng.uniform(*spec.event_power_w)
    return power


class HouseholdLoad:
    """Day-by-day switched-load power with a small cache."""

    _CACHE_DAYS = 3

    def __init__(self, spec: HouseholdLoadSpec, seed: int) -> None:
        self.spec = spec
        self.seed = seed
        self._cache: dict[int, FloatArray] = {}

    def day(self, day: int) -> FloatArray:
        cached = self._cache.get(day)
        if cached is None:
            if len(self._cache) >= self._CACHE_DAYS:
                del self._cache[min(self._cache)]
            cached = generate_day_load(self.spec, self.seed, day)
            self._cache[day] = cached
        return cached


def load_current(power_w: FloatArray | float, pack_voltage_v: float) -> FloatArray:
    """Constant-power load current at the pack voltage, amps (positive = drawn)."""
    result: FloatArray = np.asarray(
        np.asarray(power_w, dtype=np.float64) / max(pack_voltage_v, 1.0), dtype=np.float64
    )
    return result
