"""Reads SBMS lines from a USB serial port, reopening it whenever it vanishes.

pyserial is the reference serial library (its asyncio companion, pyserial-asyncio, has had no
release since 2021). The SBMS sends one short line a second, so blocking reads with a short
timeout in a worker thread cost nothing and keep the event loop free; the timeout also bounds
how long a stop waits for the thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable

import serial

from edge_agent.config import SerialSourceSettings
from edge_agent.sbms0.receiver import FrameReceiver

_LOGGER = logging.getLogger(__name__)

READ_TIMEOUT_S = 0.5
MAX_LINE_BYTES = 1024  # a real line is at most ~70 bytes: longer is garbage without newlines
BACKOFF_INITIAL_S = 0.5
BACKOFF_MAX_S = 10.0

PortOpener = Callable[[SerialSourceSettings], serial.Serial]


def open_port(settings: SerialSourceSettings) -> serial.Serial:
    return serial.Serial(settings.port, settings.baud, timeout=READ_TIMEOUT_S)


class LineSplitter:
    """Bytes in, complete lines out; an overlong run without a newline is dropped as garbage."""

    def __init__(self, on_line: Callable[[str], None], on_garbage: Callable[[], None]) -> None:
        self._on_line = on_line
        self._on_garbage = on_garbage
        self._buffer = bytearray()

    def feed(self, data: bytes) -> None:
        self._buffer += data
        *lines, rest = self._buffer.split(b"\n")
        self._buffer = bytearray(rest)
        for line in lines:
            # latin-1 maps every byte: damage reaches the decoder and is counted there.
            self._on_line(line.decode("latin-1"))
        if len(self._buffer) > MAX_LINE_BYTES:
            self._buffer.clear()
            self._on_garbage()

    def reset(self) -> None:
        """A reopened port starts mid-line: forget the half line of the old one."""
        self._buffer.clear()


class SerialSource:
    def __init__(
        self,
        settings: SerialSourceSettings,
        receiver: FrameReceiver,
        *,
        opener: PortOpener = open_port,
        backoff_initial_s: float = BACKOFF_INITIAL_S,
        backoff_max_s: float = BACKOFF_MAX_S,
    ) -> None:
        self._settings = settings
        self._receiver = receiver
        self._opener = opener
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._splitter = LineSplitter(
            receiver.offer_line, lambda: receiver.stats.count_bad("length")
        )
        self.connects = 0  # successful opens since start

    async def run(self, stop: asyncio.Event) -> None:
        """Read until `stop`; a missing or failing port is retried with growing delays."""
        delay = self._backoff_initial_s
        while not stop.is_set():
            try:
                port = await asyncio.to_thread(self._opener, self._settings)
            except (serial.SerialException, OSError) as err:
                self._note_failure("open", err, first=delay == self._backoff_initial_s)
                await _wait(stop, delay)
                delay = min(delay * 2, self._backoff_max_s)
                continue
            delay = self._backoff_initial_s
            self.connects += 1
            _LOGGER.info("Reading the SBMS on %s", self._settings.port)
            try:
                await self._read(port, stop)
            except (serial.SerialException, OSError) as err:
                self._note_failure("read", err, first=True)
            finally:
                with contextlib.suppress(serial.SerialException, OSError):
                    port.close()
                self._splitter.reset()

    async def _read(self, port: serial.Serial, stop: asyncio.Event) -> None:
        while not stop.is_set():
            data = await asyncio.to_thread(port.read_until, b"\n", MAX_LINE_BYTES)
            if data:
                self._splitter.feed(data)

    def _note_failure(self, action: str, err: BaseException, *, first: bool) -> None:
        self._receiver.count_link_error()
        if first:  # one warning per outage, not one per retry
            _LOGGER.warning("SBMS serial port %s: %s failed: %s", self._settings.port, action, err)


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), seconds)
