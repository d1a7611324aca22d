"""PV diversion in the control core: when a heat path conducts, break before make, the
estimate of PV available while the panels are off, and the diverted-energy counters."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.control.clear_sky import plane_irradiance
from edge_agent.control.controller import Controller
from edge_agent.control.counters import add_diversion
from edge_agent.control.diversion import (
    BreakBeforeMake,
    DiversionEstimator,
    EstimatorState,
    SampleInputs,
)
from edge_agent.control.extio import ALLOWED_TYPES, diversion_problems, inferred_wiring
from edge_agent.control.model import (
    DiversionCounters,
    Fault,
    Interlock,
    Measurement,
    MeasurementFailure,
)
from edge_agent.control.persisted import PersistedState
from edge_agent.control.settings import (
    ArraySettings,
    CellThresholds,
    ControlSettings,
    DiversionSettings,
    MaxSocSettings,
    OutputSettings,
    OutputType,
    Wiring,
)

IMMEDIATE = CellThresholds(hvd_delay_s=0.0, lvd_delay_s=0.0, ovlo_delay_s=0.0, uvlo_delay_s=0.0)
PRIMARY, SECONDARY, HEAT1, HEAT2 = "pv1", "pv2", "heat1", "heat2"
OUTPUTS = (
    OutputSettings("loads", OutputType.LVD, Wiring.LOAD),
    OutputSettings(PRIMARY, OutputType.HVD, Wiring.CHARGE),
    OutputSettings(SECONDARY, OutputType.DUAL_PV, Wiring.CHARGE),
    OutputSettings(HEAT1, OutputType.DIVERSION, Wiring.HEATER, diverts=PRIMARY),
    OutputSettings(HEAT2, OutputType.DIVERSION, Wiring.HEATER, diverts=SECONDARY),
    OutputSettings("fault", OutputType.FAULT, Wiring.FAULT),
)
PAIRS = {HEAT1: (PRIMARY,), HEAT2: (SECONDARY,)}
FULL_V, NORMAL_V, LOW_V = 3.62, 3.30, 3.35  # at HVD; inside the window; below hvd_reconnect


def box(dead_time_s: float = 2.0, **diversion: object) -> ControlSettings:
    return ControlSettings(
        cells=IMMEDIATE,
        outputs=OUTPUTS,
        diversion=replace(DiversionSettings(dead_time_s=dead_time_s), **diversion),  # type: ignore[arg-type]
    )


def sample(
    t: float, volts: float = NORMAL_V, battery_c: float | None = 20.0, **kwargs: object
) -> Measurement:
    kwargs.setdefault("pv_current", 0.0)
    return Measurement(float(t), (volts,) * 8, 0.0, external_temperatures=(battery_c,), **kwargs)  # type: ignore[arg-type]


# --- the rules, one at a time -----------------------------------------------------------------


def test_diverts_after_hvd_once_the_dead_time_has_passed() -> None:
    controller = Controller(box(dead_time_s=2.0), 0.0)
    # At start every path counts as off since the controller was built (lines released).
    assert not controller.update(sample(1)).outputs[PRIMARY]
    report = controller.update(sample(2))
    assert report.outputs[PRIMARY]
    assert not report.outputs[HEAT1]
    report = controller.update(sample(3, FULL_V))  # HVD: the battery path breaks first
    assert not report.outputs[PRIMARY]
    assert not report.outputs[HEAT1]
    assert not controller.update(sample(4, FULL_V)).outputs[HEAT1]  # 1 s: within the dead time
    report = controller.update(sample(5, FULL_V))
    assert report.outputs[HEAT1]
    assert report.diversion is not None
    assert report.diversion.diverting


def test_the_battery_path_waits_for_the_heat_path_to_break() -> None:
    controller = Controller(box(dead_time_s=2.0), 0.0)
    for t in range(1, 6):
        controller.update(sample(t, FULL_V))
    assert controller.report is not None
    assert controller.report.outputs[HEAT1]
    report = controller.update(sample(6, LOW_V))  # HVD released: charging is allowed again
    assert report.charge_allowed
    assert not report.outputs[HEAT1]
    assert not report.outputs[PRIMARY]
    assert not controller.update(sample(7, LOW_V)).outputs[PRIMARY]
    assert controller.update(sample(8, LOW_V)).outputs[PRIMARY]


@pytest.mark.parametrize("rebuilt_at", [0.0, 5.0])
def test_a_rebuild_between_decisions_keeps_the_dead_time(rebuilt_at: float) -> None:
    """New settings rebuild the controller from its snapshot, even from a time before the
    last decision (the runtime rebuilds from the last good measurement): a heat path that was
    on still holds its battery path off for the dead time after it is decided off."""
    settings = box(dead_time_s=2.0)
    controller = Controller(settings, 0.0)
    for t in range(1, 6):
        controller.update(sample(t, FULL_V))
    assert controller.report is not None
    assert controller.report.outputs[HEAT1]
    state = PersistedState.from_dict(json.loads(json.dumps(controller.snapshot().to_dict())))
    rebuilt = Controller(settings, rebuilt_at, state)
    report = rebuilt.update(sample(6, LOW_V))
    assert report.charge_allowed
    assert not report.outputs[HEAT1]
    assert not report.outputs[PRIMARY]
    assert not rebuilt.update(sample(7, LOW_V)).outputs[PRIMARY]
    assert rebuilt.update(sample(8, LOW_V)).outputs[PRIMARY]


def test_a_dead_time_of_zero_still_leaves_one_decision_with_both_off() -> None:
    controller = Controller(box(dead_time_s=0.0), 0.0)
    controller.update(sample(1))
    report = controller.update(sample(2, FULL_V))
    assert not report.outputs[PRIMARY]
    assert not report.outputs[HEAT1]
    assert controller.update(sample(3, FULL_V)).outputs[HEAT1]


def test_no_diversion_while_charging_or_before_full() -> None:
    controller = Controller(box(), 0.0)
    for t in range(1, 20):
        report = controller.update(sample(t))
        assert not report.outputs[HEAT1]
        assert not report.outputs[HEAT2]


def test_dual_pv_staging_is_not_a_surplus() -> None:
    """At level 1 the secondary array is off to keep the current under imax, not because the
    battery is full: its heat path stays off."""
    controller = Controller(box(), 0.0)
    for t in range(1, 10):
        report = controller.update(sample(t))
        assert report.dual_pv_level == 1
        assert not report.outputs[SECONDARY]
        assert not report.outputs[HEAT2]


@pytest.mark.parametrize(
    ("kwargs", "reason"),
    [
        ({"internal_temperature": 70.0}, "board over-temperature (a fault)"),
        ({"volts": 3.80}, "over-voltage lockout"),
    ],
)
def test_never_on_a_fault(kwargs: dict[str, float], reason: str) -> None:
    controller = Controller(box(dead_time_s=0.0), 0.0)
    for t in range(1, 6):
        report = controller.update(sample(t, **{"volts": FULL_V, **kwargs}))
        assert report.faults, reason
        assert not report.outputs[HEAT1], reason
        assert not report.outputs[HEAT2], reason


def test_never_on_stale_measurements() -> None:
    controller = Controller(box(dead_time_s=0.0), 0.0)
    for t in range(1, 5):
        controller.update(sample(t, FULL_V))
    assert controller.report is not None
    assert controller.report.outputs[HEAT1]
    report = controller.update(MeasurementFailure(4 + 5.5, "bus timeout"))
    assert Interlock.MEASUREMENT_STALE in report.interlocks
    assert not report.outputs[HEAT1]
    assert not report.outputs[HEAT2]


def test_a_forced_off_hold_of_the_diversion_holds() -> None:
    controller = Controller(box(dead_time_s=0.0), 0.0)
    controller.force_off(HEAT1, 100.0, 0.0)
    for t in range(1, 10):
        report = controller.update(sample(t, FULL_V))
        assert not report.outputs[HEAT1]
        assert report.outputs[HEAT2]  # the other array's heat path is not held


def test_a_hold_of_the_battery_path_alone_is_no_surplus() -> None:
    controller = Controller(box(dead_time_s=0.0), 0.0)
    controller.force_off(PRIMARY, 100.0, 0.0)
    for t in range(1, 10):
        assert not controller.update(sample(t)).outputs[HEAT1]


@pytest.mark.parametrize("battery_c", [-5.0, 50.0, None])
def test_temperature_blocked_charging_diverts_only_when_the_heater_is_elsewhere(
    battery_c: float | None,
) -> None:
    safe = Controller(box(dead_time_s=0.0), 0.0)
    elsewhere = Controller(box(dead_time_s=0.0, heater_warms_battery=False), 0.0)
    for t in range(1, 6):
        # Full as well: a heater that may warm the cells never runs on a too-hot pack.
        assert not safe.update(sample(t, FULL_V, battery_c)).outputs[HEAT1]
        report = elsewhere.update(sample(t, NORMAL_V, battery_c))
    assert not report.charge_allowed
    assert report.outputs[HEAT1]
    assert report.outputs[HEAT2]


def test_max_soc_hold_is_full() -> None:
    settings = replace(box(dead_time_s=0.0), max_soc=MaxSocSettings(enabled=True, max_soc=90.0))
    controller = Controller(settings, 0.0)
    controller.update(sample(1))
    controller.mark_full(1.0)  # today's full charge done: cycle below 90 %
    controller.update(sample(2))
    report = controller.update(sample(3))
    assert Interlock.MAX_SOC in report.interlocks
    assert report.outputs[HEAT1]
    assert not report.outputs[PRIMARY]


def test_type_zero_on_a_heater_never_conducts() -> None:
    outputs = (
        OutputSettings(PRIMARY, OutputType.HVD, Wiring.CHARGE),
        OutputSettings("element", OutputType.UNUSED, Wiring.HEATER),
    )
    controller = Controller(ControlSettings(cells=IMMEDIATE, outputs=outputs), 0.0)
    for t in range(1, 10):
        assert not controller.update(sample(t, FULL_V)).outputs["element"]


def test_an_unpaired_diversion_output_serves_every_charge_output() -> None:
    outputs = (
        OutputSettings(PRIMARY, OutputType.HVD, Wiring.CHARGE),
        OutputSettings("charger", OutputType.HVD, Wiring.CHARGE),
        OutputSettings("element", OutputType.DIVERSION, Wiring.HEATER),
    )
    settings = ControlSettings(
        cells=IMMEDIATE, outputs=outputs, diversion=DiversionSettings(dead_time_s=0.0)
    )
    controller = Controller(settings, 0.0)
    controller.force_off("charger", 1000.0, 0.0)
    for t in range(1, 4):
        assert not controller.update(sample(t)).outputs["element"]
    controller.update(sample(4, FULL_V))
    assert controller.update(sample(5, FULL_V)).outputs["element"]


def test_the_wiring_rules() -> None:
    assert ALLOWED_TYPES[Wiring.HEATER] == {OutputType.UNUSED, OutputType.DIVERSION}
    assert OutputType.DIVERSION not in ALLOWED_TYPES[Wiring.CHARGE]
    assert OutputType.DIVERSION not in ALLOWED_TYPES[Wiring.SIGNAL]
    assert inferred_wiring(OutputType.DIVERSION) is Wiring.HEATER
    bad = (
        OutputSettings("loads", OutputType.LVD, Wiring.LOAD),
        OutputSettings("heat", OutputType.DIVERSION, Wiring.HEATER, diverts="loads"),
        OutputSettings("pv", OutputType.HVD, Wiring.CHARGE, diverts="pv"),
    )
    assert diversion_problems(bad) == [
        "outputs[1].diverts: must name a charge-wired output (got 'loads')",
        "outputs[2].diverts: only a diversion output (type 7, heater) names its array",
    ]
    with pytest.raises(ValueError, match="charge-wired"):
        Controller(ControlSettings(outputs=bad), 0.0)
    lonely = (OutputSettings("heat", OutputType.DIVERSION, Wiring.HEATER),)
    assert diversion_problems(lonely) == [
        "outputs[0].diverts: a diversion output needs a charge-wired output"
    ]


# --- the safety property ----------------------------------------------------------------------

cell_voltage = st.sampled_from([2.4, 2.9, 3.1, 3.3, 3.35, 3.45, 3.55, 3.6, 3.62, 3.65, 3.7, 3.8])
step = st.one_of(
    st.tuples(
        st.floats(min_value=0.0, max_value=8.0),
        st.one_of(
            st.lists(cell_voltage, min_size=8, max_size=8),
            cell_voltage.map(lambda volts: [volts] * 8),  # often full, or not, all together
        ),
        st.floats(min_value=-100.0, max_value=100.0),
        st.sampled_from([20.0, 20.0, 20.0, -10.0, 1.0, 50.0, None]),  # battery temperature
        st.sampled_from([25.0, 25.0, 25.0, 65.0]),  # board temperature
        st.sampled_from([None, None, HEAT1, PRIMARY]),  # a hold asked for before the sample
    ),
    st.tuples(
        st.floats(min_value=0.0, max_value=8.0),
        st.none(),
        st.none(),
        st.none(),
        st.none(),
        st.none(),
    ),
)

Step = tuple[float, list[float] | None, float | None, float | None, float | None, str | None]


@settings(max_examples=200, deadline=None)
@given(
    st.lists(step, min_size=1, max_size=60),
    st.sampled_from([0.0, 1.0, 2.0, 5.0]),
    st.booleans(),
)
def test_diversion_never_conducts_against_its_rules(
    steps: list[Step], dead_time_s: float, warms: bool
) -> None:
    """At every decision: a heat path never conducts together with its battery path; each
    conducts only once the other has been off (decided off) for the dead time, at an earlier
    decision; a heat path is off on any fault, on stale measurements, during its hold, and
    while charging is blocked by temperature if the heater may warm the battery; and it is on
    only while its battery path is off because the battery is full (or, with the heater
    elsewhere, blocked by temperature)."""
    config = box(dead_time_s=dead_time_s, heater_warms_battery=warms)
    controller = Controller(config, 0.0)
    # The oracle's own account: when each output was last decided on, and since when off.
    off_since: dict[str, float | None] = dict.fromkeys((PRIMARY, SECONDARY, HEAT1, HEAT2), 0.0)
    holds: dict[str, float] = {}
    now, last_good = 0.0, None
    for advance, cells, current, battery_c, board_c, hold in steps:
        now += advance
        if hold is not None:
            controller.force_off(hold, now + 10.0, now)
            holds[hold] = now + 10.0
        if cells is None or current is None:
            report = controller.update(MeasurementFailure(now, "random failure"))
        else:
            measurement = Measurement(
                now,
                tuple(cells),
                current,
                pv_current=max(0.0, current),
                internal_temperature=board_c,
                external_temperatures=(battery_c,),
            )
            report = controller.update(measurement)
            last_good = now
        stale = last_good is None or now - last_good > config.stale_after_s
        temperature = bool(
            report.interlocks
            & {
                Interlock.CHARGE_TOO_COLD,
                Interlock.CHARGE_TOO_HOT,
                Interlock.BATTERY_TEMPERATURE_UNKNOWN,
            }
        )
        full = bool(report.interlocks & {Interlock.HVD, Interlock.MAX_SOC})
        for heat, paths in PAIRS.items():
            on = report.outputs[heat]
            for path in paths:
                assert not (on and report.outputs[path]), (heat, path)
                if on:
                    since = off_since[path]
                    assert since is not None
                    assert since < now
                    assert now - since >= dead_time_s
                if report.outputs[path]:
                    since = off_since[heat]
                    assert since is not None
                    assert since < now
                    assert now - since >= dead_time_s
            if not on:
                continue
            assert not report.faults
            assert not stale
            assert Fault.OVER_VOLTAGE_LOCKOUT not in report.faults
            assert not (heat in holds and now < holds[heat])
            assert not (warms and temperature)
            assert full or (temperature and not warms)
        for name, since in off_since.items():
            if report.outputs[name]:
                off_since[name] = None
            elif since is None:
                off_since[name] = now


# --- break before make alone ------------------------------------------------------------------


def test_break_before_make_restarts_the_dead_time_when_the_clock_goes_back() -> None:
    gate = BreakBeforeMake(OUTPUTS, 5.0, 100.0)
    assert gate.settle(106.0, {HEAT1: True}) == {
        PRIMARY: False,
        SECONDARY: False,
        HEAT1: True,
        HEAT2: False,
    }
    gate.settle(107.0, {})  # the heat path breaks at 107
    assert not gate.settle(50.0, {PRIMARY: True})[PRIMARY]  # clock back: wait 5 s from 50
    assert not gate.settle(54.0, {PRIMARY: True})[PRIMARY]
    assert gate.settle(55.0, {PRIMARY: True})[PRIMARY]


# --- the estimate -----------------------------------------------------------------------------

SITE = DiversionSettings(
    latitude_deg=45.0,
    arrays=(ArraySettings(PRIMARY, rated_current_a=18.0, open_circuit_v=46.0, heater_ohm=1.5),),
)
NOON = 1780272000.0 + 12 * 3600  # 1 June 2026, 12:00 UTC (longitude 0)


def estimator(settings: DiversionSettings = SITE) -> DiversionEstimator:
    return DiversionEstimator(settings, OUTPUTS, 0.0)


def feed(
    est: DiversionEstimator,
    t: float,
    pv: float | None,
    *,
    charging: bool,
    heating: bool = False,
    heat_w: float | None = None,
) -> DiversionCounters:
    was = {PRIMARY: charging, HEAT1: heating}
    report = est.update(
        SampleInputs(t, pv, 27.0, heat_w),
        was_on=was,
        is_on=was,
        full={PRIMARY: not charging},
        heat_paths=PAIRS,
    )
    return report.counters


def test_the_estimate_learns_while_charging_and_follows_the_clear_sky() -> None:
    est = estimator()
    for minute in range(0, 60):
        feed(est, NOON - 3600 + minute * 60, 14.0, charging=True)
    learned_at_noon = est.available_current(PRIMARY, NOON)
    assert learned_at_noon == pytest.approx(14.0, rel=0.02)
    afternoon = NOON + 4 * 3600
    ratio = plane_irradiance(afternoon, 45.0, 0.0, 45.0, 180.0) / plane_irradiance(
        NOON, 45.0, 0.0, 45.0, 180.0
    )
    assert est.available_current(PRIMARY, afternoon) == pytest.approx(14.0 * ratio, rel=0.02)
    assert est.available_current(PRIMARY, NOON + 12 * 3600) == 0.0  # midnight


def test_without_learning_the_rated_current_and_the_clear_sky() -> None:
    est = estimator()
    sky = plane_irradiance(NOON, 45.0, 0.0, 45.0, 180.0)
    assert est.available_current(PRIMARY, NOON) == pytest.approx(18.0 * sky / 1000.0)
    # The arrays behind diversion outputs are always estimated, when anything is known.
    assert estimator(DiversionSettings()).available_current(PRIMARY, NOON) is None


def test_available_is_unknown_without_arrays_and_zero_while_charging() -> None:
    plain = Controller(ControlSettings(cells=IMMEDIATE), 0.0).update(sample(1, FULL_V))
    assert plain.diversion is None  # no array known to the estimate: nothing to report
    # An array described without any heater: the surplus and the curtailment are still told.
    described = ControlSettings(
        cells=IMMEDIATE, diversion=DiversionSettings(arrays=(ArraySettings("extio4"),))
    )
    report = Controller(described, 0.0).update(sample(1, FULL_V))
    assert report.diversion is not None
    assert not report.diversion.diverting
    est = estimator()
    report = est.update(
        SampleInputs(NOON, 10.0, 27.0, None),
        was_on={PRIMARY: True},
        is_on={PRIMARY: True},
        full={PRIMARY: False},
        heat_paths=PAIRS,
    )
    assert report.available_w == 0.0
    assert report.power_w == 0.0
    assert not report.diverting


def test_another_charge_source_on_the_shunt_teaches_nothing() -> None:
    est = estimator()
    was = {PRIMARY: True, SECONDARY: True}
    for minute in range(5):
        est.update(
            SampleInputs(NOON + minute * 60, 30.0, 27.0, None),
            was_on=was,
            is_on=was,
            full={},
            heat_paths=PAIRS,
        )
    assert est.learned == {}


def test_heater_power_is_i_squared_r_capped_at_the_knee() -> None:
    est = estimator()
    assert est.heater_power(PRIMARY, 10.0, 27.0) == pytest.approx(150.0)  # 15 V on 1.5 ohm
    assert est.heater_power(PRIMARY, 30.0, 27.0) == pytest.approx(30.0 * 0.8 * 46.0)
    plain = estimator(DiversionSettings(arrays=(ArraySettings(PRIMARY),)))
    assert plain.heater_power(PRIMARY, 10.0, 27.0) == pytest.approx(270.0)


def test_counting_diverted_estimated_measured_and_curtailed() -> None:
    est = estimator()
    for minute in range(30):
        feed(est, NOON - 1800 + minute * 60, 12.0, charging=True)
    # An hour of the array off and its heater on: estimated diversion, nothing curtailed.
    for minute in range(61):
        counters = feed(est, NOON + minute * 60, 0.0, charging=False, heating=True)
    assert counters.diverted_wh == counters.diverted_estimated_wh
    assert counters.diverted_estimated_wh == pytest.approx(12.0**2 * 1.5, rel=0.05)
    assert counters.curtailed_wh == 0.0
    # A heat shunt: measured from now on.
    before = counters
    feed(est, NOON + 3660, 0.0, charging=False, heating=True, heat_w=200.0)
    counters = feed(est, NOON + 3720, 0.0, charging=False, heating=True, heat_w=200.0)
    assert counters.diverted_measured_wh == pytest.approx(2 * 200.0 / 60.0)
    assert counters.diverted_estimated_wh == before.diverted_estimated_wh
    # Full, heater off: curtailed.
    counters = feed(est, NOON + 3780, 0.0, charging=False)
    assert counters.curtailed_wh > 0.0


def test_a_gap_counts_nothing() -> None:
    est = estimator()
    feed(est, NOON, 0.0, charging=False, heating=True)
    counters = feed(est, NOON + 3600, 0.0, charging=False, heating=True)
    assert counters == DiversionCounters()


# Any increment a bug could hand in: ordinary, negative, huge, NaN and infinite.
increment = st.one_of(
    st.floats(min_value=-1e9, max_value=1e9), st.sampled_from([math.nan, math.inf, -math.inf])
)


@given(st.lists(st.tuples(increment, increment, increment), max_size=30))
def test_diversion_counters_never_decrease(steps: list[tuple[float, float, float]]) -> None:
    totals = DiversionCounters()
    for measured, estimated, curtailed in steps:
        grown = add_diversion(
            totals, measured_wh=measured, estimated_wh=estimated, curtailed_wh=curtailed
        )
        for name in DiversionCounters.__slots__:
            assert getattr(grown, name) >= getattr(totals, name)
            assert math.isfinite(getattr(grown, name))
        assert grown.diverted_wh == pytest.approx(
            grown.diverted_measured_wh + grown.diverted_estimated_wh
        )
        totals = grown


# --- persistence ------------------------------------------------------------------------------


def test_counters_and_learning_survive_a_save_and_load() -> None:
    settings = replace(box(dead_time_s=0.0), diversion=replace(SITE, dead_time_s=0.0))
    controller = Controller(settings, NOON - 600)
    for second in range(0, 600, 10):  # charging in the sun: learn
        controller.update(sample(NOON - 600 + second, NORMAL_V, pv_current=12.0))
    for second in range(0, 1200, 10):  # full: the heat path takes it
        report = controller.update(sample(NOON + second, FULL_V, pv_current=0.0))
    assert report.diversion is not None
    counters = report.diversion.counters
    assert counters.diverted_estimated_wh > 0.0
    saved = json.loads(json.dumps(controller.snapshot().to_dict()))
    restored = PersistedState.from_dict(saved)
    assert restored.diversion.counters == counters
    again = Controller(settings, NOON + 1200, restored)
    report = again.update(sample(NOON + 1200, FULL_V, pv_current=0.0))
    assert report.diversion is not None
    assert report.diversion.counters.diverted_wh >= counters.diverted_wh
    assert PRIMARY in again.snapshot().diversion.learned


def test_a_state_saved_before_diversion_loads_with_zero_counters() -> None:
    data = json.loads(json.dumps(Controller(box(), 0.0).snapshot().to_dict()))
    del data["diversion"]
    assert PersistedState.from_dict(data).diversion == EstimatorState()


def test_negative_saved_counters_are_refused() -> None:
    data = json.loads(json.dumps(Controller(box(), 0.0).snapshot().to_dict()))
    data["diversion"]["counters"]["diverted_wh"] = -1.0
    with pytest.raises(ValueError, match=r"diversion\.counters\.diverted_wh"):
        PersistedState.from_dict(data)
