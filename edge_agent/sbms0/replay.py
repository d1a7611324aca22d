"""Replaying a stock SBMS's recording: the recorded lines and pages go through the real
receiver (decoding, range and cross-frame checks) and the agent's `step` at the recorded
times, on a clock that shows each entry's time."""

from __future__ import annotations

from collections.abc import Iterator

from edge_agent.config import AgentConfig
from edge_agent.control.model import ControlReport
from edge_agent.recording.read import Entry, RecordingHeader
from edge_agent.sbms0.agent import Sbms0Agent
from edge_agent.sbms0.receiver import FrameReceiver


class _ReplayClock:
    def __init__(self, start: float) -> None:
        self.time = start

    def now(self) -> float:
        return self.time


def replay_sbms0(
    header: RecordingHeader, entries: list[Entry], config: AgentConfig | None = None
) -> Iterator[ControlReport]:
    """A report for every recorded step, in order."""
    config = config or header.config
    clock = _ReplayClock(header.started)
    receiver = FrameReceiver(
        cell_count=config.control.cell_count,
        clock=clock.now,
        require_checksum=config.source.require_checksum,
    )
    agent = Sbms0Agent(config, receiver, header.started)
    for entry in entries:
        clock.time = entry.t
        if entry.kind == "line":
            assert entry.text is not None
            receiver.offer_line(entry.text)
        elif entry.kind == "page":
            assert entry.text is not None
            receiver.offer_page(entry.text)
        else:
            yield agent.step(entry.t)
