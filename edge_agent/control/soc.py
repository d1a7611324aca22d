"""State-of-charge estimator: coulomb counting with anchors, learning, and an uncertainty.

How it beats plain coulomb counting (whose error grows with the shunt offset over time and
with the gain error over a cycle):

* Full anchors. An end of charge sets 100 %: the highest cell at or above eoc for eoc_hold_s
  while the current has tapered to tail_current or less (a CV charger's absorption ending; not
  its bulk phase, which crosses eoc at full current when its absorption voltage is above eoc),
  or an HVD trip (PV switched straight onto the pack never tapers: it is cut at HVD). Published
  LiFePO4 curves agree at the top, so these are hard anchors.
* Readings at the steep ends (`ocv_curve`). A rest of rest_time_s gives the resting voltage of
  the lowest and the highest cell; where the curve is steep enough that voltage says what SoC
  it is (the built-in curve only at its very ends; a configured datasheet curve wherever it
  climbs 2 mV per point), the reading and the count are combined by their uncertainties. The
  curve is read as the middle of the OCV hysteresis, on the branch the net charge of the last
  few % of capacity put the cells on (`ocv_curve.OcvCurve.reading`).
* The low anchor at LVD. LVD trips under load, where a cell reads well below its resting
  voltage (8-10 points of SoC at the empty end). The reading is corrected by a resistance
  learned from the load steps the pack makes every day (`resistance`), for the current it was
  learned at; without a trusted resistance for that current it is skipped (the rest after LVD
  still gives a reading). LVD itself acts on the measured voltage: protection is not SoC.
  A configured `empty_soc` is taken as it is (the operator knows where their empty is).
* Offset learning. Between two full anchors the true charge balance is zero (the counted
  charge in is already scaled by the coulombic efficiency), so whatever was counted, divided
  by the hours between them, is the residual current-sense offset. It is blended in by a
  scalar Kalman step: the span's residual is as uncertain as two syncs' positions over its
  hours (a 2 h span says little, a week a lot), against the offset's own uncertainty, and
  never less than a plain follower's (0.5 from 48 h up) so that a drifting sensor is followed;
  the weight is capped at 0.7, the step at 0.1 % of capacity (in A) per anchor and the offset at
  +-0.5 % of capacity in total.
* Capacity learning without deep cycles. Charge counted between a full anchor and a trusted
  low reading (a rested one at the low end, or a configured empty_soc), in either order,
  measures the capacity over the SoC points the reading says lie between them. Each
  measurement is weighed against the capacity's own uncertainty (a scalar Kalman update),
  moves it by at most 5 % of nominal, keeps it within 70..120 % of nominal, and is ignored
  outside 50..150 % (a missed anchor, not a capacity) or over fewer than 40 points.
* Uncertainty (`soc_band`): one sigma grows from the last anchor with the offset's, the
  capacity's and the gain's uncertainty and shrinks at anchors; `uncertainty` is half the
  ~95 % band, published with the SoC. A reading's error repeats from rest to rest (the same
  curve, hysteresis branch and cells), so the published band narrows at a reading only to the
  better of count and reading, and counts the capacity as known no better than a bottom
  reading over the depth; the Kalman sigmas, which do shrink, weigh the next reading.

The count itself is kept unclamped (within -50..150 % of capacity) so that the anchors can
see how far it drifted; `soc` and `remaining_ah` are clamped for display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import NamedTuple

from edge_agent.control import resistance, soc_band
from edge_agent.control.model import ControlEvent, EventKind, Measurement
from edge_agent.control.ocv_curve import BUILTIN_CURVE, OcvCurve, OcvReading
from edge_agent.control.resistance import NO_RESISTANCE, ResistanceState
from edge_agent.control.settings import CellThresholds, SocSettings

SECONDS_PER_HOUR = 3600.0
# Without a hardware charge accumulator, a longer gap between samples is integrated over this
# much time only: the current in between is unknown, and guessing it would be worse.
MAX_INTEGRATION_GAP_S = 60.0

MIN_LEARNING_INTERVAL_S = 2 * 3600.0
MAX_LEARNING_INTERVAL_S = 14 * 24 * 3600.0
# The Kalman weight of a full-to-full span is capped well below 1: the span's residual also
# holds what is not an offset, one-sided, which no zero-mean noise term models: the pack's
# capacity change between the syncs (balancing raised the simulated packs' by about 0.2 Ah a
# day in their first week, 10 mA on 100 Ah), self-discharge, the gain over an uneven balance.
# (0.9 over-learned the offset by 6 mA on a generic11 pack; a fixed 0.5 under-learned it by
# 12 mA for two weeks on a sinopoly one.)
OFFSET_MAX_WEIGHT = 0.7
OFFSET_FOLLOW_WEIGHT = 0.5
OFFSET_FULL_WEIGHT_INTERVAL_S = 48 * 3600.0
OFFSET_MAX_STEP_FRACTION = 0.001  # of capacity, amps per anchor
OFFSET_MAX_FRACTION = 0.005  # of capacity, amps in total
# The residual offset's uncertainty (of capacity, amps): before any learning a shunt monitor
# may be off by 50 mA per 100 Ah; each full-to-full span measures it to within what two syncs
# can be apart (FULL_SYNC_SIGMA each) over the span's hours, down to what drift leaves.
OFFSET_SIGMA_FRACTION = 0.0005
OFFSET_SIGMA_FLOOR_FRACTION = 0.00005

CAPACITY_MAX_STEP_FRACTION = 0.05  # of nominal, per measurement
CAPACITY_MIN_FRACTION = 0.7
CAPACITY_MAX_FRACTION = 1.2
CAPACITY_PLAUSIBLE_RANGE = (0.5, 1.5)  # of nominal; outside it the measurement is discarded
CAPACITY_MIN_DEPTH_PCT = 40.0  # SoC points between the two ends of a measurement
# The nominal capacity's uncertainty before learning (a pack's weakest cell, age, temperature)
# and the least the learning claims.
CAPACITY_SIGMA_FRACTION = 0.05
CAPACITY_SIGMA_FLOOR_FRACTION = 0.005
# Between two measurements the capacity may have moved (balancing equalising the cells raised a
# simulated pack's from 95.3 to 98.0 Ah in a month; fade, temperature): each measurement finds
# it this much less certain than the last left it, so later ones keep their say.
CAPACITY_DRIFT_FRACTION = 0.004
# A low reading this uncertain (SoC points) is not a reference for capacity.
CAPACITY_MAX_READING_SIGMA = 3.0
CONFIGURED_EMPTY_SIGMA = 1.0

MAX_UNCOUNTED_FRACTION = 0.01  # of an anchor span; more lost time and nothing is learned

# The OCV hysteresis branch a cell rests on follows the charge that last flowed: this much of
# capacity one way takes it fully onto that way's branch (the move is most of the way within a
# few % of throughput in Plett's one-state model; this is the far end of "a few").
BRANCH_SETTLE_FRACTION = 0.05

# The resistance correction at LVD: the part of it that is itself uncertain (polarisation
# depends on how long the load ran, not only on its current).
CORRECTION_SIGMA_FRACTION = 0.3
COUNT_SLACK_FRACTION = 0.5  # the raw count may run this far outside 0..capacity

CURRENT_SMOOTHING_TAU_S = 60.0
TINY_CURRENT_FRACTION = 0.002  # of capacity: below this no time-to-full/empty is given
TINY_CURRENT_FLOOR_A = 0.05


class AnchorKind(StrEnum):
    NONE = "none"
    FULL = "full"
    EMPTY = "empty"


@dataclass(frozen=True, slots=True)
class Interval:
    """Charge measured between two good samples, before offset correction."""

    charge_ah: float  # signed, positive = into the battery
    counted_s: float  # time the charge covers (offset correction applies over this)
    uncounted_s: float  # time in a gap that no charge was counted for
    gap: bool  # samples further apart than MAX_INTEGRATION_GAP_S


NO_INTERVAL = Interval(charge_ah=0.0, counted_s=0.0, uncounted_s=0.0, gap=True)


def integrate_interval(
    previous_time: float | None,
    previous_current: float | None,
    now: float,
    current: float,
    hardware_delta_ah: float | None,
) -> Interval:
    """Charge since the previous good sample: the hardware accumulator when there is one
    (it loses nothing in gaps), else trapezoids, capped after a gap."""
    if previous_time is None or previous_current is None:
        return NO_INTERVAL
    elapsed = max(0.0, now - previous_time)
    gap = elapsed > MAX_INTEGRATION_GAP_S
    if hardware_delta_ah is not None:
        return Interval(hardware_delta_ah, counted_s=elapsed, uncounted_s=0.0, gap=gap)
    if gap:
        # The older current is stale: count only the newest over the capped time.
        counted = MAX_INTEGRATION_GAP_S
        charge = current * counted / SECONDS_PER_HOUR
        return Interval(charge, counted_s=counted, uncounted_s=elapsed - counted, gap=True)
    charge = (previous_current + current) / 2.0 * elapsed / SECONDS_PER_HOUR
    return Interval(charge, counted_s=elapsed, uncounted_s=0.0, gap=False)


@dataclass(frozen=True, slots=True)
class LowReference:
    """A trusted low reading, waiting for the next full anchor to measure the capacity."""

    time: float
    soc: float
    sigma: float
    counted_since_ah: float = 0.0
    uncounted_at_s: float = 0.0


@dataclass(frozen=True, slots=True)
class SocState:
    """Everything the estimator needs to continue after a restart."""

    charge_ah: float  # unclamped count, Ah above empty
    capacity_ah: float  # learned capacity
    offset_a: float  # learned current-sense offset, subtracted from every reading
    anchor_kind: AnchorKind = AnchorKind.NONE
    anchor_time: float | None = None
    counted_since_anchor_ah: float = 0.0  # pure counting, OCV corrections excluded
    eoc_since: float | None = None
    eoc_synced: bool = False
    rest_since: float | None = None
    rest_corrected: bool = False
    current_ema_a: float | None = None
    last_sample_time: float | None = None
    uncounted_s: float = 0.0  # time lost to sample gaps without a hardware accumulator
    uncounted_at_anchor_s: float = 0.0  # uncounted_s when the last anchor was set
    last_sync_time: float | None = None  # latest sync of any kind, repeats included
    # Offset learning compares consecutive full charges, whatever anchors fall in between: with
    # LVD days between sunny days, full-to-full pairs would otherwise be rare.
    full_reference_time: float | None = None
    counted_since_full_ah: float = 0.0
    uncounted_at_full_s: float = 0.0
    # Uncertainty (soc_band): where the band was last reset, and what has grown it since.
    # States saved before issue 16 lack these: they start as a new install's.
    band_sigma: float = soc_band.UNKNOWN_SIGMA  # the anchor's Kalman sigma: weighs readings
    band_soc: float = 50.0
    band_time: float | None = None
    band_charge_in_ah: float = 0.0
    capacity_sigma_ah: float = 0.0  # 0: not set yet (nominal x CAPACITY_SIGMA_FRACTION)
    offset_sigma_a: float = 0.0  # 0: not set yet (capacity x OFFSET_SIGMA_FRACTION)
    low_reference: LowReference | None = None
    resistance: ResistanceState = NO_RESISTANCE
    # The published band's anchor sigma is at least this since the last reading (its error
    # repeats: soc_band.floor); 0 after a sync. States saved before it lack it: 0.
    band_floor_sigma: float = 0.0
    # Net charge (Ah) counted lately, clamped to +- BRANCH_SETTLE_FRACTION of capacity: which
    # OCV hysteresis branch the cells rest on (-full: discharge, +full: charge). States saved
    # before it lack it: 0, not known.
    branch_ah: float = 0.0


@dataclass(frozen=True, slots=True)
class SocUpdate:
    events: tuple[ControlEvent, ...]
    battery_delta_ah: float  # offset-corrected charge into the battery (before efficiency)
    full_sync: bool


class _Count(NamedTuple):
    """A sample's counted charge carried into every running total (SocState's fields)."""

    charge_ah: float
    counted_since_anchor_ah: float
    counted_since_full_ah: float
    uncounted_s: float
    band_charge_in_ah: float
    low_reference: LowReference | None
    branch_ah: float


class _Episode(NamedTuple):
    """An end of charge or a rest as a sample leaves it."""

    since: float | None  # when it began; None: not in one
    done: bool  # acted on already this episode (eoc_synced, rest_corrected)
    due: bool  # this sample completes it: act now


class SocEstimator:
    def __init__(
        self, settings: SocSettings, cells: CellThresholds, state: SocState | None = None
    ) -> None:
        self.settings = settings
        self.cells = cells
        self.curve = (
            OcvCurve(settings.ocv_curve, configured=True)
            if settings.ocv_curve is not None
            else BUILTIN_CURVE
        )
        self._state = _with_uncertainty_defaults(
            state if state is not None else initial_soc_state(settings), settings
        )
        # The latest sample's current: its sign says which time estimate exists. Not kept
        # across a restart (the smoothed current stands in until the first sample).
        self._present_current_a: float | None = None

    @property
    def state(self) -> SocState:
        return self._state

    @property
    def capacity_ah(self) -> float:
        return self._state.capacity_ah

    @property
    def offset_a(self) -> float:
        return self._state.offset_a

    @property
    def raw_soc(self) -> float:
        """Unclamped SoC, percent."""
        return self._state.charge_ah / self._state.capacity_ah * 100.0

    @property
    def soc(self) -> float:
        return min(100.0, max(0.0, self.raw_soc))

    @property
    def sigma(self) -> float:
        """One sigma of the SoC, points, at the last sample: what the band publishes."""
        s = self._state
        return self._sigma(
            max(s.band_sigma, s.band_floor_sigma),
            max(s.capacity_sigma_ah, self.capacity_floor_ah),
        )

    @property
    def capacity_floor_ah(self) -> float:
        """What the capacity can be known to, as published: the low readings it is learned
        against err alike at every rest (the same curve, branch and cells), so measurements do
        not average that away; it stays their sigma (at 5 %) over the 95 points between the
        ends. The Kalman sigma that weighs readings does shrink (see soc_band.floor)."""
        # At the bottom the cells rest after a discharge, on that branch.
        bottom = self.curve.reading(self.curve.volts(5.0), branch=-1.0)
        sigma = bottom.sigma if bottom is not None else CAPACITY_MAX_READING_SIGMA
        return self._state.capacity_ah * sigma / 95.0

    def _sigma(self, anchor_sigma: float, capacity_sigma_ah: float | None = None) -> float:
        s = self._state
        now = s.last_sample_time
        hours = 0.0 if s.band_time is None or now is None else (now - s.band_time) / 3600.0
        return soc_band.sigma(
            soc_band.BandInputs(
                anchor_sigma=anchor_sigma,
                hours_since_anchor=max(0.0, hours),
                offset_sigma_a=s.offset_sigma_a,
                capacity_ah=s.capacity_ah,
                capacity_sigma_ah=(
                    s.capacity_sigma_ah if capacity_sigma_ah is None else capacity_sigma_ah
                ),
                points_from_anchor=abs(self.raw_soc - s.band_soc),
                charge_in_since_anchor_ah=s.band_charge_in_ah,
            )
        )

    @property
    def uncertainty(self) -> float:
        """Half the width of the ~95 % band around `soc`, SoC points."""
        return soc_band.half_width(self.sigma)

    @property
    def remaining_ah(self) -> float:
        return self.soc / 100.0 * self._state.capacity_ah

    @property
    def rest_current_a(self) -> float:
        configured = self.settings.rest_current
        return configured if configured > 0.0 else self._state.capacity_ah / 100.0

    def time_to_full_s(self) -> float | None:
        return self._time_estimates()[0]

    def time_to_empty_s(self) -> float | None:
        return self._time_estimates()[1]

    def _time_estimates(self) -> tuple[float | None, float | None]:
        return time_estimates(
            self.soc,
            self._state.capacity_ah,
            present_a=self._present_current_a,
            smoothed_a=self._state.current_ema_a,
            tiny_a=self._tiny_current(),
        )

    def update(
        self, measurement: Measurement, interval: Interval, *, hvd_tripped: bool, lvd_tripped: bool
    ) -> SocUpdate:
        """Count one good sample, then apply whichever anchor or reading it brings."""
        now = measurement.timestamp
        current = measurement.battery_current - self._state.offset_a
        delta = interval.charge_ah - self._state.offset_a * interval.counted_s / SECONDS_PER_HOUR
        eoc, rest = self._take_sample(measurement, current, delta, interval)
        self._present_current_a = current
        events: list[ControlEvent] = []
        full_sync = False
        if lvd_tripped:
            events.extend(self._low_anchor(measurement, current, now))
        elif hvd_tripped or eoc.due:
            events.append(self._anchor_full(now, "hvd" if hvd_tripped else "eoc", learn=True))
            full_sync = True
        elif rest.due:
            events.extend(self._rest_reading(measurement, now))
        return SocUpdate(tuple(events), battery_delta_ah=delta, full_sync=full_sync)

    def _take_sample(
        self, measurement: Measurement, current: float, delta_ah: float, interval: Interval
    ) -> tuple[_Episode, _Episode]:
        """Count, smooth, learn and track one sample; (end of charge, rest) as it leaves them.

        Every step reads the state as the previous sample left it, so their results go into
        one new state: a copy per step was an eighth of a month-long scenario's CPU."""
        now, gap = measurement.timestamp, interval.gap
        count = self._count(delta_ah, interval.uncounted_s)
        eoc = self._track_end_of_charge(measurement, current, now, gap)
        rest = self._track_rest(current, now, gap)
        self._state = replace(
            self._state,
            charge_ah=count.charge_ah,
            counted_since_anchor_ah=count.counted_since_anchor_ah,
            counted_since_full_ah=count.counted_since_full_ah,
            uncounted_s=count.uncounted_s,
            band_charge_in_ah=count.band_charge_in_ah,
            low_reference=count.low_reference,
            branch_ah=count.branch_ah,
            current_ema_a=self._smoothed_current(current, now),
            resistance=self._learned_resistance(measurement, current, now, gap),
            eoc_since=eoc.since,
            eoc_synced=eoc.done,
            rest_since=rest.since,
            rest_corrected=rest.done,
            last_sample_time=now,
        )
        return eoc, rest

    @property
    def empty_soc(self) -> float | None:
        """SoC set at an LVD trip when configured; None: the corrected reading decides."""
        return self.settings.empty_soc

    def set_soc(self, soc_percent: float) -> None:
        """Operator's value. Not an anchor: learning restarts from the next one."""
        if not 0.0 <= soc_percent <= 100.0:
            raise ValueError(f"SoC {soc_percent} outside 0..100")
        self._state = replace(
            self._state,
            charge_ah=soc_percent / 100.0 * self._state.capacity_ah,
            anchor_kind=AnchorKind.NONE,
            anchor_time=None,
            counted_since_anchor_ah=0.0,
            full_reference_time=None,
            low_reference=None,
        )
        self._reset_band(soc_percent, soc_band.OPERATOR_SET_SIGMA, self._state.last_sample_time)

    def mark_full(self, now: float) -> ControlEvent:
        """Operator says the pack is full: an anchor, but nothing is learned from it."""
        return self._anchor_full(now, "command", learn=False)

    def set_offset(self, offset_a: float) -> float:
        if not math.isfinite(offset_a):
            raise ValueError(f"offset {offset_a} is not finite")
        limit = OFFSET_MAX_FRACTION * self._state.capacity_ah
        offset = min(limit, max(-limit, offset_a))
        self._state = replace(self._state, offset_a=offset)
        return offset

    # --- counting -------------------------------------------------------------------------

    def _count(self, delta_ah: float, uncounted_s: float) -> _Count:
        counted = delta_ah * self.settings.coulombic_efficiency if delta_ah > 0 else delta_ah
        s = self._state
        capacity = s.capacity_ah
        slack = COUNT_SLACK_FRACTION * capacity
        settle = BRANCH_SETTLE_FRACTION * capacity
        low = s.low_reference
        if low is not None:
            low = replace(low, counted_since_ah=low.counted_since_ah + counted)
        return _Count(
            charge_ah=min(capacity + slack, max(-slack, s.charge_ah + counted)),
            counted_since_anchor_ah=s.counted_since_anchor_ah + counted,
            counted_since_full_ah=s.counted_since_full_ah + counted,
            uncounted_s=s.uncounted_s + uncounted_s,
            band_charge_in_ah=s.band_charge_in_ah + max(0.0, counted),
            low_reference=low,
            branch_ah=min(settle, max(-settle, s.branch_ah + counted)),
        )

    @property
    def branch(self) -> float:
        """The hysteresis branch the cells are on: -1 discharge .. +1 charge."""
        return self._state.branch_ah / (BRANCH_SETTLE_FRACTION * self._state.capacity_ah)

    def _smoothed_current(self, current: float, now: float) -> float:
        previous = self._state.current_ema_a
        last_time = self._state.last_sample_time
        if previous is None or last_time is None:
            return current
        weight = 1.0 - math.exp(-max(0.0, now - last_time) / CURRENT_SMOOTHING_TAU_S)
        return previous + weight * (current - previous)

    def _tiny_current(self) -> float:
        return max(TINY_CURRENT_FLOOR_A, TINY_CURRENT_FRACTION * self._state.capacity_ah)

    def _learned_resistance(
        self, measurement: Measurement, current: float, now: float, gap: bool
    ) -> ResistanceState:
        return resistance.observe(
            self._state.resistance,
            now=now,
            current_a=current,
            min_cell_v=measurement.min_cell,
            rest_current_a=self.rest_current_a,
            rest_time_s=self.settings.rest_time_s,
            capacity_ah=self._state.capacity_ah,
            gap=gap,
        )

    # --- uncertainty ----------------------------------------------------------------------

    def _reset_band(
        self, soc: float, sigma: float, now: float | None, floor_sigma: float = 0.0
    ) -> None:
        self._state = replace(
            self._state,
            band_sigma=sigma,
            band_soc=soc,
            band_time=now,
            band_charge_in_ah=0.0,
            band_floor_sigma=floor_sigma,
        )

    def _combine(self, reading: OcvReading, now: float, reason: str) -> ControlEvent:
        """Move the estimate toward a reading by their uncertainties (the Kalman sigma weighs);
        the band restarts, published no narrower than the better of the two."""
        before = self.raw_soc
        floor_sigma = soc_band.floor(self.sigma, reading.sigma)
        combined = soc_band.combine(
            before, self._sigma(self._state.band_sigma), reading.soc, reading.sigma
        )
        self._state = replace(self._state, charge_ah=combined.soc / 100.0 * self._state.capacity_ah)
        self._reset_band(combined.soc, combined.sigma, now, floor_sigma)
        return _sync_event(now, before, combined.soc, reason)

    # --- full anchors ---------------------------------------------------------------------

    def _track_end_of_charge(
        self, measurement: Measurement, current: float, now: float, gap: bool
    ) -> _Episode:
        """Due on the sample where end of charge has held for eoc_hold_s (once per episode:
        `done` is eoc_synced, which the full anchor sets).

        A cell at eoc says "full" only once the current has tapered: under a bulk current the
        cell's resistance and polarisation lift it past eoc well before the pack is full."""
        tail = self.settings.tail_current
        at_eoc = measurement.max_cell >= self.cells.eoc and -tail < current <= tail
        s = self._state
        if not at_eoc:
            return _Episode(since=None, done=False, due=False)
        since = now if s.eoc_since is None or gap else s.eoc_since
        due = not s.eoc_synced and now - since >= self.settings.eoc_hold_s
        return _Episode(since=since, done=s.eoc_synced, due=due)

    def _anchor_full(self, now: float, reason: str, *, learn: bool) -> ControlEvent:
        """Set 100 %. A repeat soon after the last full sync (PV cycling on and off at HVD) is
        not a new learning reference: the charge counted since the first one keeps running, so
        every reference sits at the same point of the charge (e.g. the first EOC of the day)
        and only the offset separates them."""
        before = self.raw_soc
        s = self._state
        repeat = (
            s.anchor_kind is AnchorKind.FULL
            and s.last_sync_time is not None
            and now - s.last_sync_time < MIN_LEARNING_INTERVAL_S
        )
        if learn and not repeat:
            self._learn_capacity_from_low_reference(now)
        if not repeat:
            self._restart_full_reference(now, learn=learn)
        state = replace(self._state, charge_ah=self._state.capacity_ah, last_sync_time=now)
        if not repeat:
            state = replace(
                state,
                anchor_kind=AnchorKind.FULL,
                anchor_time=now,
                counted_since_anchor_ah=0.0,
                uncounted_at_anchor_s=state.uncounted_s,
                low_reference=None,
            )
        # One sync per end-of-charge episode, whatever triggered it.
        self._state = replace(state, eoc_synced=state.eoc_since is not None)
        sigma = soc_band.FULL_SYNC_SIGMA if learn else soc_band.OPERATOR_FULL_SIGMA
        self._reset_band(100.0, sigma, now)
        return _sync_event(now, before, 100.0, reason)

    def _restart_full_reference(self, now: float, *, learn: bool) -> None:
        """Learn the offset from the charge counted since the previous full sync (ideally
        nothing: full to full), then make this sync the reference. An operator's mark-full is
        no reference: learning waits for the next real one."""
        s = self._state
        if learn and self.settings.learn_offset and s.full_reference_time is not None:
            elapsed = now - s.full_reference_time
            lost = s.uncounted_s - s.uncounted_at_full_s
            if lost <= MAX_UNCOUNTED_FRACTION * elapsed:
                self._learn_offset(s.counted_since_full_ah, elapsed)
        self._state = replace(
            self._state,
            full_reference_time=now if learn else None,
            counted_since_full_ah=0.0,
            uncounted_at_full_s=self._state.uncounted_s,
        )

    def _learn_offset(self, counted_ah: float, elapsed_s: float) -> None:
        """A scalar Kalman step: the span's residual against the offset's own uncertainty."""
        if not MIN_LEARNING_INTERVAL_S <= elapsed_s <= MAX_LEARNING_INTERVAL_S:
            return
        residual_a = counted_ah / (elapsed_s / SECONDS_PER_HOUR)
        capacity = self._state.capacity_ah
        # Two syncs each within FULL_SYNC_SIGMA points of full, over the span's hours: a short
        # span says little (it is mostly where the two syncs happened), a week a lot.
        span_sigma_a = (math.sqrt(2.0) * soc_band.FULL_SYNC_SIGMA / 100.0 * capacity) / (
            elapsed_s / SECONDS_PER_HOUR
        )
        prior = self._state.offset_sigma_a
        kalman_gain = prior**2 / (prior**2 + span_sigma_a**2)
        # At least the weight of a model-free follower (up to 0.5 from 48 h on): a sensor's
        # offset drifts with temperature and age faster than a learned-down sigma would admit.
        follow = OFFSET_FOLLOW_WEIGHT * min(1.0, elapsed_s / OFFSET_FULL_WEIGHT_INTERVAL_S)
        weight = min(OFFSET_MAX_WEIGHT, max(kalman_gain, follow))
        max_step = OFFSET_MAX_STEP_FRACTION * capacity
        step = min(max_step, max(-max_step, weight * residual_a))
        self.set_offset(self._state.offset_a + step)
        posterior = prior * span_sigma_a / math.hypot(prior, span_sigma_a)
        # A step cut short by its bounds left part of the residual unlearned.
        unlearned = abs(kalman_gain * residual_a - step)
        sigma = max(OFFSET_SIGMA_FLOOR_FRACTION * capacity, math.hypot(posterior, unlearned))
        self._state = replace(self._state, offset_sigma_a=sigma)

    # --- low anchors and readings ---------------------------------------------------------

    def _low_anchor(
        self, measurement: Measurement, current: float, now: float
    ) -> list[ControlEvent]:
        """LVD tripped: the configured empty SoC, or the loaded cell's reading corrected by
        the learned resistance, or nothing when that correction is not trusted."""
        configured = self.settings.empty_soc
        if configured is not None:
            before = self.raw_soc
            self._learn_capacity_from_full_reference(
                OcvReading(configured, CONFIGURED_EMPTY_SIGMA), now
            )
            self._state = replace(self._state, charge_ah=configured / 100.0 * self.capacity_ah)
            self._reset_band(configured, CONFIGURED_EMPTY_SIGMA, now)
            self._state = replace(self._state, anchor_kind=AnchorKind.EMPTY, anchor_time=now)
            return [_sync_event(now, before, configured, "lvd")]
        ohm = resistance.correction_ohm(self._state.resistance, min(0.0, current))
        if ohm is None:
            return []
        drop = -min(0.0, current) * ohm
        corrected = self.curve.reading(
            measurement.min_cell + drop,
            extra_volts_sigma=CORRECTION_SIGMA_FRACTION * drop,
            branch=self.branch,
        )
        if corrected is None or corrected.soc >= 50.0:
            return []
        return [self._combine(corrected, now, "lvd")]

    def _track_rest(self, current: float, now: float, gap: bool) -> _Episode:
        """Due on the sample where a rest has lasted rest_time_s (once per rest)."""
        s = self._state
        if abs(current) >= self.rest_current_a:
            return _Episode(since=None, done=False, due=False)
        since = now if s.rest_since is None or gap else s.rest_since
        due = not s.rest_corrected and now - since >= self.settings.rest_time_s
        return _Episode(since=since, done=s.rest_corrected or due, due=due)

    def _rest_reading(self, measurement: Measurement, now: float) -> list[ControlEvent]:
        """A rested pack: the weakest cell says how far from empty, the strongest how far from
        full; whichever the curve can read (the more certain if both)."""
        low = self.curve.reading(measurement.min_cell, branch=self.branch)
        high = self.curve.reading(measurement.max_cell, branch=self.branch)
        candidates = [
            reading
            for reading, is_low in ((low, True), (high, False))
            if reading is not None and (reading.soc < 50.0) == is_low
        ]
        if not candidates:
            return []
        reading = min(candidates, key=lambda r: r.sigma)
        if reading is low and reading.sigma <= CAPACITY_MAX_READING_SIGMA:
            self._learn_capacity_from_full_reference(reading, now)
        return [self._combine(reading, now, "ocv")]

    # --- capacity -------------------------------------------------------------------------

    def _learn_capacity_from_full_reference(self, reading: OcvReading, now: float) -> None:
        """Full, then down to a trusted low reading: the charge out measures the capacity.
        The reading then waits as the reference for the way back up."""
        s = self._state
        if s.full_reference_time is not None and self._whole_span(
            s.full_reference_time, s.uncounted_at_full_s, now
        ):
            self._learn_capacity(-s.counted_since_full_ah, reading, now - s.full_reference_time)
        self._state = replace(
            self._state,
            low_reference=LowReference(
                now, reading.soc, reading.sigma, uncounted_at_s=self._state.uncounted_s
            ),
        )

    def _learn_capacity_from_low_reference(self, now: float) -> None:
        low = self._state.low_reference
        if low is not None and self._whole_span(low.time, low.uncounted_at_s, now):
            self._learn_capacity(
                low.counted_since_ah, OcvReading(low.soc, low.sigma), now - low.time
            )

    def _whole_span(self, since: float, uncounted_at: float, now: float) -> bool:
        """Learning needs (nearly) every second of the span counted, and not too long ago."""
        elapsed = now - since
        lost = self._state.uncounted_s - uncounted_at
        return (
            MIN_LEARNING_INTERVAL_S <= elapsed <= MAX_LEARNING_INTERVAL_S
            and lost <= MAX_UNCOUNTED_FRACTION * elapsed
        )

    def _learn_capacity(self, span_ah: float, low: OcvReading, elapsed_s: float) -> None:
        """span_ah: charge counted between full and the low reading, positive."""
        if not self.settings.learn_capacity:
            return
        depth = 100.0 - low.soc
        if depth < CAPACITY_MIN_DEPTH_PCT or span_ah <= 0.0:
            return
        nominal = self.settings.capacity_ah
        measured = span_ah / (depth / 100.0)
        plausible_low, plausible_high = CAPACITY_PLAUSIBLE_RANGE
        if not plausible_low * nominal <= measured <= plausible_high * nominal:
            return
        s = self._state
        hours = elapsed_s / SECONDS_PER_HOUR
        measured_sigma = math.sqrt(
            (measured * low.sigma / depth) ** 2
            + (soc_band.GAIN_SIGMA * measured) ** 2
            + (s.offset_sigma_a * hours / (depth / 100.0)) ** 2
        )
        variance = s.capacity_sigma_ah**2 + (CAPACITY_DRIFT_FRACTION * nominal) ** 2
        gain = variance / (variance + measured_sigma**2)
        max_step = CAPACITY_MAX_STEP_FRACTION * nominal
        step = min(max_step, max(-max_step, gain * (measured - s.capacity_ah)))
        learned = min(
            CAPACITY_MAX_FRACTION * nominal,
            max(CAPACITY_MIN_FRACTION * nominal, s.capacity_ah + step),
        )
        sigma = max(
            CAPACITY_SIGMA_FLOOR_FRACTION * nominal,
            math.sqrt((1.0 - gain) * variance),
        )
        # The charge stays where it is on the SoC scale: a capacity is not a count.
        soc_fraction = s.charge_ah / s.capacity_ah
        self._state = replace(
            s, capacity_ah=learned, capacity_sigma_ah=sigma, charge_ah=soc_fraction * learned
        )


def initial_soc_state(settings: SocSettings) -> SocState:
    return _with_uncertainty_defaults(
        SocState(
            charge_ah=settings.initial_soc / 100.0 * settings.capacity_ah,
            capacity_ah=settings.capacity_ah,
            offset_a=0.0,
            band_soc=settings.initial_soc,
        ),
        settings,
    )


def time_estimates(
    soc: float,
    capacity_ah: float,
    *,
    present_a: float | None,
    smoothed_a: float | None,
    tiny_a: float,
) -> tuple[float | None, float | None]:
    """(time to full, time to empty), seconds, at the present current.

    The present current's sign decides which estimate exists, so neither contradicts the
    battery current shown beside it (the smoothed current lags a change of direction). The
    smoothed current gives the rate while it agrees in sign, so a one-second spike does not
    swing the estimate; otherwise the present one does. Full and not discharging is 0 s to
    full; empty and not charging is 0 s to empty. Within `tiny_a` of zero the battery is
    neither charging nor discharging. No current known yet: no estimate."""
    current = present_a if present_a is not None else smoothed_a
    if current is None:
        return None, None
    charging, discharging = current > tiny_a, current < -tiny_a
    rate = current
    if smoothed_a is not None and abs(smoothed_a) > tiny_a and smoothed_a * current > 0.0:
        rate = smoothed_a
    soc = min(100.0, max(0.0, soc))
    to_full: float | None = None
    if soc >= 100.0 and not discharging:
        to_full = 0.0
    elif charging:
        to_full = (100.0 - soc) / 100.0 * capacity_ah / rate * SECONDS_PER_HOUR
    to_empty: float | None = None
    if soc <= 0.0 and not charging:
        to_empty = 0.0
    elif discharging:
        to_empty = soc / 100.0 * capacity_ah / -rate * SECONDS_PER_HOUR
    return to_full, to_empty


def _with_uncertainty_defaults(state: SocState, settings: SocSettings) -> SocState:
    """Fill the uncertainties a new install (or a state saved before issue 16) lacks."""
    if state.capacity_sigma_ah <= 0.0:
        state = replace(state, capacity_sigma_ah=CAPACITY_SIGMA_FRACTION * settings.capacity_ah)
    if state.offset_sigma_a <= 0.0:
        state = replace(state, offset_sigma_a=OFFSET_SIGMA_FRACTION * state.capacity_ah)
    return state


def _sync_event(now: float, before: float, after: float, reason: str) -> ControlEvent:
    return ControlEvent(
        EventKind.SOC_SYNC,
        now,
        {"to": round(after, 3), "from": round(before, 3), "reason": reason},
    )
