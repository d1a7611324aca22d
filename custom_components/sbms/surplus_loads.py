"""Surplus loads: which loads to switch on while PV would be thrown away, and off again when the
battery pays for them; decided without Home Assistant (issue 19, the mirror of load shedding).

Pure and deterministic, like `load_shedding.py`: the caller passes the time, the box's condition
and what it sees of each load; `decide` returns the switching to do and every load's new
runtime. `surplus_manager.py` gathers the inputs and carries out the actions.

Surplus is what the agent reports (`state.diversion`): a heat path conducts, or the arrays its
battery path disconnected because the battery is full could give more than 0 W. A box without
a diversion reports neither; there a full battery holding PV off (the `hvd` or `max_soc`
interlock) is the surplus.

Rules, in order:
- Nothing is switched while surplus loads are disabled (what is on stays on).
- Without data (the agent unavailable, SoC or the battery's power unknown) nothing comes on,
  and a load of ours that is on counts as if the battery discharged beyond its limit: it goes
  off after its discharge time, as below, with the reason "no data". Left on blind, a surplus
  load could run the pack down to the LVD, which cuts every load of the box, not only it.
- A load is switched off, lowest priority first, when
  - SoC falls below its `min_soc`: at once, whatever its minimum on time (the backstop), or
  - the battery has discharged more than its `max_discharge_w` for `discharge_s` without a
    break: one load per decision, after its minimum on time; the discharge timers of the loads
    still on then start again, so the next load goes only if switching this one off was not
    enough.
- A load is switched on, highest priority first and one per decision, while there is surplus,
  SoC is at or above its `min_soc`, the battery is not discharging more than its
  `max_discharge_w`, its minimum off time has passed, and no surplus load was switched (on or
  off) in the last `settle_s`, so each load's effect on the battery is seen before the next.
  A load waits while one of higher priority is waiting to come on.
- Only loads this module switched on are switched off; a load someone else switched on is left
  alone. A load this module switched on that someone switches off is "overridden": left off
  until the surplus ends (the next surplus cycle may switch it on again).
- A load is either shed-able (load shedding) or a surplus load, never both: the configuration
  forms refuse it (config_flow.py), so the two never fight over one switch.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Final

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

# A box's discharge beyond this is no setting but a mistake (the agent allows 1000 A).
DISCHARGE_W_MAX: Final = 100_000.0
DISCHARGE_TIME_MAX_S: Final = 3600.0
# Between two switchings of surplus loads: the battery's answer to one load is seen before the
# next (an HVD release, the heat path letting go) takes a few samples.
SETTLE_S: Final = 60.0


class SurplusStatus(StrEnum):
    """What surplus loads do with one load (its sensor's state)."""

    IDLE = "idle"  # off, no surplus
    WAITING = "waiting"  # surplus, but a minimum off time, a higher priority or settling holds it
    ON = "on"  # switched on by surplus loads
    OVERRIDDEN = "overridden"  # switched off by hand while on surplus: left off until it ends


class SurplusReason(StrEnum):
    """Why a load was switched (an attribute and the logbook's words)."""

    SURPLUS = "surplus"
    DISCHARGE = "discharge"
    SOC_BELOW = "soc_below"
    NO_DATA = "no_data"


@dataclass(frozen=True, kw_only=True, slots=True)
class SurplusLoadSettings(SwitchedLoad):
    """One surplus load as the user configured it."""

    min_soc: float
    max_discharge_w: float
    discharge_s: float


def settings_errors(
    *,
    priority: float,
    min_soc: float,
    max_discharge_w: float,
    discharge_s: float,
    min_on_s: float,
    min_off_s: float,
) -> dict[str, str]:
    """Form field -> error key for a bad value (empty when the settings are usable)."""
    errors = priority_errors(priority)
    if not SOC_MIN <= min_soc < SOC_MAX:
        errors["min_soc"] = "invalid_soc"
    if not 0 <= max_discharge_w <= DISCHARGE_W_MAX:
        errors["max_discharge_power"] = "invalid_discharge_power"
    if not 0 <= discharge_s <= DISCHARGE_TIME_MAX_S:
        errors["discharge_time"] = "invalid_discharge_time"
    return errors | min_time_errors(min_off_s=min_off_s, min_on_s=min_on_s)


@dataclass(frozen=True, kw_only=True, slots=True)
class SurplusRuntime(SwitchedRuntime[SurplusStatus, SurplusReason]):
    """What surplus loads remember about one load (switched_loads.py). `switched_at`: when we
    last switched it (the minimum off time and the settling count from there).
    `discharging_since`: when the battery began discharging beyond this load's limit, None
    while it does not."""

    REASON = SurplusReason

    status: SurplusStatus = SurplusStatus.IDLE
    discharging_since: float | None = None


@dataclass(frozen=True, kw_only=True, slots=True)
class SurplusConditions(SwitchConditions):
    """The inputs of one decision (switched_loads.py), and surplus loads' own. `battery_power`:
    W, positive while charging (None: no good measurement)."""

    surplus: bool
    battery_power: float | None
    settle_s: float = SETTLE_S


class SurplusAction(SwitchAction[SurplusReason]):
    """Switch one surplus load on or off."""

    __slots__ = ()


class SurplusDecision(SwitchDecision[SurplusAction, SurplusRuntime]):
    """Offs first, lowest priority first; then at most one on."""

    __slots__ = ()


def decide(
    loads: Sequence[SurplusLoadSettings],
    runtime: Mapping[str, SurplusRuntime],
    conditions: SurplusConditions,
) -> SurplusDecision:
    """Observe the loads, then switch off and on what the conditions call for."""
    states = {
        load.load_id: _observe(runtime.get(load.load_id, SurplusRuntime()), load, conditions)
        for load in loads
    }
    if not conditions.enabled:
        # Disabled: forget what was switched, switch nothing (what is on stays on).
        states = {
            key: SurplusRuntime(observed_on=s.observed_on, changed_at=s.changed_at)
            for key, s in states.items()
        }
        return SurplusDecision(actions=(), runtime=states, next_check=None)
    for load in loads:
        states[load.load_id] = _track_discharge(states[load.load_id], load, conditions)
    waits: list[float] = []
    offs = _switch_off(loads, states, conditions, waits)
    ons = [] if offs or _blind(conditions) else _switch_on(loads, states, conditions, waits)
    if not conditions.surplus:
        for load in loads:  # the surplus ended: an override ends with it
            if states[load.load_id].status is SurplusStatus.OVERRIDDEN:
                states[load.load_id] = replace(
                    states[load.load_id], status=SurplusStatus.IDLE, reason=None
                )
    return SurplusDecision(
        actions=(*offs, *ons), runtime=states, next_check=min(waits) if waits else None
    )


def _observe(
    state: SurplusRuntime, load: SurplusLoadSettings, conditions: SurplusConditions
) -> SurplusRuntime:
    """Take in the load's present on/off; a load we switched on seen going off was overridden."""
    seen = conditions.loads_on.get(load.load_id)
    if seen is None or seen == state.observed_on:
        return state
    was_on = state.observed_on is True
    state = replace(state, observed_on=seen, changed_at=conditions.now)
    if not seen and was_on and state.status is SurplusStatus.ON:
        return replace(state, status=SurplusStatus.OVERRIDDEN, discharging_since=None)
    return state


def _blind(conditions: SurplusConditions) -> bool:
    """No data to confirm a surplus or see what the loads cost the battery."""
    return not conditions.data_ok or conditions.battery_power is None


def _discharging(load: SurplusLoadSettings, conditions: SurplusConditions) -> bool:
    """Whether the battery discharges beyond the load's limit; blind counts as discharging."""
    power = conditions.battery_power
    if power is None or not conditions.data_ok:
        return True
    return -power > load.max_discharge_w


def _track_discharge(
    state: SurplusRuntime, load: SurplusLoadSettings, conditions: SurplusConditions
) -> SurplusRuntime:
    """Only a load of ours that is on times the discharge (no data counts as discharging)."""
    if state.status is not SurplusStatus.ON:
        return replace(state, discharging_since=None)
    if not _discharging(load, conditions):
        return replace(state, discharging_since=None)
    if state.discharging_since is None:
        return replace(state, discharging_since=conditions.now)
    return state


def _switch_off(
    loads: Sequence[SurplusLoadSettings],
    states: dict[str, SurplusRuntime],
    conditions: SurplusConditions,
    waits: list[float],
) -> list[SurplusAction]:
    """Lowest priority first: every load of ours below its SoC floor, and at most one whose
    discharge limit held for its time."""
    actions: list[SurplusAction] = []
    now = conditions.now
    soc = conditions.soc
    discharge_off = False
    for load in sorted(loads, key=lambda item: item.priority):
        state = states[load.load_id]
        if state.status is not SurplusStatus.ON or state.observed_on is False:
            continue
        reason: SurplusReason | None = None
        if soc is not None and soc < load.min_soc:
            reason = SurplusReason.SOC_BELOW
        elif state.discharging_since is not None and not discharge_off:
            due = state.discharging_since + load.discharge_s
            on_until = (state.changed_at or now) + load.min_on_s
            if now < due:
                waits.append(due)
            elif now < on_until:
                waits.append(on_until)
                discharge_off = True  # the lowest priority goes first: the others wait for it
            else:
                blind = _blind(conditions)
                reason = SurplusReason.NO_DATA if blind else SurplusReason.DISCHARGE
                discharge_off = True
        if reason is None:
            continue
        states[load.load_id] = replace(
            state,
            status=SurplusStatus.IDLE,
            reason=reason,
            observed_on=False,  # expected: its state arriving is no change by hand
            changed_at=now,
            switched_at=now,
            discharging_since=None,
        )
        actions.append(
            SurplusAction(
                load_id=load.load_id, entity_id=load.entity_id, turn_on=False, reason=reason
            )
        )
    if any(action.reason is not SurplusReason.SOC_BELOW for action in actions):
        # The battery's answer to this switch-off is awaited before the next load goes.
        for load_id, state in states.items():
            if state.discharging_since is not None:
                states[load_id] = replace(state, discharging_since=now)
    return actions


def _switch_on(
    loads: Sequence[SurplusLoadSettings],
    states: dict[str, SurplusRuntime],
    conditions: SurplusConditions,
    waits: list[float],
) -> list[SurplusAction]:
    """At most one load, the highest priority that may come on."""
    now = conditions.now
    switched = [s.switched_at for s in states.values() if s.switched_at is not None]
    settled_at = max(switched) + conditions.settle_s if switched else now
    blocked = False
    actions: list[SurplusAction] = []
    for load in sorted(loads, key=lambda item: item.priority, reverse=True):
        state = states[load.load_id]
        if state.status in (SurplusStatus.ON, SurplusStatus.OVERRIDDEN):
            continue
        seen = conditions.loads_on.get(load.load_id)
        soc = conditions.soc
        wanted = (
            conditions.surplus
            and seen is False
            and soc is not None
            and soc >= load.min_soc
            and not _discharging(load, conditions)
        )
        if not wanted:
            if state.status is SurplusStatus.WAITING:
                states[load.load_id] = replace(state, status=SurplusStatus.IDLE)
            continue
        # From when we last switched it (off); a load we never switched has no time to wait.
        off_until = now if state.switched_at is None else state.switched_at + load.min_off_s
        if blocked or actions or now < off_until or now < settled_at:
            states[load.load_id] = replace(state, status=SurplusStatus.WAITING)
            waits.extend(t for t in (off_until, settled_at) if t > now)
            blocked = True
            continue
        states[load.load_id] = replace(
            state,
            status=SurplusStatus.ON,
            reason=SurplusReason.SURPLUS,
            observed_on=True,  # expected: seen off after this, someone switched it off
            changed_at=now,
            switched_at=now,
            discharging_since=None,
        )
        actions.append(
            SurplusAction(
                load_id=load.load_id,
                entity_id=load.entity_id,
                turn_on=True,
                reason=SurplusReason.SURPLUS,
            )
        )
    return actions
