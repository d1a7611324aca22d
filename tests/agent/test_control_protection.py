"""Protections in isolation: plausibility, staleness, temperatures, lockouts, hysteresis."""

from __future__ import annotations

import math

import pytest

from edge_agent.control.hysteresis import DelayedLimit, LowerLimit, UpperLimit
from edge_agent.control.model import Fault, Interlock, Measurement
from edge_agent.control.protection import (
    StalenessMonitor,
    TemperatureInterlocks,
    VoltageLockouts,
    battery_temperature,
    implausibility,
)
from edge_agent.control.settings import CellThresholds, TemperatureLimits


def good(**kwargs: object) -> Measurement:
    cells = kwargs.pop("cells", (3.3,) * 4)
    return Measurement(10.0, cells, 1.0, **kwargs)  # type: ignore[arg-type]


def test_plausible_measurement_passes() -> None:
    assert implausibility(good(pv_current=5.0, pack_voltage=13.2), 4, 9.0) is None
    assert implausibility(good(cells=(0.5, 5.0, 3.3, 3.3)), 4, 10.0) is None  # edges allowed


@pytest.mark.parametrize(
    ("measurement", "previous", "expected"),
    [
        (good(cells=(3.3,) * 3), None, "3 cells, expected 4"),
        (good(cells=(3.3, 3.3, 3.3, math.nan)), None, "cell voltage outside 0.5..5.0 V"),
        (good(pv_current=-2000.1), None, "pv current -2000.1 A beyond +-2000 A"),
        (good(pack_voltage=math.nan), None, "pack voltage nan V implausible"),
        (good(external_temperatures=(None, 200.0)), None, "temperature 200.0 C implausible"),
        (good(), 10.5, "timestamp went backwards"),
    ],
)
def test_implausible_measurements_named(
    measurement: Measurement, previous: float | None, expected: str
) -> None:
    assert implausibility(measurement, 4, previous) == expected


def test_battery_temperature_is_the_first_external_input() -> None:
    assert battery_temperature((12.0, 30.0)) == 12.0
    assert battery_temperature((None, 12.0)) is None  # xT2 is not the battery's
    assert battery_temperature(()) is None


def test_a_fitted_thermistor_without_a_reading_blocks_charging_only() -> None:
    """Below about -8 C the divider reads as an open input: too cold to charge, or a broken
    wire. Either way no charging; loads stay (a cold night must not cut the house)."""
    temps = TemperatureInterlocks(TemperatureLimits(), thermistor_fitted=True)
    assert temps.charge_interlocks() == {Interlock.BATTERY_TEMPERATURE_UNKNOWN}  # none yet
    temps.update(20.0, None)
    assert temps.charge_interlocks() == frozenset()
    temps.update(None, None)
    assert temps.charge_interlocks() == {Interlock.BATTERY_TEMPERATURE_UNKNOWN}
    assert temps.load_interlocks() == frozenset()
    without = TemperatureInterlocks(TemperatureLimits(), thermistor_fitted=False)
    without.update(None, None)
    assert without.charge_interlocks() == frozenset()


def test_staleness_is_strictly_after_the_limit() -> None:
    monitor = StalenessMonitor(5.0, started_at=100.0)
    assert not monitor.fresh(100.0)  # nothing measured yet
    assert not monitor.failing(105.0)
    assert monitor.failing(105.001)
    monitor.record_good(106.0)
    assert monitor.fresh(111.0)
    assert not monitor.failing(111.0)
    assert not monitor.fresh(111.001)
    assert monitor.failing(111.001)


def test_charge_temperature_window_with_hysteresis() -> None:
    temps = TemperatureInterlocks(TemperatureLimits())  # 0..45 C, 2 C hysteresis
    temps.update(0.0, None)
    assert temps.charge_interlocks() == frozenset()  # at the limit: still allowed
    temps.update(-0.1, None)
    assert temps.charge_interlocks() == {Interlock.CHARGE_TOO_COLD}
    assert temps.load_interlocks() == frozenset()  # cold only stops charging
    temps.update(2.0, None)
    assert temps.charge_too_cold
    temps.update(None, None)  # sensor vanished: keep the decision
    assert temps.charge_too_cold
    temps.update(2.01, None)
    assert temps.charge_interlocks() == frozenset()
    temps.update(45.0, None)
    assert temps.charge_interlocks() == frozenset()
    temps.update(45.1, None)
    assert temps.charge_interlocks() == {Interlock.CHARGE_TOO_HOT}
    temps.update(43.0, None)
    assert temps.charge_too_hot
    temps.update(42.9, None)
    assert temps.charge_interlocks() == frozenset()


def test_internal_over_temperature_blocks_charge_and_load() -> None:
    temps = TemperatureInterlocks(TemperatureLimits())
    temps.update(None, 60.0)
    assert temps.load_interlocks() == frozenset()
    temps.update(None, 60.01)
    assert temps.charge_interlocks() == {Interlock.INTERNAL_OVER_TEMPERATURE}
    assert temps.load_interlocks() == {Interlock.INTERNAL_OVER_TEMPERATURE}
    temps.update(None, 50.0)
    assert temps.internal_over_temperature
    temps.update(None, 49.99)
    assert not temps.internal_over_temperature


def test_lockouts_without_latch_follow_condition() -> None:
    lockouts = VoltageLockouts(CellThresholds(), latch=False)  # 1 s delays
    lockouts.update(3.75, 3.0, now=0.0)
    assert lockouts.active_faults() == frozenset()  # pending
    lockouts.update(3.75, 3.0, now=1.0)
    assert lockouts.active_faults() == {Fault.OVER_VOLTAGE_LOCKOUT}
    lockouts.update(3.699, 2.5, now=2.0)
    assert lockouts.active_faults() == frozenset()  # OVLO released; UVLO pending
    lockouts.update(3.699, 2.5, now=3.0)
    assert lockouts.active_faults() == {Fault.UNDER_VOLTAGE_LOCKOUT}
    assert lockouts.clear_latched() is False


def test_latched_lockout_needs_condition_gone_and_a_clear() -> None:
    lockouts = VoltageLockouts(CellThresholds(uvlo_delay_s=0.0), latch=True)
    lockouts.update(3.3, 2.5, now=0.0)
    assert not lockouts.clear_latched()
    lockouts.update(3.3, 3.0, now=1.0)
    assert lockouts.active_faults() == {Fault.UNDER_VOLTAGE_LOCKOUT}
    assert lockouts.clear_latched()
    assert lockouts.active_faults() == frozenset()


def test_persisted_latch_ignored_when_latching_is_off() -> None:
    lockouts = VoltageLockouts(CellThresholds(), latch=False, latched={Fault.OVER_VOLTAGE_LOCKOUT})
    assert lockouts.active_faults() == frozenset()


def test_delayed_limit_trips_after_its_delay_and_releases_at_once() -> None:
    limit = DelayedLimit(LowerLimit(3.0, 3.2), delay_s=5.0)
    assert not limit.update(2.9, now=10.0).tripped
    assert limit.pending_since == 10.0
    assert not limit.update(2.9, now=14.99).tripped
    assert limit.update(2.9, now=15.0).tripped
    assert limit.pending_since is None
    assert limit.update(3.21, now=16.0).released
    assert not limit.update(3.1, now=17.0).tripped  # back above the trip: nothing pending
    assert limit.pending_since is None
    with pytest.raises(ValueError, match="negative"):
        DelayedLimit(LowerLimit(3.0, 3.2), delay_s=-1.0)


def test_delayed_limit_expires_without_a_value() -> None:
    limit = DelayedLimit(UpperLimit(3.6, 3.4), delay_s=2.0)
    assert not limit.expire(now=0.0).tripped  # nothing pending
    limit.update(3.61, now=0.0)
    assert not limit.expire(now=1.9).tripped
    assert limit.expire(now=2.0).tripped
    assert limit.active


def test_upper_and_lower_limit_edges() -> None:
    upper = UpperLimit(10.0, 8.0)
    assert upper.update(10.0).tripped
    assert upper.active
    assert not upper.update(8.0).released
    assert upper.update(7.99).released
    strict = UpperLimit(10.0, 8.0, inclusive=False)
    assert not strict.update(10.0).tripped
    lower = LowerLimit(2.0, 3.0)
    assert lower.update(2.0).tripped
    assert not lower.update(3.0).released
    assert lower.update(3.01).released
    with pytest.raises(ValueError, match="release"):
        UpperLimit(1.0, 2.0)
    with pytest.raises(ValueError, match="release"):
        LowerLimit(2.0, 1.0)
