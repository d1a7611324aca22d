"""The pure surplus-load decisions (custom_components/sbms/surplus_loads.py), without Home
Assistant: scenarios first, then invariants over random days (hypothesis)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custom_components.sbms.surplus_loads import (
    SETTLE_S,
    SurplusAction,
    SurplusConditions,
    SurplusDecision,
    SurplusLoadSettings,
    SurplusReason,
    SurplusRuntime,
    SurplusStatus,
    decide,
    settings_errors,
)

# The boiler comes on first (priority 9) and goes last; the pump (priority 2) the other way.
BOILER = SurplusLoadSettings(
    load_id="boiler",
    entity_id="switch.boiler",
    priority=9,
    min_soc=90,
    max_discharge_w=100,
    discharge_s=60,
)
PUMP = SurplusLoadSettings(
    load_id="pump",
    entity_id="switch.pump",
    priority=2,
    min_soc=95,
    max_discharge_w=100,
    discharge_s=60,
)


@dataclass
class World:
    """Loads that follow the actions at once, and the runtime between decisions."""

    loads: tuple[SurplusLoadSettings, ...]
    on: dict[str, bool | None] = field(default_factory=dict)
    runtime: dict[str, SurplusRuntime] = field(default_factory=dict)
    now: float = 10_000.0
    log: list[tuple[float, SurplusAction]] = field(default_factory=list)

    def __post_init__(self) -> None:
        for load in self.loads:
            self.on.setdefault(load.load_id, False)

    def step(
        self,
        *,
        surplus: bool,
        battery_power: float | None = 0.0,
        soc: float | None = 100.0,
        advance: float = 0.0,
        available: bool = True,
        enabled: bool = True,
    ) -> SurplusDecision:
        self.now += advance
        decision = decide(
            self.loads,
            self.runtime,
            SurplusConditions(
                now=self.now,
                enabled=enabled,
                available=available,
                soc=soc,
                surplus=surplus,
                battery_power=battery_power,
                loads_on=dict(self.on),
            ),
        )
        self.runtime = decision.runtime
        for action in decision.actions:
            self.on[action.load_id] = action.turn_on
            self.log.append((self.now, action))
        return decision

    def status(self, load: SurplusLoadSettings) -> SurplusStatus:
        return self.runtime[load.load_id].status


def switched(decision: SurplusDecision) -> list[tuple[str, bool]]:
    return [(action.load_id, action.turn_on) for action in decision.actions]


def test_surplus_switches_on_highest_priority_first_one_load_per_settling_time() -> None:
    world = World((PUMP, BOILER))
    assert switched(world.step(surplus=True)) == [("boiler", True)]
    decision = world.step(surplus=True, advance=1)
    assert switched(decision) == []
    assert world.status(PUMP) is SurplusStatus.WAITING
    assert decision.next_check == pytest.approx(world.now - 1 + SETTLE_S)
    assert switched(world.step(surplus=True, advance=SETTLE_S)) == [("pump", True)]
    assert world.runtime["pump"].reason is SurplusReason.SURPLUS


def test_no_surplus_switches_nothing_on() -> None:
    world = World((PUMP, BOILER))
    assert switched(world.step(surplus=False)) == []
    assert world.status(BOILER) is SurplusStatus.IDLE


def test_a_load_stays_on_after_the_surplus_ends_while_the_battery_does_not_pay() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    assert switched(world.step(surplus=False, battery_power=50.0, advance=600)) == []
    assert world.on["boiler"] is True


def test_discharge_beyond_the_limit_for_its_time_switches_off_lowest_priority_first() -> None:
    world = World((PUMP, BOILER))
    world.step(surplus=True)
    world.step(surplus=True, advance=SETTLE_S)
    assert world.on == {"boiler": True, "pump": True}
    world.step(surplus=False, battery_power=-300.0, advance=1)
    decision = world.step(surplus=False, battery_power=-300.0, advance=30)
    assert switched(decision) == []  # 30 s of 60
    assert decision.next_check == pytest.approx(world.now + 30)
    assert switched(world.step(surplus=False, battery_power=-300.0, advance=30)) == [
        ("pump", False)
    ]
    assert world.runtime["pump"].reason is SurplusReason.DISCHARGE
    # The boiler's timer starts again: the next load goes only if this one was not enough.
    assert switched(world.step(surplus=False, battery_power=-300.0, advance=59)) == []
    assert switched(world.step(surplus=False, battery_power=-300.0, advance=1)) == [
        ("boiler", False)
    ]


def test_a_discharge_shorter_than_its_time_is_ridden_out() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    world.step(surplus=False, battery_power=-500.0, advance=1)
    world.step(surplus=False, battery_power=-500.0, advance=50)
    world.step(surplus=False, battery_power=20.0, advance=5)  # the cloud passed
    assert switched(world.step(surplus=False, battery_power=-500.0, advance=50)) == []
    assert world.on["boiler"] is True


def test_discharge_below_the_limit_keeps_the_load_on() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    for _ in range(10):
        assert switched(world.step(surplus=False, battery_power=-99.0, advance=60)) == []


def test_soc_below_the_floor_switches_off_at_once_despite_the_minimum_on_time() -> None:
    boiler = SurplusLoadSettings(**{**_fields(BOILER), "min_on_s": 3600.0})
    world = World((boiler,))
    world.step(surplus=True)
    decision = world.step(surplus=True, soc=89.0, advance=1)
    assert switched(decision) == [("boiler", False)]
    assert world.runtime["boiler"].reason is SurplusReason.SOC_BELOW


def test_minimum_on_time_holds_against_a_discharge() -> None:
    boiler = SurplusLoadSettings(**{**_fields(BOILER), "min_on_s": 600.0})
    world = World((boiler,))
    world.step(surplus=True)
    world.step(surplus=False, battery_power=-500.0, advance=1)
    decision = world.step(surplus=False, battery_power=-500.0, advance=120)
    assert switched(decision) == []
    assert decision.next_check == pytest.approx(world.now - 121 + 600)
    assert switched(world.step(surplus=False, battery_power=-500.0, advance=479)) == [
        ("boiler", False)
    ]


def test_minimum_off_time_holds_before_the_next_surplus_switches_it_on() -> None:
    boiler = SurplusLoadSettings(**{**_fields(BOILER), "min_off_s": 900.0})
    world = World((boiler,))
    world.step(surplus=True)
    world.step(surplus=True, soc=80.0, advance=1)
    assert world.on["boiler"] is False
    decision = world.step(surplus=True, advance=300)
    assert switched(decision) == []
    assert world.status(boiler) is SurplusStatus.WAITING
    assert switched(world.step(surplus=True, advance=600)) == [("boiler", True)]


def test_no_load_comes_on_while_the_battery_discharges_beyond_its_limit() -> None:
    world = World((BOILER,))
    assert switched(world.step(surplus=True, battery_power=-150.0)) == []
    assert switched(world.step(surplus=True, battery_power=None, advance=1)) == []
    assert switched(world.step(surplus=True, soc=85.0, advance=1)) == []


def test_a_load_switched_off_by_hand_stays_off_until_the_surplus_ends() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    world.on["boiler"] = False  # someone switched it off
    assert switched(world.step(surplus=True, advance=SETTLE_S * 10)) == []
    assert world.status(BOILER) is SurplusStatus.OVERRIDDEN
    world.step(surplus=False, advance=1)
    assert world.status(BOILER) is SurplusStatus.IDLE
    assert switched(world.step(surplus=True, advance=SETTLE_S)) == [("boiler", True)]


def test_a_load_someone_else_switched_on_is_never_switched_off() -> None:
    world = World((BOILER,))
    world.on["boiler"] = True
    world.step(surplus=False, battery_power=-900.0)
    assert switched(world.step(surplus=False, battery_power=-900.0, soc=10.0, advance=600)) == []
    assert world.status(BOILER) is SurplusStatus.IDLE


# (available, soc, battery_power): one of them missing.
BLIND = [
    pytest.param((False, 100.0, 0.0), id="agent-unavailable"),
    pytest.param((True, None, 0.0), id="soc-unknown"),
    pytest.param((True, 100.0, None), id="battery-power-unknown"),
]


@pytest.mark.parametrize("inputs", BLIND)
def test_without_data_a_load_goes_off_after_its_discharge_time_and_none_comes_on(
    inputs: tuple[bool, float | None, float | None],
) -> None:
    """Left on blind, a surplus load could run the pack to the LVD, which cuts every load:
    no data counts as a discharge beyond the limit."""
    available, soc, power = inputs
    world = World((BOILER, PUMP))
    world.step(surplus=True)
    assert world.on == {"boiler": True, "pump": False}

    def blind_step(advance: float) -> SurplusDecision:
        return world.step(
            surplus=True, available=available, soc=soc, battery_power=power, advance=advance
        )

    # Ridden out for the discharge time: a broker blip switches nothing, and nothing comes on
    # (the pump would have, once the settling time passed).
    assert switched(blind_step(SETTLE_S + 1)) == []
    decision = blind_step(BOILER.discharge_s)
    assert [(a.load_id, a.turn_on, a.reason) for a in decision.actions] == [
        ("boiler", False, SurplusReason.NO_DATA)
    ]
    assert world.on == {"boiler": False, "pump": False}


def test_data_back_within_the_discharge_time_keeps_the_load_on() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    world.step(surplus=True, available=False, advance=1)
    assert switched(world.step(surplus=True, advance=BOILER.discharge_s - 2)) == []
    assert switched(world.step(surplus=True, advance=BOILER.discharge_s)) == []
    assert world.on["boiler"] is True


def test_disabling_forgets_and_switches_nothing() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    assert switched(world.step(surplus=False, battery_power=-900.0, enabled=False)) == []
    assert world.status(BOILER) is SurplusStatus.IDLE
    # Enabled again, the load left on is not ours: it stays on.
    assert switched(world.step(surplus=False, battery_power=-900.0, advance=600)) == []


def test_an_unknown_load_is_not_switched_on() -> None:
    world = World((BOILER,))
    world.on["boiler"] = None
    assert switched(world.step(surplus=True)) == []


def test_runtime_survives_a_round_trip_and_bad_stored_data_falls_back() -> None:
    world = World((BOILER,))
    world.step(surplus=True)
    world.step(surplus=False, battery_power=-500.0, advance=1)
    state = world.runtime["boiler"]
    assert SurplusRuntime.from_dict(state.as_dict()) == state
    assert SurplusRuntime.from_dict({"status": "bogus"}) == SurplusRuntime()
    assert SurplusRuntime.from_dict({"reason": 3}) == SurplusRuntime()


def test_a_restored_runtime_switches_nothing_by_itself() -> None:
    """Restart: the stored runtime with the loads as they are decides nothing new."""
    world = World((PUMP, BOILER))
    world.step(surplus=True)
    restarted = World((PUMP, BOILER), on=dict(world.on), runtime=dict(world.runtime))
    restarted.now = world.now + 5
    assert switched(restarted.step(surplus=False, battery_power=10.0)) == []
    assert restarted.status(BOILER) is SurplusStatus.ON


@pytest.mark.parametrize(
    ("changes", "field_name", "error"),
    [
        ({"priority": 0}, "priority", "invalid_priority"),
        ({"priority": 2.5}, "priority", "invalid_priority"),
        ({"min_soc": 100}, "min_soc", "invalid_soc"),
        ({"min_soc": -1}, "min_soc", "invalid_soc"),
        ({"max_discharge_w": -5}, "max_discharge_power", "invalid_discharge_power"),
        ({"discharge_s": 3601}, "discharge_time", "invalid_discharge_time"),
        ({"min_on_s": -1}, "min_on_time", "invalid_min_time"),
        ({"min_off_s": 2 * 86400}, "min_off_time", "invalid_min_time"),
    ],
)
def test_settings_errors_name_the_field(
    changes: dict[str, float], field_name: str, error: str
) -> None:
    values = {
        "priority": 5.0,
        "min_soc": 90.0,
        "max_discharge_w": 100.0,
        "discharge_s": 60.0,
        "min_on_s": 0.0,
        "min_off_s": 0.0,
    }
    assert settings_errors(**values) == {}
    assert settings_errors(**{**values, **changes}) == {field_name: error}


def _fields(load: SurplusLoadSettings) -> dict[str, object]:
    return {name: getattr(load, name) for name in SurplusLoadSettings.__dataclass_fields__}


# --- invariants over random days --------------------------------------------------------------

STEP = st.tuples(
    st.booleans(),  # surplus
    st.one_of(st.none(), st.floats(-2000, 2000)),  # battery power
    st.one_of(st.none(), st.floats(0, 100)),  # soc
    st.floats(0, 400),  # seconds since the last step
    st.booleans(),  # the agent available
    st.sampled_from([None, "boiler", "pump"]),  # a load someone switches by hand
)
LOADS = st.tuples(
    st.integers(1, 100),
    st.integers(1, 100),
    st.floats(0, 99),
    st.floats(0, 500),
    st.floats(0, 300),
    st.floats(0, 600),
    st.floats(0, 600),
).map(
    lambda v: (
        SurplusLoadSettings(
            load_id="boiler",
            entity_id="switch.boiler",
            priority=v[0],
            min_soc=v[2],
            max_discharge_w=v[3],
            discharge_s=v[4],
            min_on_s=v[5],
            min_off_s=v[6],
        ),
        SurplusLoadSettings(
            load_id="pump",
            entity_id="switch.pump",
            priority=v[1],
            min_soc=v[2],
            max_discharge_w=v[3],
            discharge_s=v[4],
            min_on_s=v[5],
            min_off_s=v[6],
        ),
    )
)


@settings(max_examples=300, deadline=None)
@given(LOADS, st.lists(STEP, min_size=1, max_size=60))
def test_invariants_over_random_days(
    loads: tuple[SurplusLoadSettings, SurplusLoadSettings],
    steps: list[tuple[bool, float | None, float | None, float, bool, str | None]],
) -> None:
    world = World(loads)
    by_id = {load.load_id: load for load in loads}
    ours: set[str] = set()  # switched on by us and not switched off since (by anyone)
    last_on: dict[str, float] = {}
    last_off: dict[str, float] = {}
    for surplus, power, soc, advance, available, by_hand in steps:
        if by_hand is not None:
            world.on[by_hand] = not world.on[by_hand]
            ours.discard(by_hand)
        before = world.now + advance
        decision = world.step(
            surplus=surplus, battery_power=power, soc=soc, advance=advance, available=available
        )
        ons = [a for a in decision.actions if a.turn_on]
        offs = [a for a in decision.actions if not a.turn_on]
        blind = not available or soc is None or power is None
        if blind:  # nothing comes on, and a load goes off only for the missing data
            assert not ons
            assert all(a.reason in (SurplusReason.NO_DATA, SurplusReason.SOC_BELOW) for a in offs)
        # At most one on per decision, never together with an off, only with surplus, a SoC
        # at its floor, no discharge beyond the limit, after its minimum off time.
        assert len(ons) <= 1
        assert not (ons and offs)
        for action in ons:
            load = by_id[action.load_id]
            assert surplus
            assert soc is not None
            assert soc >= load.min_soc
            assert power is not None
            assert -power <= load.max_discharge_w
            if action.load_id in last_off:
                assert before >= last_off[action.load_id] + load.min_off_s
            ours.add(action.load_id)
            last_on[action.load_id] = before
        # Offs: only loads we switched on, lowest priority first, at most one for a discharge,
        # and a discharge waits for the minimum on time.
        assert [a.load_id for a in offs] == sorted(
            (a.load_id for a in offs), key=lambda key: by_id[key].priority
        )
        assert sum(a.reason is not SurplusReason.SOC_BELOW for a in offs) <= 1
        for action in offs:
            load = by_id[action.load_id]
            assert action.load_id in ours
            if action.reason is SurplusReason.DISCHARGE:
                assert power is not None
                assert -power > load.max_discharge_w
                assert before >= last_on[action.load_id] + load.min_on_s
            elif action.reason is SurplusReason.NO_DATA:
                assert blind
                assert before >= last_on[action.load_id] + load.min_on_s
            else:
                assert soc is not None
                assert soc < load.min_soc
            ours.discard(action.load_id)
            last_off[action.load_id] = before
