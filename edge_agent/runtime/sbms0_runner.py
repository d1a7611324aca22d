"""Runs the agent against a stock SBMS: a source task feeds the receiver, the normal loop
reports every interval, and the MQTT link (`service.build_link` with the configuration alone)
publishes with nothing to control. Composition, so it lives in the runtime: the `sbms0`
package itself knows neither the runtime nor MQTT."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from edge_agent.config import AgentConfig
from edge_agent.control.model import ControlReport
from edge_agent.datalog.recorder import DataRecorder
from edge_agent.mqtt.client import MqttLink
from edge_agent.recording.record import SessionRecorder, record_header
from edge_agent.runtime.clock import Clock
from edge_agent.runtime.service import serve
from edge_agent.sbms0.agent import Sbms0Agent
from edge_agent.sbms0.receiver import FrameReceiver

_LOGGER = logging.getLogger(__name__)

SOURCE = "sbms0"
_SOURCE_SHUTDOWN_S = 5.0  # a serial read returns within its 0.5 s timeout


class Source(Protocol):
    async def run(self, stop: asyncio.Event) -> None: ...


@dataclass(slots=True)
class Sbms0Setup:
    agent: Sbms0Agent
    receiver: FrameReceiver
    source: Source


def build_sbms0(
    config: AgentConfig, clock: Clock, recorder: SessionRecorder | None = None
) -> Sbms0Setup:
    """The receiver, its source (serial or HTTP, as configured) and the agent; with a
    recorder, every raw line, page and step is recorded with its time (`replay_sbms0`)."""
    settings = config.source
    receiver = FrameReceiver(
        cell_count=config.control.cell_count,
        clock=clock.now,
        require_checksum=settings.require_checksum,
    )
    if recorder is not None:
        recorder.set_header(lambda at: record_header("sbms0", config, at, None))
        recorder.start(clock.now())
        receiver.tap = lambda kind, text: recorder.write({"t": clock.now(), kind: text})
    source: Source
    if settings.serial is not None:
        from edge_agent.sbms0.serial_source import SerialSource  # noqa: PLC0415 - pyserial

        source = SerialSource(settings.serial, receiver)
    elif settings.http is not None:
        from edge_agent.sbms0.http_source import HttpSource  # noqa: PLC0415 - aiohttp

        source = HttpSource(settings.http, receiver)
    else:
        raise ValueError("source sbms0 needs serial or http settings")
    agent = Sbms0Agent(config, receiver, clock.now(), recorder=recorder)
    return Sbms0Setup(agent, receiver, source)


async def serve_sbms0(
    setup: Sbms0Setup,
    clock: Clock,
    interval_s: float,
    *,
    link: MqttLink | None = None,
    listener: Callable[[ControlReport], None] | None = None,
    max_samples: int | None = None,
    recorder: DataRecorder | None = None,
    keep_alive: Callable[[], None] | None = None,
) -> None:
    """`runtime.service.serve` with the source task running beside the loop."""
    stop = asyncio.Event()
    source_task = asyncio.ensure_future(setup.source.run(stop))
    source_task.add_done_callback(_log_source_end)
    try:
        await serve(
            setup.agent,
            clock,
            interval_s,
            link=link,
            listener=listener,
            max_samples=max_samples,
            recorder=recorder,
            keep_alive=keep_alive,
        )
    finally:
        stop.set()
        # wait_for cancels the task when it does not stop in time; its failure was logged.
        with contextlib.suppress(Exception):
            await asyncio.wait_for(source_task, _SOURCE_SHUTDOWN_S)


def _log_source_end(task: asyncio.Future[None]) -> None:
    """A source that dies early leaves the agent reporting stale data: say why, at once."""
    if not task.cancelled() and task.exception() is not None:
        _LOGGER.error("The SBMS source stopped", exc_info=task.exception())
