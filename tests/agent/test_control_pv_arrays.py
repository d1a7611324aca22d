"""PV energy per array on a dual-PV box (issue 20): attribution by what conducted, the split
when both arrays conduct, never backwards, and survival across a restart."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.control.controller import Controller
from edge_agent.control.model import Measurement
from edge_agent.control.persisted import PersistedState
from edge_agent.control.pv_arrays import PvArrayCounter, PvArrayState, pv_arrays
from edge_agent.control.settings import (
    ArraySettings,
    CellThresholds,
    ControlSettings,
    DiversionSettings,
    DualPvSettings,
    OutputSettings,
    OutputType,
    Wiring,
)

OUTPUTS = (
    OutputSettings("primary", OutputType.HVD, Wiring.CHARGE),
    OutputSettings("secondary", OutputType.DUAL_PV, Wiring.CHARGE),
    OutputSettings("load", OutputType.LVD, Wiring.LOAD),
)
PV = DualPvSettings(imax=50.0, min_level_hold_s=60.0)


def test_arrays_only_on_a_dual_pv_box() -> None:
    assert pv_arrays(OUTPUTS) == ("primary", "secondary")
    assert pv_arrays(OUTPUTS[:1] + OUTPUTS[2:]) == ()


def test_a_lone_array_gets_the_whole_interval() -> None:
    counter = PvArrayCounter(("primary", "secondary"))
    counter.add_interval(10.0, {"primary": True, "secondary": False})
    counter.add_interval(4.0, {"primary": False, "secondary": True})
    counter.add_interval(3.0, {"primary": False, "secondary": False})  # nobody's
    assert counter.energy_wh == {"primary": 10.0, "secondary": 4.0}


def test_both_split_by_configured_size_then_by_current_alone_then_equally() -> None:
    both = {"primary": True, "secondary": True}
    sized = PvArrayCounter(
        ("primary", "secondary"),
        (ArraySettings("primary", rated_current_a=9.0), ArraySettings("secondary", 18.0)),
    )
    sized.add_interval(30.0, both)
    assert sized.energy_wh == {"primary": 10.0, "secondary": 20.0}

    equal = PvArrayCounter(("primary", "secondary"))
    equal.add_interval(30.0, both)
    assert equal.energy_wh == {"primary": 15.0, "secondary": 15.0}

    learned = PvArrayCounter(("primary", "secondary"))
    learned.add_interval(0.0, {"primary": True}, pv_current_a=5.0, interval_s=1.0)
    learned.add_interval(0.0, {"secondary": True}, pv_current_a=15.0, interval_s=1.0)
    learned.add_interval(40.0, both, pv_current_a=20.0, interval_s=1.0)  # both: learns nothing
    assert learned.energy_wh == {"primary": 10.0, "secondary": 30.0}


@given(
    st.lists(
        st.tuples(
            st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-1e6, 1e6)),
            st.booleans(),
            st.booleans(),
            st.one_of(st.none(), st.floats(-100.0, 100.0)),
        ),
        max_size=40,
    )
)
def test_never_backwards_and_never_more_than_given(
    steps: list[tuple[float, bool, bool, float | None]],
) -> None:
    counter = PvArrayCounter(("primary", "secondary"))
    given_wh = 0.0
    previous = dict(counter.energy_wh)
    for wh, primary, secondary, current in steps:
        counter.add_interval(
            wh, {"primary": primary, "secondary": secondary}, pv_current_a=current, interval_s=1.0
        )
        if math.isfinite(wh) and wh > 0.0 and (primary or secondary):
            given_wh += wh
        for name, value in counter.energy_wh.items():
            assert math.isfinite(value)
            assert value >= previous[name]
        previous = dict(counter.energy_wh)
    assert sum(counter.energy_wh.values()) <= given_wh * (1 + 1e-9) + 1e-9


def _sample(t: float, battery: float, pv: float) -> Measurement:
    return Measurement(t, (3.3,) * 8, battery, pv_current=pv, external_temperatures=(20.0,))


def test_controller_counts_each_level_to_its_array_and_keeps_it_over_a_restart() -> None:
    settings = ControlSettings(
        cells=CellThresholds(hvd_delay_s=0.0),
        outputs=OUTPUTS,
        dual_pv=PV,
        diversion=DiversionSettings(
            arrays=(ArraySettings("primary", 10.0), ArraySettings("secondary", 20.0))
        ),
    )
    controller = Controller(settings, 0.0)
    report = controller.update(_sample(1.0, 5.0, 5.0))  # level 1: primary alone from here
    assert report.pv_arrays_wh == {"primary": 0.0, "secondary": 0.0}
    t = 1.0
    while t < 61.0:  # one minute of 5 A at 26.4 V on the primary
        t += 1.0
        report = controller.update(_sample(t, 5.0, 5.0))
    assert report.dual_pv_level == 2  # stepped up at 61 s: the secondary alone from there
    assert report.pv_arrays_wh is not None
    primary_wh = report.pv_arrays_wh["primary"]
    assert math.isclose(primary_wh, 5.0 * 26.4 * 60 / 3600, rel_tol=1e-6)
    assert report.pv_arrays_wh["secondary"] == 0.0

    saved = json.loads(json.dumps(controller.snapshot().to_dict()))
    restarted = Controller(settings, t, PersistedState.from_dict(saved))
    report = restarted.update(_sample(t + 1.0, 10.0, 10.0))
    assert report.pv_arrays_wh is not None
    assert report.pv_arrays_wh["primary"] == primary_wh  # kept, not lost
    for step in range(2, 61):  # the secondary conducted at the last decision: still its
        report = restarted.update(_sample(t + step, 10.0, 10.0))
    assert report.pv_arrays_wh is not None
    assert report.pv_arrays_wh["primary"] == primary_wh
    secondary_wh = report.pv_arrays_wh["secondary"]
    # the first second after the restart: the trapezoid from 5 A to 10 A
    assert math.isclose(secondary_wh, (7.5 + 10.0 * 59) * 26.4 / 3600, rel_tol=1e-6)
    assert report.dual_pv_level == 3  # both from here: split 10:20 by the configured sizes
    report = restarted.update(_sample(t + 61, 10.0, 10.0))
    assert report.pv_arrays_wh is not None
    second = 10.0 * 26.4 / 3600
    assert math.isclose(report.pv_arrays_wh["primary"], primary_wh + second / 3, rel_tol=1e-6)
    assert math.isclose(report.pv_arrays_wh["secondary"], secondary_wh + 2 * second / 3)
    assert report.counters.pv_wh >= sum(report.pv_arrays_wh.values())


def test_no_per_array_counter_without_dual_pv() -> None:
    settings = ControlSettings(outputs=(OUTPUTS[0], OUTPUTS[2]))
    report = Controller(settings, 0.0).update(_sample(1.0, 5.0, 5.0))
    assert report.pv_arrays_wh is None


def test_a_state_saved_before_issue_20_starts_the_arrays_at_zero() -> None:
    saved = Controller(ControlSettings(outputs=OUTPUTS, dual_pv=PV), 0.0).snapshot().to_dict()
    del saved["pv_arrays"]
    assert PersistedState.from_dict(saved).pv_arrays == PvArrayState()
