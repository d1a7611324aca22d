"""The serial source over a real pseudo-terminal pair: the test writes to the master side as the
SBMS would, the source reads the slave side through a symlink (as /dev/serial/by-id/ links are
used). Unplugging closes the master and removes the link; replugging makes a new pair."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from edge_agent.config import SerialSourceSettings
from edge_agent.sbms0.receiver import FrameReceiver
from edge_agent.sbms0.serial_source import MAX_LINE_BYTES, LineSplitter, SerialSource
from tests.helpers.sbms0 import encode_frame, make_frame

DEADLINE_S = 20.0  # generous: only a hang fails, never slowness


class PtyDevice:
    """A pseudo-terminal whose slave is reached through `link`, pluggable and unpluggable."""

    def __init__(self, link: Path) -> None:
        self.link = link
        self.master: int | None = None

    def plug(self) -> None:
        master, slave = os.openpty()
        name = os.ttyname(slave)
        os.close(slave)  # the source opens it by name, like a real port
        self.master = master
        self.link.symlink_to(name)

    def unplug(self) -> None:
        assert self.master is not None
        os.close(self.master)
        self.master = None
        self.link.unlink()

    def write(self, data: bytes) -> None:
        assert self.master is not None
        os.write(self.master, data)


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


@pytest.fixture
async def device(tmp_path: Path) -> AsyncIterator[PtyDevice]:
    pty = PtyDevice(tmp_path / "ttySBMS")
    yield pty
    if pty.master is not None:
        pty.unplug()


class Running:
    def __init__(self, device: PtyDevice, clock: Callable[[], float] = lambda: 1_780_000_000.0):
        self.receiver = FrameReceiver(cell_count=8, clock=clock)
        self.source = SerialSource(
            SerialSourceSettings(port=str(device.link)),
            self.receiver,
            backoff_initial_s=0.02,
            backoff_max_s=0.1,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Future[None] | None = None

    async def __aenter__(self) -> Running:
        self.task = asyncio.ensure_future(self.source.run(self.stop))
        return self

    async def __aexit__(self, *_exc: object) -> None:
        self.stop.set()
        assert self.task is not None
        await asyncio.wait_for(self.task, DEADLINE_S)


async def _send_until_received(device: PtyDevice, running: Running, soc: int, count: int) -> None:
    """Write frames until `count` with this SoC arrived (the first may meet a half-open port)."""
    line = (encode_frame(make_frame(soc=soc)) + "\r\n").encode()
    received = 0

    def arrived() -> bool:
        latest = running.receiver.latest
        return latest is not None and latest.frame.soc == soc

    while received < count:
        device.write(line)
        await asyncio.sleep(0.02)
        if arrived():
            received += 1
    await until(arrived, f"a frame with SoC {soc}")


async def test_frames_arrive_and_garbage_on_the_line_is_counted(device: PtyDevice) -> None:
    device.plug()
    async with Running(device) as running:
        await until(lambda: running.source.connects == 1, "the port to open")
        await _send_until_received(device, running, soc=60, count=1)
        ok_before = running.receiver.stats.frames_ok
        bad_before = dict(running.receiver.stats.bad_by_kind)
        good = encode_frame(make_frame(soc=61))
        garbage = [
            b"\x00\xff\xfe random noise \x01\x02\r\n",  # noise of the wrong length
            good[:40].encode() + b"\r\n",  # a cut frame
            good.encode()[:-1] + b"~\r\n",  # one damaged character
            b"#" * (MAX_LINE_BYTES + 200),  # a long run with no newline at all
            b"\n",
            (good + "\r\n").encode(),  # and a good frame after all that
        ]
        for chunk in garbage:
            device.write(chunk)
        await until(
            lambda: running.receiver.stats.frames_ok == ok_before + 1,
            "the good frame after the garbage",
        )
        stats = running.receiver.stats
        assert running.receiver.latest is not None
        assert running.receiver.latest.frame.soc == 61
        added = {kind: count - bad_before.get(kind, 0) for kind, count in stats.bad_by_kind.items()}
        assert added == {"length": 3, "alphabet": 1}
        assert stats.link_errors == 0


async def test_unplug_and_replug_reconnects_by_itself(device: PtyDevice) -> None:
    device.plug()
    async with Running(device) as running:
        await until(lambda: running.source.connects == 1, "the port to open")
        await _send_until_received(device, running, soc=40, count=2)
        device.unplug()
        await until(lambda: running.receiver.stats.link_errors >= 2, "the loss and a failed reopen")
        device.plug()
        await until(lambda: running.source.connects == 2, "the port to reopen")
        await _send_until_received(device, running, soc=41, count=2)
        assert running.receiver.latest is not None
        assert running.receiver.latest.frame.soc == 41


async def test_a_port_missing_at_start_is_waited_for(device: PtyDevice) -> None:
    async with Running(device) as running:
        await until(lambda: running.receiver.stats.link_errors >= 3, "failed opens")
        assert running.source.connects == 0
        device.plug()
        await until(lambda: running.source.connects == 1, "the port to appear")
        await _send_until_received(device, running, soc=50, count=1)


async def test_stop_ends_the_source_while_the_port_is_quiet(device: PtyDevice) -> None:
    device.plug()
    running = Running(device)
    await running.__aenter__()
    await until(lambda: running.source.connects == 1, "the port to open")
    await running.__aexit__()
    assert running.task is not None
    assert running.task.done()


def test_line_splitter_joins_pieces_and_drops_overlong_runs() -> None:
    lines: list[str] = []
    garbage: list[int] = []
    splitter = LineSplitter(lines.append, lambda: garbage.append(1))
    splitter.feed(b"abc")
    splitter.feed(b"def\r\nxy")
    assert lines == ["abcdef\r"]
    splitter.feed(b"z" * (MAX_LINE_BYTES + 1))
    assert garbage == [1]
    splitter.feed(b"\n")
    assert lines == ["abcdef\r", ""]  # the overlong run was dropped, not glued to the next line


def test_command_line_reads_a_pty(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    import logging
    import threading

    from edge_agent.cli import main

    caplog.set_level(logging.INFO, logger="edge_agent.sbms0")
    device = PtyDevice(tmp_path / "ttySBMS")
    device.plug()
    stop = threading.Event()
    line = (encode_frame(make_frame(soc=66)) + "\r\n").encode()

    def write() -> None:
        while not stop.wait(0.05):
            device.write(line)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    try:
        # --duration in hours: 0.001 h is 3.6 s of one-second samples.
        code = main(["--sbms0-serial", str(device.link), "--cells", "8", "--duration", "0.001"])
    finally:
        stop.set()
        writer.join(5)
        device.unplug()
    assert code == 0
    assert f"Reading the SBMS on {device.link}" in caplog.text
    # The status line is printed at start (before any frame) and then once a minute.
    assert "SoC   0.0% no measurement yet | load=off pv=off" in capsys.readouterr().out
