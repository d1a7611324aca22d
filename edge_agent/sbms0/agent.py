"""The agent of a stock SBMS: reports what the SBMS says; never switches anything.

It stands where `runtime.agent.Agent` stands for the loop (`step`, `close`), but owns no
controller, no outputs and no state store: the SBMS keeps its own SoC, counters and control.
"""

from __future__ import annotations

from edge_agent.config import AgentConfig
from edge_agent.control.model import EnergyCounters
from edge_agent.sbms0.receiver import FrameReceiver
from edge_agent.sbms0.report import Sbms0Report, build_report, counters_from_page


class Sbms0Agent:
    def __init__(self, config: AgentConfig, receiver: FrameReceiver, now: float) -> None:
        self._config = config
        self._receiver = receiver
        self._started_at = now
        self._counters = EnergyCounters()  # the last page's; a serial frame carries none
        self._last_report: Sbms0Report | None = None

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def last_report(self) -> Sbms0Report | None:
        return self._last_report

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(output.name for output in self._config.control.outputs)

    def step(self, now: float) -> Sbms0Report:
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
        self._last_report = report
        return report

    def close(self, now: float) -> None:
        """Nothing to release: the agent never drove an output of the SBMS."""
