"""Energy counters: the right bucket for each flow, and never backwards."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.control.controller import Controller
from edge_agent.control.counters import EnergyCounterAccumulator
from edge_agent.control.model import EnergyCounters, Measurement
from edge_agent.control.settings import ControlSettings


def test_charge_and_discharge_buckets_without_pv_shunt() -> None:
    acc = EnergyCounterAccumulator()
    acc.add_interval(2.0, 26.0, None)
    totals = acc.add_interval(-0.5, 25.0, None)
    assert totals.battery_in_ah == 2.0
    assert totals.battery_in_wh == 52.0
    assert totals.battery_out_ah == 0.5
    assert totals.battery_out_wh == 12.5
    assert totals.load_ah == 0.5
    assert totals.load_wh == 12.5
    assert totals.pv_ah == 0.0


def test_load_is_pv_minus_battery_with_a_pv_shunt() -> None:
    acc = EnergyCounterAccumulator()
    totals = acc.add_interval(1.0, 26.0, 3.0)  # 3 Ah PV, 1 Ah into the battery
    assert totals.pv_ah == 3.0
    assert totals.pv_wh == 78.0
    assert totals.load_ah == 2.0
    assert totals.load_wh == 52.0
    totals = acc.add_interval(-1.0, 25.0, 0.0)  # night: battery feeds the load
    assert totals.load_ah == 3.0


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_non_finite_increments_are_dropped(bad: float) -> None:
    acc = EnergyCounterAccumulator(EnergyCounters(battery_in_ah=5.0, pv_ah=1.0))
    totals = acc.add_interval(bad, 26.0, bad)
    assert all(math.isfinite(v) for v in vars_of(totals))
    assert totals.battery_in_ah >= 5.0
    assert totals.pv_ah >= 1.0


def vars_of(counters: EnergyCounters) -> list[float]:
    return [getattr(counters, name) for name in counters.__slots__]


@given(
    st.lists(
        st.tuples(
            st.floats(allow_nan=True, allow_infinity=True),
            st.floats(allow_nan=True, allow_infinity=True),
            st.one_of(st.none(), st.floats(allow_nan=True, allow_infinity=True)),
        ),
        max_size=30,
    )
)
def test_counters_never_decrease(steps: list[tuple[float, float, float | None]]) -> None:
    acc = EnergyCounterAccumulator()
    previous = vars_of(acc.totals)
    for battery, volts, pv in steps:
        current = vars_of(acc.add_interval(battery, volts, pv))
        assert all(now >= before for now, before in zip(current, previous, strict=True))
        assert all(math.isfinite(v) and v >= 0.0 for v in current)
        previous = current


def test_controller_counts_from_samples() -> None:
    controller = Controller(ControlSettings(), 0.0)
    cells = (3.25,) * 8  # 26 V pack
    controller.update(Measurement(0.0, cells, 10.0, pv_current=15.0))
    report = controller.update(Measurement(36.0, cells, 10.0, pv_current=15.0))  # 0.01 h
    assert report.counters.battery_in_ah == pytest.approx(0.1)
    assert report.counters.battery_in_wh == pytest.approx(2.6)
    assert report.counters.pv_ah == pytest.approx(0.15)
    assert report.counters.load_ah == pytest.approx(0.05)
    report = controller.update(Measurement(72.0, cells, -10.0, charge_delta_ah=-0.1))
    assert report.counters.battery_out_ah == pytest.approx(0.1)
    assert report.counters.battery_in_ah == pytest.approx(0.1)  # unchanged, not reduced
