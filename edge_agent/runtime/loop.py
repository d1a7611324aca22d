"""The agent's main loop: a sample every interval, on time, whatever else happens."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Protocol

from edge_agent.control.model import ControlReport
from edge_agent.runtime.clock import Clock

_LOGGER = logging.getLogger(__name__)

ReportListener = Callable[[ControlReport], None]
KeepAlive = Callable[[], None]


class SteppingAgent(Protocol):
    """What the loop needs of an agent: `diy.agent.Agent`, or `sbms0.agent.Sbms0Agent`."""

    def step(self, now: float) -> ControlReport: ...

    def close(self, now: float) -> None: ...


async def run_agent(
    agent: SteppingAgent,
    clock: Clock,
    interval_s: float,
    stop: asyncio.Event,
    *,
    on_report: ReportListener | None = None,
    max_samples: int | None = None,
    keep_alive: KeepAlive | None = None,
) -> int:
    """Run until `stop` is set (or max_samples taken); returns the number of samples.

    Deadlines are kept on a fixed grid, so a slow sample shortens the next wait instead of
    drifting; after a long stall the grid restarts from now rather than catching up in a burst.
    `keep_alive` (systemd's watchdog) is called here, after each decided sample, and nowhere
    else: a loop that stops deciding stops calling it, whatever other tasks still run.
    """
    samples = 0
    next_deadline = clock.now()
    try:
        while not stop.is_set() and (max_samples is None or samples < max_samples):
            report = agent.step(clock.now())
            samples += 1
            if keep_alive is not None:
                keep_alive()
            if on_report is not None:
                _notify(on_report, report)
            next_deadline += interval_s
            if next_deadline < clock.now() - interval_s:
                next_deadline = clock.now() + interval_s
            await _sleep_or_stop(clock, next_deadline, stop)
    finally:
        agent.close(clock.now())
    return samples


def _notify(listener: ReportListener, report: ControlReport) -> None:
    try:
        listener(report)
    except Exception:  # a display or publisher bug must not stop protection
        _LOGGER.exception("Report listener failed")


async def _sleep_or_stop(clock: Clock, deadline: float, stop: asyncio.Event) -> None:
    sleeper = asyncio.ensure_future(clock.sleep_until(deadline))
    stopper = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({sleeper, stopper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (sleeper, stopper):
            task.cancel()
