"""State-of-charge estimator: coulomb counting with anchors, and learning between them.

How it beats plain coulomb counting (whose error grows with the shunt offset over time and
with the gain error over a cycle):

* Anchors. An end of charge sets 100 %: the highest cell at or above eoc for eoc_hold_s while
  the current has tapered to tail_current or less (a CV charger's absorption ending; not its
  bulk phase, which crosses eoc at full current when its absorption voltage is above eoc), or
  an HVD trip (PV switched straight onto the pack never tapers: it is cut at HVD). An LVD trip
  sets `empty_soc`. A rest in the steep parts of the LFP curve
  (below ~12 %, above ~97 %) blends the estimate halfway toward the OCV-derived SoC.
* Offset learning. Between two full anchors the true charge balance is zero (the counted
  charge in is already scaled by the coulombic efficiency), so whatever was counted, divided
  by the hours between them, is the residual current-sense offset. It is blended in with a
  weight growing with the interval (0.5 from 48 h up, none under 2 h: close anchors say more
  about where the sync happened than about the offset), by at most 0.1 % of capacity (in A)
  per anchor and to at most +-0.5 % of capacity in total. A gain error cancels over such an
  interval, so it does not leak into the offset.
* Capacity learning. The charge counted from full to empty (or empty to full) measures the
  capacity; it is blended in by 30 %, at most 5 % of nominal per anchor, kept within 70..120 %
  of nominal, and ignored outside 50..150 % (a missed anchor, not a capacity).

The count itself is kept unclamped (within -50..150 % of capacity) so that the anchors can
see how far it drifted; `soc` and `remaining_ah` are clamped for display.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from enum import StrEnum

from edge_agent.control.lfp_ocv import STEEP_ABOVE_SOC, STEEP_BELOW_SOC, soc_from_ocv
from edge_agent.control.model import ControlEvent, EventKind, Measurement
from edge_agent.control.settings import CellThresholds, SocSettings

SECONDS_PER_HOUR = 3600.0
# Without a hardware charge accumulator, a longer gap between samples is integrated over this
# much time only: the current in between is unknown, and guessing it would be worse.
MAX_INTEGRATION_GAP_S = 60.0

MIN_LEARNING_INTERVAL_S = 2 * 3600.0
MAX_LEARNING_INTERVAL_S = 14 * 24 * 3600.0
OFFSET_FULL_WEIGHT_INTERVAL_S = 48 * 3600.0
OFFSET_MAX_WEIGHT = 0.5
OFFSET_MAX_STEP_FRACTION = 0.001  # of capacity, amps per anchor
OFFSET_MAX_FRACTION = 0.005  # of capacity, amps in total

CAPACITY_BLEND = 0.3
CAPACITY_MAX_STEP_FRACTION = 0.05  # of nominal, per anchor
CAPACITY_MIN_FRACTION = 0.7
CAPACITY_MAX_FRACTION = 1.2
CAPACITY_PLAUSIBLE_RANGE = (0.5, 1.5)  # of nominal; outside it the measurement is discarded

MAX_UNCOUNTED_FRACTION = 0.01  # of an anchor span; more lost time and nothing is learned

OCV_BLEND = 0.5
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


@dataclass(frozen=True, slots=True)
class SocUpdate:
    events: tuple[ControlEvent, ...]
    battery_delta_ah: float  # offset-corrected charge into the battery (before efficiency)
    full_sync: bool


class SocEstimator:
    def __init__(
        self, settings: SocSettings, cells: CellThresholds, state: SocState | None = None
    ) -> None:
        self.settings = settings
        self.cells = cells
        self._state = state if state is not None else initial_soc_state(settings)

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
    def remaining_ah(self) -> float:
        return self.soc / 100.0 * self._state.capacity_ah

    @property
    def rest_current_a(self) -> float:
        configured = self.settings.rest_current
        return configured if configured > 0.0 else self._state.capacity_ah / 100.0

    def time_to_full_s(self) -> float | None:
        current = self._state.current_ema_a
        if current is None or current <= self._tiny_current():
            return None
        missing = max(0.0, self._state.capacity_ah - self.remaining_ah)
        return missing / current * SECONDS_PER_HOUR

    def time_to_empty_s(self) -> float | None:
        current = self._state.current_ema_a
        if current is None or current >= -self._tiny_current():
            return None
        return self.remaining_ah / -current * SECONDS_PER_HOUR

    def update(
        self, measurement: Measurement, interval: Interval, *, hvd_tripped: bool, lvd_tripped: bool
    ) -> SocUpdate:
        """Count one good sample, then apply whichever anchor or correction it brings."""
        now = measurement.timestamp
        current = measurement.battery_current - self._state.offset_a
        delta = interval.charge_ah - self._state.offset_a * interval.counted_s / SECONDS_PER_HOUR
        self._count(delta, interval.uncounted_s)
        self._smooth_current(current, now)
        eoc_due = self._track_end_of_charge(measurement, current, now, interval.gap)
        rest_due = self._track_rest(current, now, interval.gap)
        events: list[ControlEvent] = []
        full_sync = False
        if lvd_tripped:
            events.append(self._anchor_empty(now, "lvd"))
        elif hvd_tripped or eoc_due:
            events.append(self._anchor_full(now, "hvd" if hvd_tripped else "eoc", learn=True))
            full_sync = True
        elif rest_due:
            events.extend(self._ocv_correction(measurement, now))
        self._state = replace(self._state, last_sample_time=now)
        return SocUpdate(tuple(events), battery_delta_ah=delta, full_sync=full_sync)

    @property
    def empty_soc(self) -> float:
        """SoC at the low anchor: configured, or the resting-OCV SoC of the LVD voltage."""
        if self.settings.empty_soc is not None:
            return self.settings.empty_soc
        return soc_from_ocv(self.cells.lvd)

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
        )

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

    def _count(self, delta_ah: float, uncounted_s: float) -> None:
        counted = delta_ah * self.settings.coulombic_efficiency if delta_ah > 0 else delta_ah
        capacity = self._state.capacity_ah
        slack = COUNT_SLACK_FRACTION * capacity
        charge = min(capacity + slack, max(-slack, self._state.charge_ah + counted))
        self._state = replace(
            self._state,
            charge_ah=charge,
            counted_since_anchor_ah=self._state.counted_since_anchor_ah + counted,
            counted_since_full_ah=self._state.counted_since_full_ah + counted,
            uncounted_s=self._state.uncounted_s + uncounted_s,
        )

    def _smooth_current(self, current: float, now: float) -> None:
        previous = self._state.current_ema_a
        last_time = self._state.last_sample_time
        if previous is None or last_time is None:
            smoothed = current
        else:
            weight = 1.0 - math.exp(-max(0.0, now - last_time) / CURRENT_SMOOTHING_TAU_S)
            smoothed = previous + weight * (current - previous)
        self._state = replace(self._state, current_ema_a=smoothed)

    def _tiny_current(self) -> float:
        return max(TINY_CURRENT_FLOOR_A, TINY_CURRENT_FRACTION * self._state.capacity_ah)

    # --- anchors --------------------------------------------------------------------------

    def _track_end_of_charge(
        self, measurement: Measurement, current: float, now: float, gap: bool
    ) -> bool:
        """True on the sample where end of charge has held for eoc_hold_s (once per episode).

        A cell at eoc says "full" only once the current has tapered: under a bulk current the
        cell's resistance and polarisation lift it past eoc well before the pack is full."""
        tail = self.settings.tail_current
        at_eoc = measurement.max_cell >= self.cells.eoc and -tail < current <= tail
        s = self._state
        if not at_eoc:
            self._state = replace(s, eoc_since=None, eoc_synced=False)
            return False
        since = now if s.eoc_since is None or gap else s.eoc_since
        due = not s.eoc_synced and now - since >= self.settings.eoc_hold_s
        self._state = replace(s, eoc_since=since)
        return due

    def _anchor_full(self, now: float, reason: str, *, learn: bool) -> ControlEvent:
        event = self._anchor(AnchorKind.FULL, now, reason, learn=learn)
        # One sync per end-of-charge episode, whatever triggered it.
        self._state = replace(self._state, eoc_synced=self._state.eoc_since is not None)
        return event

    def _anchor_empty(self, now: float, reason: str) -> ControlEvent:
        return self._anchor(AnchorKind.EMPTY, now, reason, learn=True)

    def _anchor(self, kind: AnchorKind, now: float, reason: str, *, learn: bool) -> ControlEvent:
        """Set the SoC to the anchor's level. A repeat of the same anchor soon after the last
        sync (PV cycling on and off at HVD) is not a new learning reference: the charge
        counted since the first one keeps running, so every reference sits at the same point
        of the charge (e.g. the first EOC of the day) and only the offset separates them."""
        before = self.raw_soc
        s = self._state
        repeat = (
            s.anchor_kind is kind
            and s.last_sync_time is not None
            and now - s.last_sync_time < MIN_LEARNING_INTERVAL_S
        )
        if learn and not repeat:
            self._learn_between_anchors(kind, now)
        if kind is AnchorKind.FULL and not repeat:
            self._restart_full_reference(now, learn=learn)
        level = 100.0 if kind is AnchorKind.FULL else self.empty_soc
        state = replace(
            self._state, charge_ah=level / 100.0 * self._state.capacity_ah, last_sync_time=now
        )
        if not repeat:
            state = replace(
                state,
                anchor_kind=kind,
                anchor_time=now,
                counted_since_anchor_ah=0.0,
                uncounted_at_anchor_s=state.uncounted_s,
            )
        self._state = state
        return _sync_event(now, before, level, reason)

    def _learn_between_anchors(self, kind: AnchorKind, now: float) -> None:
        s = self._state
        if s.anchor_time is None or s.anchor_kind is AnchorKind.NONE:
            return
        elapsed = now - s.anchor_time
        if not self._counted_whole_span(elapsed):
            return
        if kind is not s.anchor_kind and self.settings.learn_capacity:
            span_ah = (
                s.counted_since_anchor_ah if kind is AnchorKind.FULL else -s.counted_since_anchor_ah
            )
            self._learn_capacity(span_ah, elapsed)

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

    def _counted_whole_span(self, elapsed_s: float) -> bool:
        """Learning needs (nearly) every second since the anchor counted."""
        lost = self._state.uncounted_s - self._state.uncounted_at_anchor_s
        return lost <= MAX_UNCOUNTED_FRACTION * elapsed_s

    def _learn_offset(self, counted_ah: float, elapsed_s: float) -> None:
        if not MIN_LEARNING_INTERVAL_S <= elapsed_s <= MAX_LEARNING_INTERVAL_S:
            return
        residual_a = counted_ah / (elapsed_s / SECONDS_PER_HOUR)
        weight = min(OFFSET_MAX_WEIGHT, elapsed_s / OFFSET_FULL_WEIGHT_INTERVAL_S)
        capacity = self._state.capacity_ah
        max_step = OFFSET_MAX_STEP_FRACTION * capacity
        step = min(max_step, max(-max_step, weight * residual_a))
        self.set_offset(self._state.offset_a + step)

    def _learn_capacity(self, counted_ah: float, elapsed_s: float) -> None:
        """counted_ah: charge counted across the full span, positive."""
        if not MIN_LEARNING_INTERVAL_S <= elapsed_s <= MAX_LEARNING_INTERVAL_S:
            return
        span = (100.0 - self.empty_soc) / 100.0
        if span <= 0.0:
            return
        nominal = self.settings.capacity_ah
        measured = counted_ah / span
        low, high = CAPACITY_PLAUSIBLE_RANGE
        if not low * nominal <= measured <= high * nominal:
            return
        current = self._state.capacity_ah
        max_step = CAPACITY_MAX_STEP_FRACTION * nominal
        step = min(max_step, max(-max_step, CAPACITY_BLEND * (measured - current)))
        learned = min(
            CAPACITY_MAX_FRACTION * nominal, max(CAPACITY_MIN_FRACTION * nominal, current + step)
        )
        self._state = replace(self._state, capacity_ah=learned)

    # --- OCV ------------------------------------------------------------------------------

    def _track_rest(self, current: float, now: float, gap: bool) -> bool:
        """True on the sample where a rest has lasted rest_time_s (once per rest)."""
        s = self._state
        if abs(current) >= self.rest_current_a:
            self._state = replace(s, rest_since=None, rest_corrected=False)
            return False
        since = now if s.rest_since is None or gap else s.rest_since
        due = not s.rest_corrected and now - since >= self.settings.rest_time_s
        self._state = replace(s, rest_since=since, rest_corrected=s.rest_corrected or due)
        return due

    def _ocv_correction(self, measurement: Measurement, now: float) -> list[ControlEvent]:
        # The weakest cell defines empty (LVD acts on it), the strongest full (EOC and HVD).
        low_end = soc_from_ocv(measurement.min_cell)
        high_end = soc_from_ocv(measurement.max_cell)
        if low_end < STEEP_BELOW_SOC:
            target = low_end
        elif high_end > STEEP_ABOVE_SOC:
            target = high_end
        else:
            return []
        before = self.raw_soc
        corrected = before + OCV_BLEND * (target - before)
        self._state = replace(self._state, charge_ah=corrected / 100.0 * self._state.capacity_ah)
        return [_sync_event(now, before, corrected, "ocv")]


def initial_soc_state(settings: SocSettings) -> SocState:
    return SocState(
        charge_ah=settings.initial_soc / 100.0 * settings.capacity_ah,
        capacity_ah=settings.capacity_ah,
        offset_a=0.0,
    )


def _sync_event(now: float, before: float, after: float, reason: str) -> ControlEvent:
    return ControlEvent(
        EventKind.SOC_SYNC,
        now,
        {"to": round(after, 3), "from": round(before, 3), "reason": reason},
    )
