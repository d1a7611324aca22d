"""Optional-load shedding: which loads to switch off or back on, decided without Home Assistant.

Pure and deterministic: the caller passes the time, the battery's condition and what it sees of
each load; `decide` returns the switching to do and every load's new runtime state. The Home
Assistant side (`shedding_manager.py`) only gathers the inputs and carries out the actions.

Rules, in the order they are checked for each load:
- Nothing is switched while shedding is disabled, the agent is unavailable or SoC is unknown:
  a load switched on without a known SoC could drive the pack into LVD, so what was shed stays
  off until the data returns (and a person can always switch it on by hand).
- A load is shed when SoC falls below its `shed_below`, the agent raises its low-SoC alarm, or
  the LVD trips. Its minimum on time is respected, except on an LVD trip, which sheds at once.
- A shed load comes back only when SoC is above its `restore_above` (strictly higher than
  `shed_below`: the hysteresis), no alarm or LVD holds, its minimum off time has passed and no
  load of higher priority is still waiting to come back.
- With `pessimistic` on, the SoC compared with `shed_below` and `restore_above` is the low side
  of the agent's band, max(0, SoC - uncertainty): loads go off earlier and come back later
  while the estimate is unsure. Without an uncertainty (an older agent, a stock SBMS0) the SoC
  is used as it is.
- Lower priority numbers go off first and come back last.
- A shed load that someone switches back on is "overridden": it is left alone until the next
  restore cycle (SoC above its restore level), or until a new LVD trip.
- Only loads this module switched off are switched back on; a load that was already off when
  shedding began stays off.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum

from .switched_loads import (
    SOC_MAX,
    SOC_MIN,
    SwitchAction,
    SwitchConditions,
    SwitchDecision,
    SwitchedLoad,
    SwitchedRuntime,
    min_time_errors,
    priority_errors,
)


class LoadStatus(StrEnum):
    """What shedding is doing with one load (the per-load sensor's state)."""

    NORMAL = "normal"
    SHED = "shed"
    WAITING_TO_RESTORE = "waiting_to_restore"
    OVERRIDDEN = "overridden"


class Reason(StrEnum):
    """Why a load was shed or restored (shown as an attribute and in the logbook)."""

    SOC_BELOW = "soc_below"
    LOW_SOC_ALARM = "low_soc_alarm"
    LVD_TRIP = "lvd_trip"
    SOC_ABOVE = "soc_above"


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadSettings(SwitchedLoad):
    """One optional load as the user configured it."""

    shed_below: float
    restore_above: float


def settings_errors(
    *, priority: float, shed_below: float, restore_above: float, min_off_s: float, min_on_s: float
) -> dict[str, str]:
    """Form field -> error key for a bad combination (empty when the settings are usable)."""
    errors = priority_errors(priority)
    if not SOC_MIN <= shed_below < SOC_MAX:
        errors["shed_below"] = "invalid_soc"
    if not SOC_MIN < restore_above <= SOC_MAX:
        errors["restore_above"] = "invalid_soc"
    elif "shed_below" not in errors and restore_above <= shed_below:
        errors["restore_above"] = "restore_not_above_shed"
    return errors | min_time_errors(min_off_s=min_off_s, min_on_s=min_on_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class LoadRuntime(SwitchedRuntime[LoadStatus, Reason]):
    """What shedding remembers about one load (switched_loads.py); `switched_at` is when
    shedding last switched it off, the start of its minimum off time."""

    REASON = Reason

    status: LoadStatus = LoadStatus.NORMAL

    @property
    def shed(self) -> bool:
        """Switched off by shedding and not yet back (overridden loads are not)."""
        return self.status in (LoadStatus.SHED, LoadStatus.WAITING_TO_RESTORE)


@dataclass(frozen=True, kw_only=True, slots=True)
class Conditions(SwitchConditions):
    """The inputs of one decision (switched_loads.py), and shedding's own.

    `lvd_since` is when the present LVD trip began (None: no LVD). `soc_uncertainty` is half the
    agent's ~95 % band around `soc` (None: not known); `pessimistic` decides on its low side.
    """

    low_soc_alarm: bool = False
    lvd_since: float | None = None
    soc_uncertainty: float | None = None
    pessimistic: bool = False

    @property
    def decision_soc(self) -> float | None:
        """The SoC the levels are compared with: the band's low side when pessimistic."""
        if self.soc is None or not self.pessimistic or self.soc_uncertainty is None:
            return self.soc
        return max(SOC_MIN, self.soc - self.soc_uncertainty)


class Action(SwitchAction[Reason]):
    """Shed (off) or restore (on) one load."""

    __slots__ = ()


class Decision(SwitchDecision[Action, LoadRuntime]):
    """Offs first, lowest priority first; then ons, highest first."""

    __slots__ = ()


def decide(
    loads: Sequence[LoadSettings], runtime: Mapping[str, LoadRuntime], conditions: Conditions
) -> Decision:
    """Observe the loads, then shed and restore what the conditions call for."""
    states = {
        load.load_id: _observe(runtime.get(load.load_id, LoadRuntime()), load, conditions)
        for load in loads
    }
    if not conditions.enabled:
        # Switched off: forget what was shed, switch nothing (what is off stays off).
        states = {
            key: LoadRuntime(observed_on=s.observed_on, changed_at=s.changed_at)
            for key, s in states.items()
        }
        return Decision(actions=(), runtime=states, next_check=None)
    if not conditions.data_ok:
        return Decision(actions=(), runtime=states, next_check=None)
    offs, waits_off = _shed(loads, states, conditions)
    ons, waits_on = _restore(loads, states, conditions)
    waits = [*waits_off, *waits_on]
    return Decision(actions=(*offs, *ons), runtime=states, next_check=min(waits) if waits else None)


def _observe(state: LoadRuntime, load: LoadSettings, conditions: Conditions) -> LoadRuntime:
    """Take in the load's present on/off; a shed load seen going on was overridden by hand."""
    seen = conditions.loads_on.get(load.load_id)
    if seen is None or seen == state.observed_on:
        return state
    was_off = state.observed_on is False
    state = replace(state, observed_on=seen, changed_at=conditions.now)
    if seen and was_off and state.shed:
        return replace(state, status=LoadStatus.OVERRIDDEN)
    return state


def _shed_cause(load: LoadSettings, conditions: Conditions) -> Reason | None:
    if conditions.lvd_since is not None:
        return Reason.LVD_TRIP
    if conditions.low_soc_alarm:
        return Reason.LOW_SOC_ALARM
    soc = conditions.decision_soc
    if soc is not None and soc < load.shed_below:
        return Reason.SOC_BELOW
    return None


def _restorable(load: LoadSettings, conditions: Conditions) -> bool:
    soc = conditions.decision_soc
    return (
        conditions.lvd_since is None
        and not conditions.low_soc_alarm
        and soc is not None
        and soc > load.restore_above
    )


def _overrides_override(state: LoadRuntime, cause: Reason, conditions: Conditions) -> bool:
    """Only an LVD trip that began after the person switched the load on beats the override."""
    if cause is not Reason.LVD_TRIP or conditions.lvd_since is None:
        return False
    return state.changed_at is None or state.changed_at <= conditions.lvd_since


def _shed(
    loads: Sequence[LoadSettings], states: dict[str, LoadRuntime], conditions: Conditions
) -> tuple[list[Action], list[float]]:
    """Switch off, lowest priority first, every running load its cause reaches."""
    actions: list[Action] = []
    waits: list[float] = []
    now = conditions.now
    for load in sorted(loads, key=lambda item: item.priority):
        state = states[load.load_id]
        cause = _shed_cause(load, conditions)
        if cause is None:
            continue
        if state.shed:
            if state.status is LoadStatus.WAITING_TO_RESTORE:
                states[load.load_id] = replace(state, status=LoadStatus.SHED)
            continue
        if state.status is LoadStatus.OVERRIDDEN and not _overrides_override(
            state, cause, conditions
        ):
            continue
        if state.observed_on is not True:
            continue  # off already, or unknown: nothing to take away
        on_until = (state.changed_at or now) + load.min_on_s
        if cause is not Reason.LVD_TRIP and now < on_until:
            waits.append(on_until)
            continue
        states[load.load_id] = replace(
            state, status=LoadStatus.SHED, reason=cause, switched_at=now, changed_at=now
        )
        actions.append(
            Action(load_id=load.load_id, entity_id=load.entity_id, turn_on=False, reason=cause)
        )
    return actions, waits


def _restore(
    loads: Sequence[LoadSettings], states: dict[str, LoadRuntime], conditions: Conditions
) -> tuple[list[Action], list[float]]:
    """Switch back on, highest priority first, the shed loads whose restore level is passed.

    A load waits while one of higher priority is still shed, so loads return in the reverse of
    the order they went.
    """
    actions: list[Action] = []
    waits: list[float] = []
    highest_still_shed: int | None = None  # iterating downwards, the first one seen
    now = conditions.now
    for load in sorted(loads, key=lambda item: item.priority, reverse=True):
        state = states[load.load_id]
        restorable = _restorable(load, conditions)
        if state.status is LoadStatus.OVERRIDDEN:
            if restorable:  # the restore cycle ends the override
                states[load.load_id] = replace(state, status=LoadStatus.NORMAL, reason=None)
            continue
        if not state.shed:
            continue
        if not restorable:
            states[load.load_id] = replace(state, status=LoadStatus.SHED)
            highest_still_shed = highest_still_shed or load.priority
            continue
        off_until = (state.switched_at or now) + load.min_off_s
        blocked = highest_still_shed is not None and highest_still_shed > load.priority
        seen = conditions.loads_on.get(load.load_id)  # now, not as last remembered
        if now < off_until or blocked or seen is None:
            states[load.load_id] = replace(state, status=LoadStatus.WAITING_TO_RESTORE)
            if now < off_until:
                waits.append(off_until)
            if seen is not None:  # an unavailable load must not hold the others back
                highest_still_shed = highest_still_shed or load.priority
            continue
        states[load.load_id] = replace(
            state, status=LoadStatus.NORMAL, reason=Reason.SOC_ABOVE, changed_at=now
        )
        if not seen:
            actions.append(
                Action(
                    load_id=load.load_id,
                    entity_id=load.entity_id,
                    turn_on=True,
                    reason=Reason.SOC_ABOVE,
                )
            )
    return actions, waits
