"""The agent of a stock SBMS: reports what the SBMS says; never switches anything.

It stands where `diy.agent.Agent` stands for the loop (`step`, `close`), but owns no
controller, no outputs and no state store: the SBMS keeps its own SoC, counters and control.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, Protocol

from edge_agent.config import AgentConfig
from edge_agent.control.model import (
    ControlEvent,
    ControlReport,
    EnergyCounters,
    EventKind,
    Fault,
    Interlock,
)
from edge_agent.sbms0.receiver import FrameReceiver
from edge_agent.sbms0.report import build_report, counters_from_page


class StepRecorder(Protocol):
    """Where the steps go when the run is recorded (the runtime's `SessionRecorder`)."""

    def write(self, entry: Mapping[str, Any]) -> None: ...

    def close(self) -> None: ...


class Sbms0Agent:
    def __init__(
        self,
        config: AgentConfig,
        receiver: FrameReceiver,
        now: float,
        *,
        recorder: StepRecorder | None = None,
    ) -> None:
        self._config = config
        self._recorder = recorder
        self._receiver = receiver
        self._started_at = now
        self._counters = EnergyCounters()  # the last page's; a serial frame carries none
        self._last_report: ControlReport | None = None
        # What the events told so far, so every transition the SBMS reports is told once.
        self._told_interlocks: frozenset[Interlock] = frozenset()
        self._told_faults: frozenset[Fault] = frozenset()

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def last_report(self) -> ControlReport | None:
        return self._last_report

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self._config.control.outputs)

    def step(self, now: float) -> ControlReport:
        if self._recorder is not None:
            self._recorder.write({"t": now, "step": True})
        reading = self._receiver.latest
        if reading is not None:
            self._counters = counters_from_page(reading.page) or self._counters
        since = reading.received_at if reading is not None else self._started_at
        report = build_report(
            reading,
            now=now,
            stale=now - since > self._config.source.stale_after_s,
            config=self._config,
            stats=self._receiver.stats.snapshot(),
            counters=self._counters,
        )
        report = dataclasses.replace(report, events=self._transition_events(report, now))
        self._last_report = report
        return report

    def _transition_events(self, report: ControlReport, now: float) -> tuple[ControlEvent, ...]:
        """The SBMS decides HVD, LVD and its lockouts itself; its flags changing are the trips
        and releases, told as events like the agent's own so automations work the same."""
        events: list[ControlEvent] = []
        for interlock, trip, release in _LIMIT_EVENTS:
            now_set = interlock in report.interlocks
            if now_set != (interlock in self._told_interlocks):
                events.append(ControlEvent(trip if now_set else release, now))
        events += [
            ControlEvent(EventKind.FAULT_RAISED, now, {"fault": fault.value})
            for fault in sorted(report.faults - self._told_faults)
        ]
        events += [
            ControlEvent(EventKind.FAULT_CLEARED, now, {"fault": fault.value})
            for fault in sorted(self._told_faults - report.faults)
        ]
        self._told_interlocks = frozenset(report.interlocks)
        self._told_faults = frozenset(report.faults)
        return tuple(events)

    def close(self, now: float) -> None:
        """Nothing to release: the agent never drove an output of the SBMS."""
        if self._recorder is not None:
            self._recorder.close()


_LIMIT_EVENTS = (
    (Interlock.HVD, EventKind.HVD_TRIP, EventKind.HVD_RELEASE),
    (Interlock.LVD, EventKind.LVD_TRIP, EventKind.LVD_RELEASE),
)
