"""The running agent: the control loop and, when configured, the MQTT link beside it; one
link builder for every source (a DIY box, a simulated one, a stock SBMS).

The loop never waits for MQTT: it hands each report to the link, which publishes when it can.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.config import AgentConfig, MqttSettings
from edge_agent.control.model import ControlReport
from edge_agent.datalog.recorder import DataRecorder
from edge_agent.mqtt.client import MqttLink
from edge_agent.mqtt.ha_discovery import discovery_payload
from edge_agent.mqtt.payloads import announce_payload, config_payload
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.mqtt.topics import Topics
from edge_agent.runtime.clock import Clock
from edge_agent.runtime.history import HistoryReader
from edge_agent.runtime.loop import SteppingAgent, run_agent
from edge_agent.runtime.remote import RemoteControl

_LOGGER = logging.getLogger(__name__)

# How long the link may take to say "offline" and disconnect once the loop has stopped.
_LINK_SHUTDOWN_S = 10.0


@dataclass(frozen=True, slots=True)
class Identity:
    """What the announce says about where the data comes from."""

    source: str  # "diy", "sbms0" or "simulator"
    serial: str


def build_link(
    mqtt: MqttSettings,
    remote: RemoteControl | AgentConfig,
    identity: Identity,
    *,
    history: HistoryReader | None = None,
    clock: Clock | None = None,
) -> MqttLink:
    """The MQTT link of any source. `remote`: the box's remote control, or for a source the
    agent does not control (a stock SBMS) its configuration alone: then the announce says
    config_set false and no commands, and neither kind of request is subscribed.
    `history` answers `history/get` from the data log; None when the box keeps none.
    `clock` is the agent's: requests (a force-off hold's end, zero_current's freshness) are
    decided on the time the controller runs on, also when that is a simulated box's."""
    control = remote if isinstance(remote, RemoteControl) else None
    # Read at every use: an accepted config/set changes the remote control's.
    source = remote if isinstance(remote, RemoteControl) else _Uncontrolled(remote)
    topics = Topics(mqtt.base_topic, source.config.agent_id)
    # A stock SBMS always measures its PV current; a DIY box only with a PV shunt.
    pv_current = True if identity.source == "sbms0" else None
    return MqttLink(
        mqtt,
        topics,
        announce=lambda: announce_payload(
            source.config,
            identity.source,
            identity.serial,
            source.commands,
            topics=topics,
            pv_current=pv_current,
            history=history is not None,
        ),
        config_payload=lambda: config_payload(source.config, source.revision),
        remote=control,
        policy=PublishPolicy(source.config.publish),  # the configured policy from the start
        # and after every accepted change
        publish_settings=None if control is None else lambda: source.config.publish,
        discovery=(
            (
                lambda read: discovery_payload(
                    source.config,
                    topics,
                    identity.serial,
                    identity.source,
                    prefix=mqtt.ha_discovery_prefix,
                    temperatures_read=read,
                )
            )
            if mqtt.ha_discovery
            else None
        ),
        history=history,
        agent_clock=None if clock is None else clock.now,
        # File-only (docs/diversion.md), so the value at start holds for the link's life.
        tank_temperature=source.config.control.diversion.tank_temperature,
    )


@dataclass(frozen=True, slots=True)
class _Uncontrolled:
    """A source the agent only reads (a stock SBMS): its configuration never changes."""

    config: AgentConfig
    revision: int = 0
    commands: tuple[str, ...] = ()


async def serve(
    agent: SteppingAgent,
    clock: Clock,
    interval_s: float,
    *,
    link: MqttLink | None = None,
    listener: Callable[[ControlReport], None] | None = None,
    recorder: DataRecorder | None = None,
    max_samples: int | None = None,
    keep_alive: Callable[[], None] | None = None,
) -> None:
    """Run until SIGINT/SIGTERM (or max_samples); then release outputs and say offline.

    The recorder (data log) gets every report and is closed last, after the final sample.
    `keep_alive` is called by the control loop after each decided sample (systemd watchdog).
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)

    def on_report(report: ControlReport) -> None:
        if recorder is not None:
            recorder.offer(report)  # never raises; first, so a publisher bug cannot skip it
        if link is not None:
            link.offer_report(report)
        if listener is not None:
            listener(report)

    link_task = asyncio.ensure_future(link.run(stop)) if link is not None else None
    try:
        await run_agent(
            agent,
            clock,
            interval_s,
            stop,
            on_report=on_report,
            max_samples=max_samples,
            keep_alive=keep_alive,
        )
    finally:
        stop.set()
        if recorder is not None:
            recorder.close()
        if link_task is not None:
            try:
                await asyncio.wait_for(link_task, _LINK_SHUTDOWN_S)
            except TimeoutError:
                _LOGGER.warning("MQTT link did not stop within %.0f s", _LINK_SHUTDOWN_S)
