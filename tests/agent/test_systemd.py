"""systemd's notification protocol: READY once running, WATCHDOG=1 from the control loop after
every decided sample (so a hung loop is caught), STOPPING at the end; nothing outside systemd."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.control.model import ControlReport
from edge_agent.runtime.loop import run_agent
from edge_agent.runtime.systemd import SystemdNotifier
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem


@pytest.fixture
def notify_socket(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    path = str(tmp_path / "notify")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    server.bind(path)
    server.settimeout(30.0)
    try:
        yield path, server
    finally:
        server.close()


def _received(server: socket.socket, until: bytes) -> list[bytes]:
    messages: list[bytes] = []
    while not messages or until not in messages[-1]:
        messages.append(server.recv(4096))
    return messages


def test_the_notifier_sends_datagrams_and_is_silent_outside_systemd(
    notify_socket: tuple[str, socket.socket],
) -> None:
    path, server = notify_socket
    notifier = SystemdNotifier({"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "10000000"})
    assert notifier.enabled
    assert notifier.watchdog_usec == 10_000_000
    notifier.ready("8 cells")
    notifier.watchdog()
    notifier.stopping()
    assert server.recv(4096) == b"READY=1\nSTATUS=8 cells"
    assert server.recv(4096) == b"WATCHDOG=1"
    assert server.recv(4096) == b"STOPPING=1"
    notifier.close()
    silent = SystemdNotifier({})
    assert not silent.enabled
    silent.watchdog()  # nothing to send to, nothing raised


def test_the_watchdog_interval_is_read_for_this_process_only() -> None:
    mine = {"WATCHDOG_USEC": "10000000", "WATCHDOG_PID": str(os.getpid())}
    assert SystemdNotifier(mine).watchdog_usec == 10_000_000
    assert SystemdNotifier({**mine, "WATCHDOG_PID": "1"}).watchdog_usec is None
    assert SystemdNotifier({"WATCHDOG_USEC": "soon"}).watchdog_usec is None


def test_an_abstract_socket_name_is_understood(caplog: pytest.LogCaptureFixture) -> None:
    server = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    name = f"sbms-test-{os.getpid()}"
    server.bind("\0" + name)
    server.settimeout(10.0)
    try:
        SystemdNotifier({"NOTIFY_SOCKET": "@" + name}).watchdog()
        assert server.recv(4096) == b"WATCHDOG=1"
    finally:
        server.close()


def test_a_missing_socket_is_logged_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    notifier = SystemdNotifier({"NOTIFY_SOCKET": str(tmp_path / "gone")})
    for _ in range(5):
        notifier.watchdog()
    errors = [r for r in caplog.records if "Could not notify systemd" in r.getMessage()]
    assert len(errors) == 1


async def test_the_loop_keeps_systemd_alive_once_per_decided_sample() -> None:
    system = SimulatedSystem(BoxSpec.for_cells(4))
    clock = SimulatedClock(system.box, speed=1e6)
    events: list[str] = []

    def on_report(_report: ControlReport) -> None:
        events.append("report")

    await run_agent(
        system.agent,
        clock,
        1.0,
        asyncio.Event(),
        on_report=on_report,
        max_samples=5,
        keep_alive=lambda: events.append("alive"),
    )
    assert events == ["alive", "report"] * 5


class _StuckAgent:
    """An agent whose third sample never completes (here: raises, as a hang cannot be waited
    out in a test): no keep-alive may be sent for it."""

    def __init__(self, hang_at: int) -> None:
        self.steps = 0
        self.hang_at = hang_at

    def step(self, now: float) -> ControlReport:
        self.steps += 1
        if self.steps == self.hang_at:
            raise _NeverDecidedError
        return SimulatedSystem(BoxSpec.for_cells(4)).agent.step(now)

    def close(self, now: float) -> None:
        pass


class _NeverDecidedError(Exception):
    pass


async def test_no_keep_alive_without_a_decided_sample() -> None:
    system = SimulatedSystem(BoxSpec.for_cells(4))
    alive: list[int] = []
    agent = _StuckAgent(hang_at=3)
    with pytest.raises(_NeverDecidedError):
        await run_agent(
            agent,
            SimulatedClock(system.box, speed=1e6),
            1.0,
            asyncio.Event(),
            keep_alive=lambda: alive.append(agent.steps),
        )
    assert alive == [1, 2]


def test_the_agent_process_notifies_systemd(
    notify_socket: tuple[str, socket.socket], tmp_path: Path
) -> None:
    """`sbms-agent --simulate` as systemd would run it: READY first, a WATCHDOG=1 per sample,
    STOPPING at the end."""
    path, server = notify_socket
    env = {**os.environ, "NOTIFY_SOCKET": path}
    samples = 6
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "--simulate",
            "--speed",
            "1000",
            "--duration",
            str(samples / 3600),
            "--quiet",
            "--log-level",
            "WARNING",
        ],
        env=env,
        capture_output=True,
        timeout=120,
        check=False,
    )
    assert completed.returncode == 0, completed.stderr.decode()
    started = time.monotonic()
    messages = _received(server, until=b"STOPPING=1")
    assert time.monotonic() - started < 30
    assert messages[0].startswith(b"READY=1\nSTATUS=8 cells")
    assert messages[1:-1] == [b"WATCHDOG=1"] * samples
    assert messages[-1] == b"STOPPING=1"
