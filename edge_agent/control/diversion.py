"""PV diversion: when a DSSR20's heat path may conduct, and what the panels could give while
they are disconnected (docs/diversion.md).

Pure and deterministic: time comes in with each call. `Controller._compose_outputs` is still
the one place output states are decided; it asks this module three things:

* `diversion_wanted`: would this diversion output like to conduct? Only while every battery
  path it belongs to is off because the battery is full (HVD, the max-SoC hold, a type 3
  output's high-SoC alarm), or blocked by battery temperature when the heater does not warm
  the battery; never on a fault, stale measurements, a lockout or its own forced-off hold.
* `BreakBeforeMake.settle`: the final states of the battery paths and their heat paths, so
  that neither conducts until the other has been off for the dead time (in both directions).
* `DiversionEstimator`: the PV current each array could deliver while disconnected (learned
  from the PV shunt while it charges, scaled by a clear-sky model), the heater's power from
  it, and the diverted and curtailed energy counters.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.control.clear_sky import plane_irradiance
from edge_agent.control.counters import add_diversion
from edge_agent.control.extio import battery_paths, diverts
from edge_agent.control.model import DiversionCounters, DiversionReport, Interlock
from edge_agent.control.settings import (
    ArraySettings,
    DiversionSettings,
    OutputSettings,
    OutputType,
    Wiring,
)

# The battery is full: the arrays are off because the cells can take no more.
FULL_BLOCKS = frozenset({Interlock.HVD, Interlock.MAX_SOC})
# Charging blocked by the battery's temperature (board over-temperature is a fault instead).
TEMPERATURE_BLOCKS = frozenset(
    {
        Interlock.CHARGE_TOO_COLD,
        Interlock.CHARGE_TOO_HOT,
        Interlock.BATTERY_TEMPERATURE_UNKNOWN,
    }
)
# Clear-sky irradiance below this says too little about the array to learn from, W/m2.
MIN_LEARNING_IRRADIANCE_W_M2 = 150.0
LEARNING_TIME_CONSTANT_S = 600.0  # the learned current follows the sun, not every cloud edge
MAX_COUNTED_INTERVAL_S = 600.0  # a longer gap between samples counts no energy: unknown
KNEE_FRACTION = 0.8  # a panel is a current source up to about 0.8 Voc (hardware-facts.md)


@dataclass(frozen=True, slots=True)
class DiversionConditions:
    """What the controller decided this sample, as far as diversion cares."""

    fresh: bool  # a good measurement within stale_after_s
    fault_active: bool  # any fault (lockouts, board over-temperature, failed measurements)
    charge_blocks: frozenset[Interlock]  # why charging is not allowed (empty: it is)
    high_soc_alarm: bool  # for a type 3 battery path: off at its SoC threshold = full
    heater_warms_battery: bool  # DiversionSettings.heater_warms_battery


def path_is_full(path: OutputSettings, conditions: DiversionConditions) -> bool:
    """Is this battery path off because the battery is full?"""
    if conditions.charge_blocks & FULL_BLOCKS:
        return True
    return path.type is OutputType.HIGH_SOC and conditions.high_soc_alarm


def diversion_wanted(
    output: OutputSettings,
    paths: Sequence[OutputSettings],
    conditions: DiversionConditions,
    held_off: bool,
) -> bool:
    """Would this output like its heat path to conduct? (`BreakBeforeMake` then decides when.)"""
    if output.type is not OutputType.DIVERSION or held_off or not paths:
        return False
    if conditions.fault_active or not conditions.fresh:
        return False
    blocks = conditions.charge_blocks
    temperature = bool(blocks & TEMPERATURE_BLOCKS)
    if temperature and conditions.heater_warms_battery:
        return False  # never heat cells that are already too hot, or too cold to read
    if blocks - FULL_BLOCKS - TEMPERATURE_BLOCKS:
        return False  # stale, a lockout, board over-temperature: not a surplus
    return all(path_is_full(path, conditions) or temperature for path in paths)


class BreakBeforeMake:
    """Neither path of a DSSR20 conducts until the other has been off for `dead_time_s`.

    Times are those of the decisions: a path counts as off from the first decision that turned
    it off, and the other may conduct only from a later decision (so always at least one
    sample with both off, even with a dead time of 0). The times are persisted with the
    controller state: a controller rebuilt with new settings (from a time before the last
    decision) or after a restart takes a path left conducting as conducting until a decision
    turns it off. Paths it knows nothing of count as off since it was built.
    """

    def __init__(
        self,
        outputs: Sequence[OutputSettings],
        dead_time_s: float,
        started_at: float,
        off_since: Mapping[str, float | None] | None = None,
    ) -> None:
        """`off_since`: a previous controller's `off_since_all` (a rebuild with new settings,
        or a restart): a path it left conducting (None) counts as conducting until a decision
        turns it off, so a rebuild between two decisions cannot shorten the dead time."""
        self.dead_time_s = dead_time_s
        self._paths: dict[str, tuple[str, ...]] = {
            o.name: battery_paths(o, outputs) for o in outputs if diverts(o)
        }
        self._heat_of: dict[str, list[str]] = {}
        for heat, paths in self._paths.items():
            for path in paths:
                self._heat_of.setdefault(path, []).append(heat)
        previous = off_since or {}
        self._off_since: dict[str, float | None] = {
            name: previous.get(name, started_at) for name in (*self._paths, *self._heat_of)
        }

    @property
    def paths(self) -> Mapping[str, tuple[str, ...]]:
        """Diversion output -> the battery paths (charge outputs) of its arrays."""
        return self._paths

    def off_since(self, name: str) -> float | None:
        return self._off_since.get(name)

    @property
    def off_since_all(self) -> dict[str, float | None]:
        """Every path's off-since time (None: conducting at the last decision), persisted."""
        return dict(self._off_since)

    def settle(self, now: float, wanted: Mapping[str, bool]) -> dict[str, bool]:
        """The states of the battery paths and heat paths given the states they would like
        (every other output is left out). Battery paths first: a heat path that conducted at
        the last decision holds its battery path off for the dead time."""
        for name, since in self._off_since.items():
            if since is not None and now < since:
                self._off_since[name] = now  # the clock went back: the dead time starts again
        states: dict[str, bool] = {}
        for path, heats in self._heat_of.items():
            states[path] = wanted.get(path, False) and all(self._off_long(h, now) for h in heats)
        for heat, paths in self._paths.items():
            states[heat] = wanted.get(heat, False) and all(
                not states[p] and self._off_long(p, now) for p in paths
            )
        for name, on in states.items():
            if on:
                self._off_since[name] = None
            elif self._off_since[name] is None:
                self._off_since[name] = now
        return states

    def _off_long(self, name: str, now: float) -> bool:
        since = self._off_since[name]  # None: it conducted at the last decision
        return since is not None and since < now and now - since >= self.dead_time_s


# --- the estimate -------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ArrayLearning:
    """What the estimate has learned of one array (persisted)."""

    # Amps per W/m2 of clear-sky irradiance (or plain amps without a site), smoothed.
    amps_per_clear_sky: float
    learned_at: float  # the last sample it learned from


@dataclass(frozen=True, slots=True)
class EstimatorState:
    counters: DiversionCounters = field(default_factory=DiversionCounters)
    learned: Mapping[str, ArrayLearning] = field(default_factory=dict)  # charge output -> it
    last_time: float | None = None
    last_heat_power_w: float | None = None


@dataclass(frozen=True, slots=True)
class SampleInputs:
    """One good measurement's worth of inputs to the estimate."""

    now: float
    pv_current: float | None  # the PV shunt (every array together), None without one
    battery_voltage: float
    heat_power_w: float | None  # a heat-path shunt's reading, None without one


class DiversionEstimator:
    """PV available while the panels are disconnected, the heat paths' power, and counters.

    Method (docs/diversion.md): while an array charges alone (the only array whose battery
    path conducted during the interval), its measured PV current divided by the clear-sky
    irradiance on its plane is learned, smoothed over `LEARNING_TIME_CONSTANT_S`. While it is
    disconnected, the current it could give is that ratio times the clear-sky irradiance now
    (so the estimate follows the time of day, and keeps the cloudiness of the last learning).
    Without a learning, the array's configured short-circuit current times clear-sky / 1000.
    """

    def __init__(
        self,
        settings: DiversionSettings,
        outputs: Sequence[OutputSettings],
        utc_offset_hours: float,
        state: EstimatorState | None = None,
    ) -> None:
        state = state or EstimatorState()
        self.settings = settings
        self._outputs = {o.name: o for o in outputs}
        configured = {a.output: a for a in settings.arrays if a.output in self._outputs}
        for output in outputs:
            if diverts(output):
                for path in battery_paths(output, outputs):
                    configured.setdefault(path, ArraySettings(path))
        self.arrays: dict[str, ArraySettings] = {
            name: array
            for name, array in configured.items()
            if self._outputs[name].wiring is Wiring.CHARGE
        }
        self._longitude = (
            settings.longitude_deg
            if settings.longitude_deg is not None
            else utc_offset_hours * 15.0
        )
        self.counters = state.counters
        self.learned: dict[str, ArrayLearning] = {
            name: value for name, value in state.learned.items() if name in self.arrays
        }
        self.last_time = state.last_time
        self.last_heat_power_w = state.last_heat_power_w

    @property
    def state(self) -> EstimatorState:
        return EstimatorState(
            self.counters, dict(self.learned), self.last_time, self.last_heat_power_w
        )

    def clear_sky(self, now: float) -> float | None:
        """Clear-sky irradiance on the arrays' plane, or None without a site."""
        s = self.settings
        if s.latitude_deg is None:
            return None
        tilt = s.tilt_deg if s.tilt_deg is not None else abs(s.latitude_deg)
        azimuth = s.azimuth_deg
        if azimuth is None:
            azimuth = 180.0 if s.latitude_deg >= 0.0 else 0.0
        return plane_irradiance(now, s.latitude_deg, self._longitude, tilt, azimuth)

    def available_current(self, name: str, now: float) -> float | None:
        """The current this array could deliver into the battery now, amps; None: unknown."""
        array = self.arrays[name]
        sky = self.clear_sky(now)
        learned = self.learned.get(name)
        if learned is not None:
            return learned.amps_per_clear_sky * (1.0 if sky is None else sky)
        if array.rated_current_a is not None and sky is not None:
            return array.rated_current_a * sky / 1000.0
        return None

    def heater_power(self, name: str, current_a: float, battery_voltage: float) -> float:
        """The heat path's power from the array's current: a resistive heater of R ohms on a
        current source takes I^2 R, the voltage capped at the panels' knee (0.8 Voc); without
        a configured heater, the power the battery would have taken (I x battery voltage)."""
        array = self.arrays[name]
        if array.heater_ohm is None:
            return current_a * battery_voltage
        volts = current_a * array.heater_ohm
        if array.open_circuit_v is not None:
            volts = min(volts, KNEE_FRACTION * array.open_circuit_v)
        return current_a * volts

    def update(
        self,
        sample: SampleInputs,
        *,
        was_on: Mapping[str, bool],
        is_on: Mapping[str, bool],
        full: Mapping[str, bool],
        heat_paths: Mapping[str, tuple[str, ...]],
    ) -> DiversionReport:
        """Learn from a good sample and count the interval since the previous one.

        `was_on`: every output's state during the interval (the previous decision); `is_on`:
        the decision just taken; `full`: per array, is its battery path off because the battery
        is full (now); `heat_paths`: diversion output -> its arrays."""
        now = sample.now
        heat_power = _valid_power(sample.heat_power_w)
        interval = None if self.last_time is None else now - self.last_time
        counting = interval is not None and 0.0 < interval <= MAX_COUNTED_INTERVAL_S
        self._learn(sample, was_on, interval)
        estimates = {name: self.available_current(name, now) for name in self.arrays}
        diverting_arrays = _heated(was_on, heat_paths)
        if counting and interval is not None:
            hours = interval / 3600.0
            if heat_power is not None:
                mean = heat_power
                if self.last_heat_power_w is not None:
                    mean = (heat_power + self.last_heat_power_w) / 2.0
                self._count(measured_wh=mean * hours)
            else:
                estimated = sum(
                    self.heater_power(name, current, sample.battery_voltage)
                    for name, current in estimates.items()
                    if current is not None and name in diverting_arrays
                )
                self._count(estimated_wh=estimated * hours)
            curtailed = sum(
                current * sample.battery_voltage
                for name, current in estimates.items()
                if current is not None
                and full.get(name, False)
                and not was_on.get(name, False)
                and name not in diverting_arrays
            )
            self._count(curtailed_wh=curtailed * hours)
        self.last_time = now
        self.last_heat_power_w = heat_power
        return self.report(
            now, sample.battery_voltage, heat_power, is_on=is_on, full=full, heat_paths=heat_paths
        )

    def report(
        self,
        now: float,
        battery_voltage: float,
        heat_power: float | None,
        *,
        is_on: Mapping[str, bool],
        full: Mapping[str, bool],
        heat_paths: Mapping[str, tuple[str, ...]],
    ) -> DiversionReport:
        """The diversion now: heat paths' power, PV available on the full arrays, counters."""
        heated = _heated(is_on, heat_paths)
        estimates = {name: self.available_current(name, now) for name in self.arrays}
        known = {name: c for name, c in estimates.items() if c is not None}
        power = heat_power
        if power is None:
            power = sum(
                self.heater_power(name, current, battery_voltage)
                for name, current in known.items()
                if name in heated
            )
        surplus = [name for name in self.arrays if full.get(name, False)]
        available: float | None = 0.0  # no array is off because the battery is full
        if not self.arrays:
            available = None  # no array known: nothing can be said
        elif surplus:
            unknown = any(name not in known for name in surplus)
            available = None if unknown else sum(known[n] * battery_voltage for n in surplus)
        return DiversionReport(
            diverting=any(is_on.get(heat, False) for heat in heat_paths),
            power_w=power,
            measured=heat_power is not None,
            available_w=available,
            counters=self.counters,
        )

    def _learn(
        self, sample: SampleInputs, was_on: Mapping[str, bool], interval: float | None
    ) -> None:
        """Learn the array that charged alone through the interval (nothing else on the PV
        shunt), from its current now."""
        if sample.pv_current is None or interval is None or interval <= 0.0:
            return
        charging = [
            name
            for name, output in self._outputs.items()
            if output.wiring is Wiring.CHARGE and was_on.get(name, False)
        ]
        if len(charging) != 1 or charging[0] not in self.arrays:
            return  # another charge source may share the shunt: nothing to attribute
        name = charging[0]
        sky = self.clear_sky(sample.now)
        if sky is not None and sky < MIN_LEARNING_IRRADIANCE_W_M2:
            return
        observed = max(0.0, sample.pv_current) / (1.0 if sky is None else sky)
        if not math.isfinite(observed):
            return
        previous = self.learned.get(name)
        if previous is None:
            value = observed
        else:
            weight = 1.0 - math.exp(-min(interval, 3600.0) / LEARNING_TIME_CONSTANT_S)
            value = previous.amps_per_clear_sky + weight * (observed - previous.amps_per_clear_sky)
        self.learned[name] = ArrayLearning(value, sample.now)

    def _count(
        self, *, measured_wh: float = 0.0, estimated_wh: float = 0.0, curtailed_wh: float = 0.0
    ) -> None:
        self.counters = add_diversion(
            self.counters,
            measured_wh=measured_wh,
            estimated_wh=estimated_wh,
            curtailed_wh=curtailed_wh,
        )


def _heated(states: Mapping[str, bool], heat_paths: Mapping[str, tuple[str, ...]]) -> set[str]:
    """The arrays whose heat path conducts in `states`."""
    return {path for heat, paths in heat_paths.items() if states.get(heat, False) for path in paths}


def _valid_power(value: float | None) -> float | None:
    """A heat-path reading the estimate can use: finite and not negative (else unmeasured)."""
    if value is None or not math.isfinite(value) or value < 0.0:
        return None
    return value
