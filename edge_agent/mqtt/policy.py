"""When to publish a state: a full state at an interval, sooner on a significant change.

Pure: time comes in with every call. Changes are judged against the last *published* state,
not the previous sample, so a slow drift is published once it adds up to a deadband, and a
change held back by `min_interval_s` is still published at the next call after it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from edge_agent.config.link import PublishSettings, validate_publish_settings
from edge_agent.control.model import ControlReport, load_current, measurement_ok, temperatures

__all__ = ["PublishPolicy", "PublishSettings", "settings_from_mapping", "validate_publish_settings"]


@dataclass(frozen=True, slots=True)
class _Snapshot:
    """What a published state said, in the terms the deadbands compare."""

    soc: float
    voltage: float | None
    currents: tuple[float | None, float | None, float | None]  # battery, PV, load
    cells: tuple[float, ...]
    temperatures: tuple[float | None, ...]
    discrete: tuple[object, ...]  # changes here publish at once


def _snapshot(report: ControlReport) -> _Snapshot:
    m = report.measurement
    discrete = (
        tuple(sorted(report.outputs.items())),
        report.faults,
        report.interlocks,
        report.dual_pv_level,
        report.charge_allowed,
        report.load_allowed,
        report.high_soc_alarm,
        report.low_soc_alarm,
        measurement_ok(report),
        None if m is None else m.monitor_flags,
    )
    if m is None:
        return _Snapshot(report.soc, None, (None, None, None), (), (None,) * 3, discrete)
    return _Snapshot(
        soc=report.soc,
        voltage=m.battery_voltage,
        currents=(m.battery_current, m.pv_current, load_current(m)),
        cells=m.cell_voltages,
        temperatures=tuple(temperatures(m).values()),
        discrete=discrete,
    )


def _moved(old: float | None, new: float | None, delta: float) -> bool:
    """A value appearing or disappearing counts as a change; NaN compares unequal."""
    if old is None or new is None:
        return (old is None) != (new is None)
    return not abs(new - old) < delta if delta > 0 else new != old


class PublishPolicy:
    """Decides per control report whether the state is due; the caller publishes and then
    calls `mark_published`."""

    def __init__(self, settings: PublishSettings | None = None) -> None:
        self.settings = settings or PublishSettings()
        self._last: _Snapshot | None = None
        self._last_time: float | None = None

    def due(self, report: ControlReport, now: float) -> bool:
        if self._last is None or self._last_time is None:
            return True
        elapsed = now - self._last_time
        if elapsed < 0:
            return True  # the clock went back: restart the schedule
        if elapsed >= self.settings.interval_s:
            return True
        if elapsed < self.settings.min_interval_s:
            return False
        return self._significant(self._last, _snapshot(report))

    def mark_published(self, report: ControlReport, now: float) -> None:
        self._last = _snapshot(report)
        self._last_time = now

    def reset(self) -> None:
        """Forget the last state (after a reconnect the next state goes out at once)."""
        self._last = None
        self._last_time = None

    def _significant(self, old: _Snapshot, new: _Snapshot) -> bool:
        s = self.settings
        if old.discrete != new.discrete or len(old.cells) != len(new.cells):
            return True
        if _moved(old.soc, new.soc, s.soc_delta):
            return True
        if _moved(old.voltage, new.voltage, s.voltage_delta):
            return True
        for before, after in zip(old.currents, new.currents, strict=True):
            deadband = max(s.current_delta, s.current_relative_delta * abs(before or 0.0))
            if _moved(before, after, deadband):
                return True
        if any(_moved(a, b, s.cell_delta) for a, b in zip(old.cells, new.cells, strict=True)):
            return True
        pairs = zip(old.temperatures, new.temperatures, strict=True)
        return any(_moved(a, b, s.temperature_delta) for a, b in pairs)


def settings_from_mapping(data: Mapping[str, float]) -> PublishSettings:
    """Build settings from an already-validated `publish` mapping (unknown keys: TypeError)."""
    return PublishSettings(**{key: float(value) for key, value in data.items()})
