"""Dual-PV staging: adjacent steps, hold times, over-current step-down, HVD restart."""

from __future__ import annotations

from edge_agent.control.controller import Controller
from edge_agent.control.dual_pv import DualPvStager, LevelChange
from edge_agent.control.model import EventKind, Measurement
from edge_agent.control.settings import (
    CellThresholds,
    ControlSettings,
    DualPvSettings,
    OutputSettings,
    OutputType,
    Wiring,
)

PV = DualPvSettings(imax=50.0, min_level_hold_s=60.0)  # up below 25 A / 33 A, down above 60 A


def stager_running_at(level: int, since: float = 0.0) -> DualPvStager:
    stager = DualPvStager(PV, level, since, charging_was_allowed=True)
    assert stager.level == level
    return stager


def test_steps_up_one_level_at_a_time_after_hold() -> None:
    stager = stager_running_at(1)
    assert stager.update(59.9, 10.0, charging_allowed=True) is None  # hold not over
    assert stager.update(60.0, 10.0, True) == LevelChange(1, 2)
    assert stager.update(61.0, 0.0, True) is None  # L2 needs its own hold: no skip to L3
    assert stager.update(119.9, 0.0, True) is None
    assert stager.update(120.0, 32.9, True) == LevelChange(2, 3)
    assert stager.update(500.0, 0.0, True) is None  # L3 is the top


def test_up_thresholds_are_strict() -> None:
    stager = stager_running_at(1)
    assert stager.update(100.0, 25.0, True) is None  # not below 50 % of imax
    assert stager.update(101.0, 24.99, True) == LevelChange(1, 2)
    assert stager.update(200.0, 33.0, True) is None  # not below 66 %
    assert stager.update(201.0, 32.99, True) == LevelChange(2, 3)


def test_steps_down_immediately_above_120_percent_one_level_per_sample() -> None:
    stager = stager_running_at(3, since=0.0)
    assert stager.update(1.0, 60.0, True) is None  # exactly 120 %: stays
    assert stager.update(2.0, 60.1, True) == LevelChange(3, 2)
    assert stager.update(3.0, 80.0, True) == LevelChange(2, 1)
    assert stager.update(4.0, 80.0, True) is None  # L1 is the floor


def test_discharge_counts_as_zero_charge_current() -> None:
    stager = stager_running_at(1)
    assert stager.update(100.0, -40.0, True) == LevelChange(1, 2)


def test_level_frozen_while_charging_blocked_and_hold_restarts() -> None:
    stager = stager_running_at(2)
    assert stager.update(100.0, 0.0, charging_allowed=False) is None
    assert stager.level == 2
    assert stager.update(200.0, 0.0, True) is None  # resumed: this sample saw sources off
    assert stager.update(259.0, 0.0, True) is None
    assert stager.update(260.0, 0.0, True) == LevelChange(2, 3)


OUTPUTS = (
    OutputSettings("primary", OutputType.HVD, Wiring.CHARGE),
    OutputSettings("secondary", OutputType.DUAL_PV, Wiring.CHARGE),
    OutputSettings("load", OutputType.LVD, Wiring.LOAD),
)


def _update(
    controller: Controller, t: float, current: float, volts: float = 3.3
) -> tuple[bool, bool, int | None, list[dict[str, str | float | int]]]:
    report = controller.update(Measurement(t, (volts,) * 8, current, external_temperatures=(20.0,)))
    levels = [dict(e.detail) for e in report.events if e.kind is EventKind.DUAL_PV_LEVEL]
    return report.outputs["primary"], report.outputs["secondary"], report.dual_pv_level, levels


def test_controller_walks_levels_and_restarts_at_l1_after_hvd() -> None:
    config = ControlSettings(cells=CellThresholds(hvd_delay_s=0.0), outputs=OUTPUTS, dual_pv=PV)
    controller = Controller(config, 0.0)
    assert _update(controller, 1, 5.0)[:3] == (True, False, 1)  # first sample: hold restarts
    assert _update(controller, 61, 5.0) == (False, True, 2, [{"from": 1, "to": 2}])
    assert _update(controller, 121, 30.0) == (True, True, 3, [{"from": 2, "to": 3}])
    assert _update(controller, 122, 70.0) == (False, True, 2, [{"from": 3, "to": 2}])
    assert _update(controller, 181, 20.0)[:3] == (False, True, 2)
    assert _update(controller, 182, 20.0)[:3] == (True, True, 3)
    primary, secondary, level, _ = _update(controller, 230, 40.0, volts=3.6)  # HVD
    assert (primary, secondary, level) == (False, False, 3)  # level kept, sources off
    assert _update(controller, 400, 0.0, volts=3.45)[:3] == (False, False, 3)
    primary, secondary, level, changes = _update(controller, 401, 0.0, volts=3.35)
    assert (primary, secondary, level) == (True, False, 1)
    assert changes == [{"from": 3, "to": 1}]  # a restart, not a walk: documented exception
    assert _update(controller, 460, 0.0)[:3] == (True, False, 1)  # hold from the restart
    assert _update(controller, 461, 0.0)[:3] == (False, True, 2)


def test_without_type_6_there_is_no_level() -> None:
    config = ControlSettings(outputs=(OutputSettings("primary", OutputType.HVD, Wiring.CHARGE),))
    controller = Controller(config, 0.0)
    report = controller.update(Measurement(1.0, (3.3,) * 8, 0.0, external_temperatures=(20.0,)))
    assert report.dual_pv_level is None
    assert report.outputs["primary"]
    report = controller.update(Measurement(100.0, (3.3,) * 8, 80.0, external_temperatures=(20.0,)))
    assert report.dual_pv_level is None
    assert report.outputs["primary"]
