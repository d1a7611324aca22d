"""The publishing policy: interval, rate limit, deadbands, discrete changes."""

from __future__ import annotations

import dataclasses

import pytest

from edge_agent.config.link import PublishSettings, validate_publish_settings
from edge_agent.control.model import ControlReport, EnergyCounters, Fault, Measurement
from edge_agent.mqtt.policy import PublishPolicy


def _measurement(**changes: object) -> Measurement:
    base = Measurement(
        timestamp=0.0,
        cell_voltages=(3.30, 3.30, 3.30, 3.30),
        battery_current=10.0,
        pv_current=12.0,
        internal_temperature=25.0,
        external_temperatures=(20.0, None),
        monitor_flags=frozenset({"CHING"}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _report(measurement: Measurement | None = None, **changes: object) -> ControlReport:
    base = ControlReport(
        timestamp=0.0,
        outputs={"extio3": True, "extio4": True},
        soc=50.0,
        remaining_ah=50.0,
        capacity_ah=100.0,
        time_to_full_s=None,
        time_to_empty_s=None,
        charge_allowed=True,
        load_allowed=True,
        faults=frozenset(),
        interlocks=frozenset(),
        dual_pv_level=None,
        counters=EnergyCounters(),
        events=(),
        measurement=_measurement() if measurement is None else measurement,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _published(report: ControlReport | None = None, now: float = 0.0) -> PublishPolicy:
    policy = PublishPolicy()
    report = report or _report()
    assert policy.due(report, now)
    policy.mark_published(report, now)
    return policy


def test_defaults() -> None:
    s = PublishSettings()
    assert (s.interval_s, s.min_interval_s, s.soc_delta, s.voltage_delta) == (30, 1, 0.5, 0.05)
    assert (s.current_delta, s.current_relative_delta) == (0.5, 0.05)
    assert (s.cell_delta, s.temperature_delta) == (0.01, 0.5)
    assert validate_publish_settings(s) == []


def test_first_report_is_due_then_interval() -> None:
    policy = _published()
    assert not policy.due(_report(), 29.9)
    assert policy.due(_report(), 30.0)


def test_reset_publishes_at_once() -> None:
    policy = _published()
    policy.reset()
    assert policy.due(_report(), 0.5)


def test_clock_going_back_publishes() -> None:
    assert _published(now=100.0).due(_report(), 50.0)


@pytest.mark.parametrize(
    ("changed", "due"),
    [
        (_report(soc=50.49), False),
        (_report(soc=50.5), True),
        (_report(soc=49.5), True),
        (_report(_measurement(cell_voltages=(3.309, 3.30, 3.30, 3.30))), False),
        (_report(_measurement(cell_voltages=(3.31, 3.30, 3.30, 3.30))), True),  # also +0.01 V
        (_report(_measurement(pack_voltage=13.24)), False),
        (_report(_measurement(pack_voltage=13.26)), True),
        (_report(_measurement(battery_current=10.49, pv_current=12.49)), False),
        (_report(_measurement(battery_current=10.5, pv_current=12.5)), True),
        (_report(_measurement(pv_current=12.4)), False),  # load moved 0.4 A
        (_report(_measurement(battery_current=10.0, pv_current=None)), True),  # PV vanished
        (_report(_measurement(internal_temperature=25.4)), False),
        (_report(_measurement(internal_temperature=25.5)), True),
        (_report(_measurement(external_temperatures=(20.0, 30.0))), True),  # a sensor appeared
        (_report(_measurement(monitor_flags=frozenset({"DCHING"}))), True),
        (_report(_measurement(balancing=(True, False, False, False))), False),
        (_report(outputs={"extio3": False, "extio4": True}), True),
        (_report(faults=frozenset({Fault.OVER_TEMPERATURE})), True),
        (_report(charge_allowed=False), True),
        (_report(dual_pv_level=2), True),
        (_report(counters=EnergyCounters(pv_ah=5.0)), False),
        (_report(remaining_ah=50.3), False),
    ],
)
def test_significant_changes(changed: ControlReport, due: bool) -> None:
    assert _published().due(changed, 2.0) is due


def test_relative_current_deadband() -> None:
    big = _report(_measurement(battery_current=100.0, pv_current=100.0))
    policy = _published(big)
    assert not policy.due(_report(_measurement(battery_current=104.9, pv_current=100.0)), 2.0)
    assert policy.due(_report(_measurement(battery_current=105.0, pv_current=100.0)), 2.0)


def test_measurement_loss_is_a_change() -> None:
    policy = _published()
    gone = dataclasses.replace(_report(), measurement=None)
    assert policy.due(gone, 2.0)


def test_rate_limit_holds_back_then_releases() -> None:
    policy = _published()
    changed = _report(outputs={"extio3": False, "extio4": True})
    assert not policy.due(changed, 0.5)
    assert policy.due(changed, 1.0)  # compared with the last published, not the last seen


def test_slow_drift_adds_up() -> None:
    policy = _published()
    for step in range(1, 10):
        report = _report(soc=50.0 + 0.1 * step)
        if policy.due(report, float(step)):
            assert step == 5
            return
    pytest.fail("drift never published")


def test_zero_delta_means_any_change() -> None:
    policy = PublishPolicy(PublishSettings(soc_delta=0.0))
    policy.mark_published(_report(), 0.0)
    assert policy.due(_report(soc=50.01), 2.0)
    assert not policy.due(_report(), 2.0)


@pytest.mark.parametrize(
    ("settings", "key"),
    [
        (PublishSettings(interval_s=0.0), "publish.interval_s"),
        (PublishSettings(interval_s=4000.0), "publish.interval_s"),
        (PublishSettings(min_interval_s=60.0), "publish.min_interval_s"),
        (PublishSettings(soc_delta=-1.0), "publish.soc_delta"),
        (PublishSettings(cell_delta=float("nan")), "publish.cell_delta"),
        (PublishSettings(current_relative_delta=2.0), "publish.current_relative_delta"),
    ],
)
def test_validation(settings: PublishSettings, key: str) -> None:
    problems = validate_publish_settings(settings)
    assert problems
    assert problems[0].startswith(key + ":")
