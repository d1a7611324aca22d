"""The pure load-shedding decisions (custom_components/sbms/load_shedding.py), without Home
Assistant: scenarios first, then invariants over random SoC walks (hypothesis)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.sbms.load_shedding import (
    Action,
    Conditions,
    Decision,
    LoadRuntime,
    LoadSettings,
    LoadStatus,
    Reason,
    decide,
    settings_errors,
)

HEATER = LoadSettings(
    load_id="heater", entity_id="switch.heater", priority=1, shed_below=40, restore_above=60
)
PUMP = LoadSettings(
    load_id="pump", entity_id="switch.pump", priority=5, shed_below=25, restore_above=45
)


@dataclass
class World:
    """Loads that follow the actions at once, and the shedding runtime between decisions."""

    loads: tuple[LoadSettings, ...]
    on: dict[str, bool | None] = field(default_factory=dict)
    runtime: dict[str, LoadRuntime] = field(default_factory=dict)
    now: float = 1000.0

    def step(
        self,
        soc: float | None,
        *,
        advance: float = 0.0,
        available: bool = True,
        enabled: bool = True,
        alarm: bool = False,
        lvd_since: float | None = None,
        uncertainty: float | None = None,
        pessimistic: bool = False,
    ) -> Decision:
        self.now += advance
        decision = decide(
            self.loads,
            self.runtime,
            Conditions(
                now=self.now,
                enabled=enabled,
                available=available,
                soc=soc,
                low_soc_alarm=alarm,
                lvd_since=lvd_since,
                loads_on=dict(self.on),
                soc_uncertainty=uncertainty,
                pessimistic=pessimistic,
            ),
        )
        self.runtime = decision.runtime
        for action in decision.actions:
            self.on[action.load_id] = action.turn_on
        return decision

    def status(self, load_id: str) -> LoadStatus:
        return self.runtime[load_id].status


def switched(decision: Decision) -> list[tuple[str, bool]]:
    return [(action.load_id, action.turn_on) for action in decision.actions]


def world(*loads: LoadSettings, on: bool = True) -> World:
    return World(loads=loads, on=dict.fromkeys((load.load_id for load in loads), on))


def test_soc_walking_down_sheds_lowest_priority_first_and_up_restores_in_reverse() -> None:
    w = world(HEATER, PUMP)
    assert switched(w.step(70)) == []
    assert switched(w.step(39)) == [("heater", False)]
    assert w.runtime["heater"].reason is Reason.SOC_BELOW
    assert switched(w.step(30)) == []
    assert switched(w.step(24)) == [("pump", False)]
    assert switched(w.step(50)) == [("pump", True)]
    assert w.status("heater") is LoadStatus.SHED
    assert switched(w.step(61)) == [("heater", True)]
    assert w.runtime["heater"].reason is Reason.SOC_ABOVE
    assert w.status("heater") is LoadStatus.NORMAL


# --- the pessimistic SoC (issue 16) -----------------------------------------------------------

FRIDGE = LoadSettings(
    load_id="fridge", entity_id="switch.fridge", priority=3, shed_below=20, restore_above=30
)


def test_pessimistic_soc_sheds_on_the_low_side_of_the_band() -> None:
    """SoC 25 +- 6: most likely above the shed level of 20, possibly below it."""
    assert switched(world(FRIDGE).step(25, uncertainty=6)) == []
    w = world(FRIDGE)
    assert switched(w.step(25, uncertainty=6, pessimistic=True)) == [("fridge", False)]
    assert w.runtime["fridge"].reason is Reason.SOC_BELOW


def test_pessimistic_soc_restores_on_the_low_side_of_the_band() -> None:
    w = world(FRIDGE)
    assert switched(w.step(15, uncertainty=6, pessimistic=True)) == [("fridge", False)]
    # 33 is above the restore level of 30, but 33 - 6 = 27 is not.
    assert switched(w.step(33, uncertainty=6, pessimistic=True)) == []
    assert w.status("fridge") is LoadStatus.SHED
    assert switched(w.step(33, uncertainty=6)) == [("fridge", True)]  # the option off: 33
    w = world(FRIDGE)
    w.step(15, uncertainty=6, pessimistic=True)
    assert switched(w.step(36.5, uncertainty=6, pessimistic=True)) == [("fridge", True)]


def test_pessimistic_soc_without_an_uncertainty_is_the_soc() -> None:
    w = world(FRIDGE)
    assert switched(w.step(25, pessimistic=True)) == []
    assert switched(w.step(19, pessimistic=True)) == [("fridge", False)]
    assert switched(w.step(31, pessimistic=True)) == [("fridge", True)]


@pytest.mark.parametrize(
    ("soc", "uncertainty", "pessimistic", "expected"),
    [
        (25.0, 6.0, True, 19.0),
        (25.0, 6.0, False, 25.0),
        (25.0, None, True, 25.0),
        (4.0, 10.0, True, 0.0),  # never below empty
        (None, 6.0, True, None),
    ],
)
def test_decision_soc(
    soc: float | None, uncertainty: float | None, pessimistic: bool, expected: float | None
) -> None:
    conditions = Conditions(
        now=0.0,
        enabled=True,
        available=True,
        soc=soc,
        soc_uncertainty=uncertainty,
        pessimistic=pessimistic,
    )
    assert conditions.decision_soc == expected


def test_two_loads_crossed_at_once_go_off_lowest_priority_first() -> None:
    w = world(PUMP, HEATER)  # configured order must not matter
    assert switched(w.step(10)) == [("heater", False), ("pump", False)]
    assert switched(w.step(90)) == [("pump", True), ("heater", True)]


def test_hysteresis_holds_between_shed_and_restore() -> None:
    w = world(HEATER)
    w.step(39)
    for soc in (41, 50, 59.9, 60, 45, 39, 55):
        assert switched(w.step(soc, advance=60)) == []
        assert w.status("heater") is LoadStatus.SHED
    assert switched(w.step(60.1)) == [("heater", True)]


def test_minimum_off_time_holds_and_the_next_check_is_when_it_ends() -> None:
    load = LoadSettings(
        load_id="ac", entity_id="climate.ac", priority=1, shed_below=40, restore_above=60,
        min_off_s=600,
    )  # fmt: skip
    w = world(load)
    w.step(30)
    decision = w.step(80, advance=100)
    assert switched(decision) == []
    assert w.status("ac") is LoadStatus.WAITING_TO_RESTORE
    assert decision.next_check == w.now + 500
    assert switched(w.step(80, advance=499)) == []
    assert switched(w.step(80, advance=1)) == [("ac", True)]


def test_minimum_on_time_holds_for_soc_but_not_for_an_lvd_trip() -> None:
    load = LoadSettings(
        load_id="ac", entity_id="climate.ac", priority=1, shed_below=40, restore_above=60,
        min_on_s=300,
    )  # fmt: skip
    w = world(load, on=False)
    w.step(80)
    w.on["ac"] = True  # someone switches it on
    w.step(80, advance=10)
    decision = w.step(30, advance=10)
    assert switched(decision) == []
    assert decision.next_check == w.now + 290
    assert switched(w.step(30, advance=290)) == [("ac", False)]
    # Once more, with an LVD trip inside the minimum on time: off at once.
    w.step(80, advance=1000)
    w.on["ac"] = True
    w.step(80, advance=1)
    assert switched(w.step(80, advance=1, lvd_since=w.now)) == [("ac", False)]
    assert w.runtime["ac"].reason is Reason.LVD_TRIP


def test_lvd_trip_sheds_everything_and_nothing_returns_until_it_releases() -> None:
    w = world(HEATER, PUMP)
    decision = w.step(80, lvd_since=w.now)
    assert switched(decision) == [("heater", False), ("pump", False)]
    assert {action.reason for action in decision.actions} == {Reason.LVD_TRIP}
    assert switched(w.step(95, advance=60, lvd_since=w.now - 60)) == []
    assert switched(w.step(95, advance=60)) == [("pump", True), ("heater", True)]


def test_low_soc_alarm_sheds_everything_until_it_clears() -> None:
    w = world(HEATER, PUMP)
    decision = w.step(70, alarm=True)
    assert switched(decision) == [("heater", False), ("pump", False)]
    assert {action.reason for action in decision.actions} == {Reason.LOW_SOC_ALARM}
    assert switched(w.step(70, alarm=True, advance=60)) == []
    assert switched(w.step(70, advance=60)) == [("pump", True), ("heater", True)]


@pytest.mark.parametrize(
    ("soc", "available"), [(None, True), (10.0, False), (None, False)], ids=str
)
def test_unknown_soc_or_offline_agent_switches_nothing(soc: float | None, available: bool) -> None:
    w = world(HEATER)
    w.step(30)
    assert w.on["heater"] is False
    for _ in range(3):
        assert switched(w.step(soc, available=available, advance=3600)) == []
    assert w.status("heater") is LoadStatus.SHED
    assert switched(w.step(90, advance=1)) == [("heater", True)]


def test_a_shed_load_switched_on_by_hand_is_left_alone_until_the_next_restore_cycle() -> None:
    w = world(HEATER)
    w.step(30)
    w.step(30, advance=1)  # the load reports off
    w.on["heater"] = True  # a person wins
    assert switched(w.step(30, advance=1)) == []
    assert w.status("heater") is LoadStatus.OVERRIDDEN
    assert switched(w.step(20, advance=600)) == []
    assert w.status("heater") is LoadStatus.OVERRIDDEN
    assert switched(w.step(61, advance=1)) == []  # the restore cycle ends the override
    assert w.status("heater") is LoadStatus.NORMAL
    assert switched(w.step(39, advance=1)) == [("heater", False)]


def test_override_before_an_lvd_trip_is_shed_by_it_but_not_one_after() -> None:
    w = world(HEATER)
    w.step(30)
    w.step(30, advance=1)
    w.on["heater"] = True
    w.step(30, advance=1)
    trip = w.now + 10
    assert switched(w.step(30, advance=10, lvd_since=trip)) == [("heater", False)]
    w.step(30, advance=1, lvd_since=trip)
    w.on["heater"] = True  # switched on again after the trip: respected
    assert switched(w.step(30, advance=1, lvd_since=trip)) == []
    assert w.status("heater") is LoadStatus.OVERRIDDEN


def test_a_load_that_was_off_is_neither_shed_nor_switched_on() -> None:
    w = world(HEATER, on=False)
    assert switched(w.step(10)) == []
    assert switched(w.step(90)) == []
    assert w.status("heater") is LoadStatus.NORMAL


def test_the_switch_off_before_the_load_reports_off_is_not_an_override() -> None:
    w = world(HEATER)
    decision = w.step(30)
    w.on["heater"] = True  # its state did not follow yet
    assert switched(w.step(30, advance=1)) == []
    assert decision.actions
    assert w.status("heater") is LoadStatus.SHED


def test_a_lower_priority_load_waits_for_a_higher_one_still_shed() -> None:
    late = LoadSettings(
        load_id="late", entity_id="switch.late", priority=9, shed_below=20, restore_above=80
    )
    w = world(HEATER, late)
    w.step(10)
    assert switched(w.step(70, advance=1)) == []
    assert w.status("heater") is LoadStatus.WAITING_TO_RESTORE
    assert switched(w.step(81, advance=1)) == [("late", True), ("heater", True)]


def test_an_unknown_load_is_not_switched_and_does_not_block_others() -> None:
    w = world(HEATER, PUMP)
    w.step(10)
    w.on["pump"] = None  # its integration is unavailable
    assert switched(w.step(90, advance=1)) == [("heater", True)]
    assert w.status("pump") is LoadStatus.WAITING_TO_RESTORE


def test_disabling_forgets_what_was_shed_and_switches_nothing() -> None:
    w = world(HEATER)
    w.step(30)
    assert switched(w.step(90, enabled=False)) == []
    assert w.status("heater") is LoadStatus.NORMAL
    assert switched(w.step(90, advance=1)) == []  # not ours to switch on any more


def test_runtime_survives_a_round_trip_and_bad_stored_data_falls_back() -> None:
    state = LoadRuntime(
        status=LoadStatus.SHED,
        reason=Reason.LVD_TRIP,
        observed_on=False,
        changed_at=12.5,
        switched_at=10.0,
    )
    assert LoadRuntime.from_dict(state.as_dict()) == state
    assert LoadRuntime.from_dict({"status": "exploded"}) == LoadRuntime()
    assert LoadRuntime.from_dict({"changed_at": "soon", "observed_on": 1}) == LoadRuntime()


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({}, {}),
        ({"priority": 0}, {"priority": "invalid_priority"}),
        ({"priority": 2.5}, {"priority": "invalid_priority"}),
        ({"shed_below": 100}, {"shed_below": "invalid_soc"}),
        ({"restore_above": 120}, {"restore_above": "invalid_soc"}),
        ({"restore_above": 30}, {"restore_above": "restore_not_above_shed"}),
        ({"restore_above": 30.0001}, {}),
        ({"min_off_s": -1}, {"min_off_time": "invalid_min_time"}),
        ({"min_on_s": 86401}, {"min_on_time": "invalid_min_time"}),
    ],
)
def test_settings_errors_name_the_field(
    values: Mapping[str, float], expected: dict[str, str]
) -> None:
    arguments = {
        "priority": 1.0,
        "shed_below": 30.0,
        "restore_above": 50.0,
        "min_off_s": 0.0,
        "min_on_s": 0.0,
        **values,
    }
    assert settings_errors(**arguments) == expected


# --- invariants over random walks ---------------------------------------------------------------


@st.composite
def load_settings(draw: st.DrawFn, index: int) -> LoadSettings:
    shed = draw(st.floats(0, 90, allow_nan=False))
    return LoadSettings(
        load_id=f"l{index}",
        entity_id=f"switch.l{index}",
        priority=draw(st.integers(1, 5)),
        shed_below=shed,
        restore_above=draw(st.floats(shed + 0.5, 100, allow_nan=False)),
        min_off_s=draw(st.sampled_from([0.0, 60.0, 600.0])),
        min_on_s=draw(st.sampled_from([0.0, 60.0, 600.0])),
    )


def _mostly(value: bool, one_in: int) -> st.SearchStrategy[bool]:
    """`value` except once in `one_in` draws: rare conditions stay rare, so restores happen."""
    return st.sampled_from([value] * (one_in - 1) + [not value])


step_strategy = st.fixed_dictionaries(
    {
        "advance": st.sampled_from([0.0, 1.0, 30.0, 120.0, 900.0, 3600.0]),
        "soc": st.one_of(st.none(), st.floats(0, 100), st.floats(0, 100)),
        "available": _mostly(True, 6),
        "enabled": _mostly(True, 10),
        "alarm": _mostly(False, 10),
        "lvd": _mostly(False, 10),
        "hand": st.one_of(st.none(), st.tuples(st.integers(0, 3), st.booleans())),
    }
)


@st.composite
def scenarios(draw: st.DrawFn) -> tuple[tuple[LoadSettings, ...], list[dict[str, object]]]:
    count = draw(st.integers(1, 4))
    loads = tuple(draw(load_settings(index)) for index in range(count))
    return loads, draw(st.lists(step_strategy, min_size=1, max_size=40))


def _check_order(actions: tuple[Action, ...], priority: Mapping[str, int]) -> None:
    offs = [priority[a.load_id] for a in actions if not a.turn_on]
    ons = [priority[a.load_id] for a in actions if a.turn_on]
    assert offs == sorted(offs)
    assert ons == sorted(ons, reverse=True)
    assert [a.turn_on for a in actions] == sorted(a.turn_on for a in actions)  # offs first
    assert len({a.load_id for a in actions}) == len(actions)  # never off and on at once


@settings(max_examples=300, deadline=None)
@given(scenarios())
def test_invariants_over_random_walks(
    scenario: tuple[tuple[LoadSettings, ...], list[dict[str, object]]],
) -> None:
    loads, steps = scenario
    by_id = {load.load_id: load for load in loads}
    w = world(*loads)
    lvd_since: float | None = None
    on_since = dict.fromkeys(by_id, w.now - 10_000.0)
    for step in steps:
        hand = step["hand"]
        if isinstance(hand, tuple) and hand[0] < len(loads):
            load_id = loads[hand[0]].load_id
            if w.on[load_id] != hand[1] and hand[1]:
                on_since[load_id] = w.now
            w.on[load_id] = hand[1]
        lvd_since = (lvd_since or w.now) if step["lvd"] else None
        before = dict(w.runtime)
        soc = step["soc"]
        assert soc is None or isinstance(soc, float)
        decision = w.step(
            soc,
            advance=float(step["advance"]),  # type: ignore[arg-type]
            available=bool(step["available"]),
            enabled=bool(step["enabled"]),
            alarm=bool(step["alarm"]),
            lvd_since=lvd_since,
        )
        if not (step["enabled"] and step["available"] and soc is not None):
            assert decision.actions == ()  # frozen without data, or disabled
            continue
        _check_order(decision.actions, {k: v.priority for k, v in by_id.items()})
        for action in decision.actions:
            load = by_id[action.load_id]
            previous = before.get(action.load_id, LoadRuntime())
            if action.turn_on:
                assert soc is not None
                assert soc > load.restore_above
                assert lvd_since is None
                assert not step["alarm"]
                assert previous.shed  # only what shedding switched off comes back
                assert previous.switched_at is not None
                assert w.now >= previous.switched_at + load.min_off_s
            else:
                assert previous.status is not LoadStatus.SHED
                if action.reason is not Reason.LVD_TRIP:
                    assert w.now >= on_since[action.load_id] + load.min_on_s
                    assert previous.status is not LoadStatus.OVERRIDDEN
            if action.turn_on:
                on_since[action.load_id] = w.now
