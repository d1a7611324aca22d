"""Controller: composition of outputs, safety invariants, commands and persistence."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.control.controller import Controller
from edge_agent.control.extio import ALLOWED_TYPES
from edge_agent.control.model import (
    EventKind,
    Fault,
    Interlock,
    Measurement,
    MeasurementFailure,
)
from edge_agent.control.persisted import PersistedState
from edge_agent.control.settings import (
    CellThresholds,
    ControlSettings,
    MaxSocSettings,
    OutputSettings,
    OutputType,
    Wiring,
)
from tests.agent.safety_oracle import Streak

# Limits that trip at the first sample beyond them: most tests here are about the limits
# themselves; the delays have tests of their own below.
IMMEDIATE = CellThresholds(hvd_delay_s=0.0, lvd_delay_s=0.0, ovlo_delay_s=0.0, uvlo_delay_s=0.0)

BATTERY_20C: dict[str, tuple[float | None, ...]] = {"external_temperatures": (20.0,)}

CHARGE = "extio4"  # type 1 in the SBMS0 defaults
LOAD = "extio3"  # type 2
FAULT = "extio6"  # type 5
UNUSED = "extio5"


def sample(t: float, volts: float = 3.30, current: float = 0.0, **kwargs: object) -> Measurement:
    """A good sample: every cell at `volts`, the battery thermistor at 20 C unless given."""
    cells = kwargs.pop("cells", (volts,) * 8)
    kwargs.setdefault("external_temperatures", (20.0,))
    return Measurement(float(t), cells, current, **kwargs)  # type: ignore[arg-type]


def kinds(report_events: tuple[object, ...]) -> list[EventKind]:
    return [e.kind for e in report_events]  # type: ignore[attr-defined]


def started(settings: ControlSettings | None = None, volts: float = 3.30) -> Controller:
    controller = Controller(settings or ControlSettings(cells=IMMEDIATE), 0.0)
    controller.update(sample(1, volts))
    return controller


def test_startup_everything_off_until_first_good_measurement() -> None:
    controller = Controller(ControlSettings(), 0.0)
    report = controller.update(MeasurementFailure(1.0, "bus timeout"))
    assert report.outputs == {LOAD: False, CHARGE: False, UNUSED: False, FAULT: False}
    assert Interlock.MEASUREMENT_STALE in report.interlocks
    assert report.measurement is None
    report = controller.update(sample(2))
    assert report.outputs == {LOAD: True, CHARGE: True, UNUSED: False, FAULT: False}
    assert report.charge_allowed
    assert report.load_allowed


def test_hvd_trips_exactly_at_threshold_and_releases_below_reconnect() -> None:
    controller = started()
    report = controller.update(sample(2, cells=(3.3,) * 7 + (3.599,)))
    assert report.outputs[CHARGE]
    report = controller.update(sample(3, cells=(3.3,) * 7 + (3.60,)))
    assert not report.outputs[CHARGE]
    assert Interlock.HVD in report.interlocks
    assert EventKind.HVD_TRIP in kinds(report.events)
    report = controller.update(sample(4, 3.40))  # at reconnect: not yet
    assert not report.outputs[CHARGE]
    assert EventKind.HVD_TRIP not in kinds(report.events)  # transitions only
    report = controller.update(sample(5, 3.399))
    assert report.outputs[CHARGE]
    assert kinds(report.events).count(EventKind.HVD_RELEASE) == 1
    assert report.outputs[LOAD]  # HVD never touches loads


def test_trips_name_the_cell_and_its_voltage() -> None:
    """Issue 20: the logbook says "cell 3 reached 3.61 V": the trip event carries it."""
    controller = started()
    cells = (3.3, 3.3, 3.612, 3.3, 3.3, 3.3, 3.3, 3.3)
    report = controller.update(sample(2, cells=cells))
    (trip,) = [e for e in report.events if e.kind is EventKind.HVD_TRIP]
    assert trip.detail == {"cell": 3, "voltage": 3.612}
    lvd = ControlSettings().cells.lvd
    controller = started()
    report = controller.update(sample(2, cells=(3.3,) * 6 + (lvd - 0.01, 3.3)))
    (trip,) = [e for e in report.events if e.kind is EventKind.LVD_TRIP]
    assert trip.detail == {"cell": 7, "voltage": lvd - 0.01}
    report = controller.update(sample(3, 3.3))
    (release,) = [e for e in report.events if e.kind is EventKind.LVD_RELEASE]
    assert release.detail == {}


def test_lvd_trips_exactly_at_threshold_and_releases_above_reconnect() -> None:
    controller = started()
    lvd, reconnect = ControlSettings().cells.lvd, ControlSettings().cells.lvd_reconnect
    report = controller.update(sample(2, cells=(3.3,) * 7 + (lvd + 0.001,)))
    assert report.outputs[LOAD]
    report = controller.update(sample(3, cells=(3.3,) * 7 + (lvd,)))
    assert not report.outputs[LOAD]
    assert Interlock.LVD in report.interlocks
    assert EventKind.LVD_TRIP in kinds(report.events)
    assert report.outputs[CHARGE]  # charging stays allowed to recover
    report = controller.update(sample(4, cells=(3.3,) * 7 + (reconnect,)))
    assert not report.outputs[LOAD]
    report = controller.update(sample(5, cells=(3.3,) * 7 + (reconnect + 0.001,)))
    assert report.outputs[LOAD]
    assert EventKind.LVD_RELEASE in kinds(report.events)


def test_stale_fault_asserts_only_after_stale_after_s_and_recovers_by_itself() -> None:
    controller = started()  # good sample at t=1, stale_after_s = 5
    report = controller.update(MeasurementFailure(6.0, "nack"))
    assert report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert not report.outputs[FAULT]
    report = controller.update(MeasurementFailure(6.001, "nack"))
    assert not report.outputs[CHARGE]
    assert not report.outputs[LOAD]
    assert report.outputs[FAULT]
    assert Fault.MEASUREMENT_FAILURE in report.faults
    assert Interlock.MEASUREMENT_STALE in report.interlocks
    assert EventKind.FAULT_RAISED in kinds(report.events)
    report = controller.update(sample(7))
    assert report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert not report.outputs[FAULT]
    assert [e.detail for e in report.events if e.kind is EventKind.FAULT_CLEARED] == [
        {"fault": "measurement_failure"}
    ]


def test_fault_output_asserts_after_startup_grace_without_any_measurement() -> None:
    controller = Controller(ControlSettings(), 100.0)
    assert not controller.update(MeasurementFailure(105.0, "x")).outputs[FAULT]
    assert controller.update(MeasurementFailure(105.5, "x")).outputs[FAULT]


@pytest.mark.parametrize(
    ("bad", "reason_part"),
    [
        (sample(2, cells=(3.3,) * 7), "cells"),
        (sample(2, cells=(3.3,) * 7 + (0.49,)), "cell voltage"),
        (sample(2, cells=(3.3,) * 7 + (5.01,)), "cell voltage"),
        (sample(2, cells=(3.3,) * 7 + (math.nan,)), "cell voltage"),
        (sample(2, current=2000.5), "current"),
        (sample(2, current=math.nan), "current"),
        (sample(2, charge_delta_ah=math.inf), "charge delta"),
        (sample(2, charge_delta_ah=5.0), "charge delta"),  # 18 kA over a second
        (sample(2, internal_temperature=151.0), "temperature"),
    ],
)
def test_implausible_measurements_count_as_failures(bad: Measurement, reason_part: str) -> None:
    controller = started()
    before = controller.snapshot()
    controller.update(bad)
    assert reason_part in (controller.last_failure_reason or "")
    after = controller.snapshot()
    assert after.soc.charge_ah == before.soc.charge_ah
    assert after.counters == before.counters
    for t in (6.5, 7.0):  # keeps failing: stale after 5 s since the last good one
        report = controller.update(replace(bad, timestamp=t))
    assert report.outputs[FAULT]
    assert not report.outputs[CHARGE]
    assert not report.outputs[LOAD]


def test_timestamps_going_backwards_are_rejected() -> None:
    controller = started()
    controller.update(sample(10))
    charge_before = controller.snapshot().soc.charge_ah
    controller.update(sample(9, current=100.0))
    assert controller.last_failure_reason == "timestamp went backwards"
    assert controller.snapshot().soc.charge_ah == charge_before
    report = controller.update(MeasurementFailure(15.5, "nack"))
    assert report.outputs[FAULT]
    assert not report.outputs[CHARGE]


def test_force_off_holds_until_time_and_cannot_turn_on() -> None:
    controller = started()
    controller.force_off(CHARGE, until=10.0, now=1.0)
    report = controller.update(sample(2))
    assert not report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert Interlock.FORCED_OFF in report.interlocks
    controller.force_off(LOAD, until=5.0, now=2.0)
    report = controller.update(sample(3, 3.65))  # HVD: charge off for its own reason too
    assert not report.outputs[CHARGE]
    assert not report.outputs[LOAD]
    assert not controller.update(sample(4.9, 3.45)).outputs[LOAD]
    assert controller.update(sample(5.0, 3.45)).outputs[LOAD]  # load hold expired at 5
    # expiry of the charge hold does not override HVD
    report = controller.update(sample(10.0, 3.45))
    assert not report.outputs[CHARGE]
    assert Interlock.FORCED_OFF not in report.interlocks


def test_force_off_replace_cancel_and_unknown_names() -> None:
    controller = started()
    controller.force_off(CHARGE, until=100.0, now=1.0)
    controller.force_off(CHARGE, until=3.0, now=1.0)  # an earlier time replaces it
    assert not controller.update(sample(2)).outputs[CHARGE]
    assert controller.update(sample(3)).outputs[CHARGE]
    controller.force_off(CHARGE, until=math.inf, now=3.0)
    assert not controller.update(sample(4)).outputs[CHARGE]
    controller.cancel_force_off(CHARGE, now=4.0)
    assert controller.update(sample(5)).outputs[CHARGE]
    with pytest.raises(KeyError):
        controller.force_off("extio9", until=10.0, now=5.0)
    with pytest.raises(KeyError):
        controller.cancel_force_off("extio9", now=5.0)
    with pytest.raises(ValueError, match="fault"):
        controller.force_off(FAULT, until=10.0, now=5.0)


def test_over_voltage_lockout_latches_until_cleared() -> None:
    controller = started(ControlSettings(cells=IMMEDIATE, lockouts_latch=True))
    report = controller.update(sample(2, cells=(3.3,) * 7 + (3.75,)))
    assert Fault.OVER_VOLTAGE_LOCKOUT in report.faults
    assert report.outputs[FAULT]
    assert not report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert controller.clear_faults(now=2.0) is False  # condition still present
    report = controller.update(sample(3, 3.30))  # condition gone (< 3.70), still latched
    assert Fault.OVER_VOLTAGE_LOCKOUT in report.faults
    assert not report.outputs[CHARGE]
    assert Interlock.OVER_VOLTAGE_LOCKOUT in report.interlocks
    assert controller.clear_faults(now=3.0) is True
    report = controller.update(sample(4, 3.30))
    assert report.faults == frozenset()
    assert report.outputs[CHARGE]
    assert not report.outputs[FAULT]
    assert EventKind.FAULT_CLEARED in kinds(report.events)
    assert controller.clear_faults(now=4.0) is False


def test_lockouts_without_latch_release_with_margin() -> None:
    controller = started()
    report = controller.update(sample(2, cells=(3.3,) * 7 + (2.50,)))
    assert Fault.UNDER_VOLTAGE_LOCKOUT in report.faults
    assert not report.outputs[LOAD]
    assert Interlock.UNDER_VOLTAGE_LOCKOUT in report.interlocks
    report = controller.update(sample(3, cells=(3.3,) * 7 + (2.55,)))  # margin 0.05: not yet
    assert Fault.UNDER_VOLTAGE_LOCKOUT in report.faults
    report = controller.update(sample(4, cells=(3.3,) * 7 + (2.551,)))
    assert Fault.UNDER_VOLTAGE_LOCKOUT not in report.faults
    report = controller.update(sample(5, cells=(3.3,) * 7 + (3.70,)))
    assert Fault.OVER_VOLTAGE_LOCKOUT not in report.faults
    report = controller.update(sample(6, cells=(3.3,) * 7 + (3.75,)))
    assert Fault.OVER_VOLTAGE_LOCKOUT in report.faults
    report = controller.update(sample(7, cells=(3.3,) * 7 + (3.70,)))
    assert Fault.OVER_VOLTAGE_LOCKOUT in report.faults
    report = controller.update(sample(8, cells=(3.3,) * 7 + (3.699,)))
    assert Fault.OVER_VOLTAGE_LOCKOUT not in report.faults


def test_internal_over_temperature_blocks_both_and_raises_fault() -> None:
    controller = started()
    assert controller.update(sample(2, internal_temperature=60.0)).outputs[CHARGE]
    report = controller.update(sample(3, internal_temperature=60.5))
    assert not report.outputs[CHARGE]
    assert not report.outputs[LOAD]
    assert report.outputs[FAULT]
    assert Fault.OVER_TEMPERATURE in report.faults
    assert Interlock.INTERNAL_OVER_TEMPERATURE in report.interlocks
    assert not controller.update(sample(4, internal_temperature=50.0)).outputs[CHARGE]
    report = controller.update(sample(5, internal_temperature=49.9))
    assert report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert not report.outputs[FAULT]


def test_battery_temperature_window_blocks_charging_only() -> None:
    controller = started()
    report = controller.update(sample(2, external_temperatures=(-0.5, None)))
    assert not report.outputs[CHARGE]
    assert report.outputs[LOAD]
    assert Interlock.CHARGE_TOO_COLD in report.interlocks
    assert not controller.update(sample(3, external_temperatures=(2.0,))).outputs[CHARGE]
    assert controller.update(sample(4, external_temperatures=(2.1,))).outputs[CHARGE]


def test_max_soc_limit_allows_one_full_charge_per_local_day() -> None:
    day = 86400.0
    config = ControlSettings(
        cells=IMMEDIATE, max_soc=MaxSocSettings(enabled=True, max_soc=90.0, hysteresis=3.0)
    )
    controller = Controller(config, 0.0)
    controller.set_soc(95.0, now=0.0)
    report = controller.update(sample(10))
    assert report.outputs[CHARGE]  # no full charge yet today: may go to 100 %
    report = controller.update(sample(20, 3.60))  # HVD trip syncs to 100 %
    assert report.soc == 100.0
    report = controller.update(sample(30, 3.35))  # HVD released, but full already today
    assert not report.outputs[CHARGE]
    assert Interlock.MAX_SOC in report.interlocks
    controller.set_soc(87.0, now=30.0)
    assert not controller.update(sample(40, 3.35)).outputs[CHARGE]  # 87: at release, holds
    controller.set_soc(86.9, now=40.0)
    assert controller.update(sample(50, 3.35)).outputs[CHARGE]
    controller.set_soc(90.0, now=50.0)
    assert not controller.update(sample(60, 3.35)).outputs[CHARGE]
    report = controller.update(sample(day + 1, 3.35))  # next day: one more full charge
    assert report.outputs[CHARGE]
    assert Interlock.MAX_SOC not in report.interlocks
    snapshot = controller.snapshot()
    assert snapshot.full_charge_day == 0


def test_max_soc_day_boundary_follows_utc_offset() -> None:
    config = ControlSettings(
        max_soc=MaxSocSettings(enabled=True, max_soc=90.0, utc_offset_hours=2.0)
    )
    controller = Controller(config, 0.0)
    controller.mark_full(now=86400.0 - 3 * 3600.0)  # 23:00 local on day 0... = 01:00 day 1
    controller.set_soc(95.0, now=86400.0 - 3 * 3600.0)
    # 21:00 UTC + 2 h = 23:00 local, still day 0 locally, day 0 in UTC too
    assert not controller.update(sample(86400.0 - 2.5 * 3600.0)).outputs[CHARGE]
    # 22:30 UTC is 00:30 local on day 1: the limit resets
    assert controller.update(sample(86400.0 - 1.5 * 3600.0)).outputs[CHARGE]


def test_set_soc_validation_and_mark_full_event() -> None:
    controller = started()
    for bad in (-0.1, 100.1, math.nan):
        with pytest.raises(ValueError, match="SoC"):
            controller.set_soc(bad, now=1.0)
    controller.mark_full(now=1.5)
    report = controller.update(sample(2))
    assert report.soc == pytest.approx(100.0)
    assert [e.detail["to"] for e in report.events if e.kind is EventKind.SOC_SYNC] == [100.0]


def test_zero_current_offset_is_bounded_and_used() -> None:
    controller = started()
    assert controller.zero_current_offset(0.2) == pytest.approx(0.2)
    assert controller.zero_current_offset(5.0) == pytest.approx(0.5)  # 0.5 % of 100 Ah
    controller.zero_current_offset(0.2)
    before = controller.snapshot().soc.charge_ah
    controller.update(sample(3601 + 1, current=0.2))  # gap: trapezoid capped at 60 s
    controller.update(sample(3601 + 2, current=0.2, charge_delta_ah=0.2 / 3600))
    assert controller.snapshot().soc.charge_ah == pytest.approx(before)


def test_duplicate_output_names_rejected() -> None:
    outputs = (
        OutputSettings("a", OutputType.HVD, Wiring.CHARGE),
        OutputSettings("a", OutputType.LVD, Wiring.LOAD),
    )
    with pytest.raises(ValueError, match="duplicate"):
        Controller(ControlSettings(outputs=outputs), 0.0)


# --- trip delays ----------------------------------------------------------------------


def _min_cell(t: float, volts: float, current: float = -80.0) -> Measurement:
    return sample(t, cells=(3.25,) * 7 + (volts,), current=current)


def test_a_sag_shorter_than_the_lvd_delay_keeps_the_loads_on() -> None:
    """An inverter starting sags the weakest cell below LVD for a few seconds: no trip."""
    controller = Controller(ControlSettings(), 0.0)  # LVD 3.00 V after 5 s
    controller.update(_min_cell(0.0, 3.20))
    for t in (1.0, 2.0, 3.0, 4.0, 4.9):
        report = controller.update(_min_cell(t, 2.95))
        assert report.outputs[LOAD], t
        assert Interlock.LVD not in report.interlocks
    report = controller.update(_min_cell(5.5, 3.10))  # the surge is over: the count restarts
    for t in (6.0, 8.0, 10.9):
        assert controller.update(_min_cell(t, 2.95)).outputs[LOAD], t
    assert not any(e.kind is EventKind.LVD_TRIP for e in report.events)


def test_a_real_lvd_crossing_trips_at_the_first_sample_after_the_delay() -> None:
    controller = Controller(ControlSettings(), 0.0)
    controller.update(_min_cell(0.0, 3.20))
    for t in (1.0, 2.0, 3.0, 4.0, 5.0):
        assert controller.update(_min_cell(t, 2.99)).outputs[LOAD], t
    report = controller.update(_min_cell(6.0, 2.99))  # first seen at 1.0, held 5 s
    assert not report.outputs[LOAD]
    assert Interlock.LVD in report.interlocks
    assert EventKind.LVD_TRIP in kinds(report.events)
    report = controller.update(_min_cell(7.0, 3.21, current=0.0))  # release is immediate
    assert report.outputs[LOAD]


def test_hvd_and_the_lockouts_wait_their_own_delays() -> None:
    controller = Controller(ControlSettings(), 0.0)  # HVD 3.60 after 1 s, OVLO 3.75 after 1 s
    controller.update(sample(0.0))
    report = controller.update(sample(10.0, cells=(3.3,) * 7 + (3.76,), current=30.0))
    assert report.outputs[CHARGE]  # first sample beyond both: pending
    report = controller.update(sample(10.5, cells=(3.3,) * 7 + (3.76,), current=30.0))
    assert report.outputs[CHARGE]
    report = controller.update(sample(11.0, cells=(3.3,) * 7 + (3.76,), current=30.0))
    assert not report.outputs[CHARGE]
    assert {Interlock.HVD, Interlock.OVER_VOLTAGE_LOCKOUT} <= report.interlocks
    assert Fault.OVER_VOLTAGE_LOCKOUT in report.faults


def test_a_crossing_whose_delay_runs_out_during_failed_samples_trips() -> None:
    controller = Controller(ControlSettings(), 0.0)
    controller.update(_min_cell(0.0, 3.20))
    assert controller.update(_min_cell(1.0, 2.90)).outputs[LOAD]
    assert controller.update(MeasurementFailure(3.0, "nack")).outputs[LOAD]
    report = controller.update(MeasurementFailure(6.0, "nack"))  # 5 s since 2.90 V was seen
    assert not report.outputs[LOAD]
    assert EventKind.LVD_TRIP in kinds(report.events)


def test_a_settings_change_does_not_restart_a_pending_trip() -> None:
    """A flood of remote changes rebuilds the controller again and again: the count goes on."""
    settings_ = ControlSettings()
    controller = Controller(settings_, 0.0)
    controller.update(_min_cell(0.0, 3.20))
    controller.update(_min_cell(1.0, 2.95))
    for t in (2.0, 3.0, 4.0, 5.0):
        state = PersistedState.from_dict(json.loads(json.dumps(controller.snapshot().to_dict())))
        assert state.trips_pending == {"lvd": 1.0}
        controller = Controller(settings_, t, state)
        assert controller.update(_min_cell(t, 2.95)).outputs[LOAD]
    state = controller.snapshot()
    controller = Controller(settings_, 6.0, state)
    assert not controller.update(_min_cell(6.0, 2.95)).outputs[LOAD]


def test_a_state_saved_before_delays_existed_still_loads() -> None:
    data = json.loads(json.dumps(started().snapshot().to_dict()))
    del data["trips_pending"]
    del data["limits"]["discharge_too_cold"]
    del data["limits"]["discharge_too_hot"]
    state = PersistedState.from_dict(data)
    assert state.trips_pending == {}
    assert not state.limits.discharge_too_cold


def test_the_battery_discharge_window_blocks_loads_only() -> None:
    controller = started()  # discharge -20..55 C, 2 C hysteresis
    report = controller.update(sample(2, external_temperatures=(55.5,)))
    assert not report.outputs[LOAD]
    assert Interlock.DISCHARGE_TOO_HOT in report.interlocks
    assert not report.outputs[CHARGE]  # 55.5 C is also above charge_max 45
    report = controller.update(sample(3, external_temperatures=(-20.5,)))
    assert Interlock.DISCHARGE_TOO_COLD in report.interlocks
    assert not report.outputs[LOAD]
    assert not controller.update(sample(4, external_temperatures=(-18.0,))).outputs[LOAD]
    report = controller.update(sample(5, external_temperatures=(-17.9,)))
    assert report.outputs[LOAD]
    assert not report.outputs[CHARGE]  # still too cold to charge


def test_an_output_wired_to_a_charge_source_follows_charging_whatever_its_type() -> None:
    """A load type on a charge wire (a mistake the configuration rules refuse, here given to
    the control core directly) still cannot charge at HVD: the wiring decides too."""
    outputs = (
        OutputSettings("pv", OutputType.LVD, Wiring.CHARGE),
        OutputSettings("lamp", OutputType.LOW_SOC, Wiring.SIGNAL),
        OutputSettings("spare", OutputType.UNUSED, Wiring.NONE),
    )
    controller = started(ControlSettings(cells=IMMEDIATE, outputs=outputs))
    report = controller.update(sample(2, 3.62))
    assert report.outputs == {"pv": False, "lamp": True, "spare": False}


# --- persistence ------------------------------------------------------------------------


def _scenario(t: float) -> Measurement:
    volts = 3.30 + 0.35 * math.sin(t / 40.0)  # wanders through HVD and back
    return sample(
        t,
        cells=(volts,) * 7 + (volts - 0.01,),
        current=20.0 * math.sin(t / 17.0),
        pv_current=max(0.0, 25.0 * math.sin(t / 17.0)),
        internal_temperature=30.0,
        external_temperatures=(20.0,),
    )


def test_persistence_round_trip_continues_identically() -> None:
    outputs = (
        *ControlSettings().outputs,
        OutputSettings("extio7", OutputType.DUAL_PV, Wiring.CHARGE),
    )
    config = ControlSettings(outputs=outputs, lockouts_latch=True)
    original = Controller(config, 0.0)
    for t in range(1, 400):
        original.update(_scenario(float(t)))
    original.force_off(LOAD, until=450.0, now=399.0)
    text = json.dumps(original.snapshot().to_dict())
    restored_state = PersistedState.from_dict(json.loads(text))
    assert restored_state == original.snapshot()
    restored = Controller(config, 399.0, restored_state)
    for t in range(400, 800):
        a = original.update(_scenario(float(t)))
        b = restored.update(_scenario(float(t)))
        assert a == b
    assert original.snapshot() == restored.snapshot()


def test_persisted_infinite_force_off_survives_json() -> None:
    controller = started()
    controller.force_off(CHARGE, until=math.inf, now=1.0)
    data = json.loads(json.dumps(controller.snapshot().to_dict(), allow_nan=False))
    assert PersistedState.from_dict(data).forced_off == {CHARGE: math.inf}


@pytest.mark.parametrize(
    ("path", "value"),
    [
        (("soc", "charge_ah"), "12"),
        (("soc", "capacity_ah"), 0.0),
        (("soc", "anchor_kind"), "half"),
        (("soc", "eoc_synced"), 1),
        (("counters", "pv_wh"), -1.0),
        (("counters", "load_ah"), None),
        (("latched_faults",), ["melted"]),
        (("dual_pv_level",), 4),
        (("limits", "hvd_active"), "yes"),
        (("last_timestamp",), math.nan),
        (("version",), 99),
    ],
)
def test_from_dict_names_the_bad_key(path: tuple[str, ...], value: object) -> None:
    data = json.loads(json.dumps(started().snapshot().to_dict()))
    target = data
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    with pytest.raises(ValueError, match=".".join(path)):
        PersistedState.from_dict(data)


def test_from_dict_names_a_missing_key() -> None:
    data = started().snapshot().to_dict()
    del data["counters"]["battery_in_ah"]
    with pytest.raises(ValueError, match=r"counters\.battery_in_ah"):
        PersistedState.from_dict(data)


# --- the safety property ----------------------------------------------------------------

# Every pair of wiring and type the wiring rules allow, so the property covers them all.
WIRED_OUTPUTS = tuple(
    OutputSettings(f"{wiring.value}{int(output_type)}", output_type, wiring)
    for wiring in Wiring
    for output_type in sorted(ALLOWED_TYPES[wiring])
)
CHARGE_TYPES = (OutputType.HVD, OutputType.HIGH_SOC, OutputType.DUAL_PV)
LOAD_TYPES = (OutputType.LVD, OutputType.LOW_SOC)

cell_voltage = st.floats(min_value=2.3, max_value=3.9)
step = st.one_of(
    st.tuples(
        st.floats(min_value=0.0, max_value=20.0),
        st.lists(cell_voltage, min_size=8, max_size=8),
        st.floats(min_value=-150.0, max_value=150.0),
    ),
    st.tuples(st.floats(min_value=0.0, max_value=20.0), st.none(), st.none()),
)
delays = st.tuples(
    st.sampled_from([0.0, 1.0, 2.5, 10.0]),  # hvd
    st.sampled_from([0.0, 1.0, 5.0, 30.0]),  # lvd
    st.sampled_from([0.0, 0.5, 2.0]),  # ovlo
    st.sampled_from([0.0, 0.5, 2.0]),  # uvlo
)


@settings(max_examples=200, deadline=None)
@given(st.lists(step, min_size=1, max_size=40), st.booleans(), delays)
def test_no_output_on_against_protection(
    steps: list[tuple[float, list[float] | None, float | None]],
    latch: bool,
    delay_s: tuple[float, float, float, float],
) -> None:
    """Whatever the type, an output wired to a charge source is off once a cell has been at
    or above HVD for the HVD delay (or at OVLO for the OVLO delay), and one wired to loads
    once a cell has been at or below LVD (UVLO) for its delay; nothing but a fault output
    conducts on stale measurements; an output wired to nothing never conducts."""
    hvd_delay, lvd_delay, ovlo_delay, uvlo_delay = delay_s
    cells_settings = replace(
        CellThresholds(),
        hvd_delay_s=hvd_delay,
        lvd_delay_s=lvd_delay,
        ovlo_delay_s=ovlo_delay,
        uvlo_delay_s=uvlo_delay,
    )
    config = ControlSettings(cells=cells_settings, outputs=WIRED_OUTPUTS, lockouts_latch=latch)
    thresholds = config.cells
    controller = Controller(config, 0.0)
    hvd, lvd, ovlo, uvlo = Streak(), Streak(), Streak(), Streak()
    now = 0.0
    last_good: float | None = None
    for advance, cells, current in steps:
        now += advance
        if cells is None or current is None:
            report = controller.update(MeasurementFailure(now, "random failure"))
        else:
            report = controller.update(Measurement(now, tuple(cells), current, **BATTERY_20C))
            last_good = now
            hvd.update(max(cells) >= thresholds.hvd, now)
            ovlo.update(max(cells) >= thresholds.ovlo, now)
            lvd.update(min(cells) <= thresholds.lvd, now)
            uvlo.update(min(cells) <= thresholds.uvlo, now)
        charge_due_off = hvd.held(now, hvd_delay) or ovlo.held(now, ovlo_delay)
        load_due_off = lvd.held(now, lvd_delay) or uvlo.held(now, uvlo_delay)
        stale = last_good is None or now - last_good > config.stale_after_s
        for output in config.outputs:
            on = report.outputs[output.name]
            charge_side = output.wiring is Wiring.CHARGE or output.type in CHARGE_TYPES
            load_side = output.wiring is Wiring.LOAD or output.type in LOAD_TYPES
            if charge_side:
                assert not (on and (charge_due_off or not report.charge_allowed)), output
            if load_side:
                assert not (on and (load_due_off or not report.load_allowed)), output
            if output.wiring is Wiring.NONE or output.type is OutputType.UNUSED:
                assert not on, output
            if stale and output.type is not OutputType.FAULT:
                assert not on, output
        if stale and last_good is not None:
            assert report.outputs["fault5"]
