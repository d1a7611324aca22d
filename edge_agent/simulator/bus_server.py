"""A simulated box running in real time, its I2C bus served over a Unix domain socket.

Tests that SIGKILL or SIGSTOP the agent need the box outside the agent's process: the agent
runs as `sbms-agent --config FILE --simulated-bus SOCKET` (its bus is `bus_client.SocketSMBus`)
and this server executes each request on the box's `FakeSMBus` (`bus_protocol` is the format).

Time: box time = the box's time at `start()` + elapsed monotonic time x speed, minus the time
spent `frozen()`, plus any `fast_forward`. A serving thread moves the physics to that time
every `tick_s` and before each batch of requests, so bus writes land between physics steps,
stamped with the box's time of the moment. Start the box at `time.time()` with speed 1 and its
clock follows the agent's WallClock.

One lock guards the box: the serving thread holds it while it steps the physics or executes
a request, and a test holds it through `locked()`, `truth()` and friends.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import select
import selectors
import socket
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from edge_agent.config import config_to_dict
from edge_agent.simulator.box import BoxSpec, BoxTruth, HeartbeatGateSpec, SimulatedBox
from edge_agent.simulator.bus_protocol import (
    Op,
    ProtocolError,
    Request,
    decode_request,
    decode_word,
    encode_word,
    error_response,
    frame,
    ok_response,
    split_frame,
)
from edge_agent.simulator.harness import simulated_config

_LOGGER = logging.getLogger(__name__)
_MIN_CATCH_UP_S = 0.005  # smaller lags wait for the next tick: stepping costs ~0.1 ms
_IDLE_POLL_S = 0.002


class _BoxTime:
    """Where the box's time should be now (never read without the server's lock)."""

    def __init__(self, start: float, speed: float) -> None:
        self._speed = speed
        self._offset = start - time.monotonic() * speed
        self._frozen_at: float | None = None

    def target(self) -> float:
        if self._frozen_at is not None:
            return self._frozen_at
        return self._offset + time.monotonic() * self._speed

    def freeze(self, at: float) -> None:
        self._frozen_at = at

    def thaw(self) -> None:
        if self._frozen_at is not None:
            self._offset = self._frozen_at - time.monotonic() * self._speed
            self._frozen_at = None

    def shift(self, seconds: float) -> None:
        self._offset += seconds
        if self._frozen_at is not None:
            self._frozen_at += seconds


@dataclass(slots=True)
class _Connection:
    sock: socket.socket
    buffer: bytearray = field(default_factory=bytearray)


class BusServer:
    """Serves `box.bus` on `socket_path` and keeps the box moving in real time."""

    def __init__(
        self,
        box: SimulatedBox,
        socket_path: Path,
        *,
        speed: float = 1.0,
        tick_s: float = 0.05,
    ) -> None:
        if speed <= 0 or tick_s <= 0:
            raise ValueError("speed and tick_s must be positive")
        self.box = box
        self.socket_path = socket_path
        self._speed = speed
        self._tick_s = tick_s
        self._lock = threading.Lock()
        self._time = _BoxTime(box.now, speed)
        self._selector = selectors.DefaultSelector()
        self._connections: dict[socket.socket, _Connection] = {}
        self._listener: socket.socket | None = None
        self._wake_reader, self._wake_writer = socket.socketpair()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None
        self.requests_served = 0
        self.connections_accepted = 0

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> None:
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(str(self.socket_path))
        listener.listen()
        listener.setblocking(False)
        self._listener = listener
        self._selector.register(listener, selectors.EVENT_READ, self._accept)
        self._selector.register(self._wake_reader, selectors.EVENT_READ, None)
        with self._lock:
            self._time = _BoxTime(self.box.now, self._speed)
        self._thread = threading.Thread(target=self._serve, name="sim-bus-server", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stopping.set()
        self._wake_writer.send(b"\0")
        if self._thread is not None:
            self._thread.join()
        for connection in list(self._connections.values()):
            self._close(connection)
        if self._listener is not None:
            self._selector.unregister(self._listener)
            self._listener.close()
            self._listener = None
            with contextlib.suppress(FileNotFoundError):
                self.socket_path.unlink()
        self._selector.close()
        self._wake_reader.close()
        self._wake_writer.close()

    def __enter__(self) -> BusServer:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # -- for tests ----------------------------------------------------------------------------

    @contextlib.contextmanager
    def locked(self) -> Iterator[SimulatedBox]:
        """The box, brought up to the present and held still (no request, no physics)."""
        with self._lock:
            if self._failure is not None:
                raise RuntimeError("the simulated bus server failed") from self._failure
            self._catch_up(0.0)
            yield self.box

    def truth(self) -> BoxTruth:
        with self.locked() as box:
            return box.truth

    def now(self) -> float:
        with self.locked() as box:
            return box.now

    @contextlib.contextmanager
    def frozen(self) -> Iterator[float]:
        """Box time stands still inside (requests are still served, at the frozen time);
        yields that time. Afterwards it runs on from where it stood."""
        with self.locked() as box:
            frozen_at = box.now
            self._time.freeze(frozen_at)
        try:
            yield frozen_at
        finally:
            with self._lock:
                self._time.thaw()

    def fast_forward(self, seconds: float) -> None:
        """Run the physics `seconds` ahead at once; real time then continues from there."""
        with self.locked() as box:
            box.advance(seconds)
            self._time.shift(seconds)

    def wait_until_idle(self, timeout_s: float = 30.0) -> None:
        """Return once every request that reached the socket has been served (with the
        clients stopped or dead, nothing more can arrive)."""
        deadline = time.monotonic() + timeout_s
        while True:
            with self.locked():
                if self._idle():
                    return
            if time.monotonic() > deadline:
                raise TimeoutError("the bus server still has requests to serve")
            time.sleep(_IDLE_POLL_S)

    def _idle(self) -> bool:
        if any(split_frame(c.buffer) is not None for c in self._connections.values()):
            return False
        sockets = list(self._connections)
        if self._listener is not None:
            sockets.append(self._listener)  # a connection not accepted yet
        readable, _, _ = select.select(sockets, [], [], 0) if sockets else ([], [], [])
        return not readable

    # -- serving thread -----------------------------------------------------------------------

    def _serve(self) -> None:
        try:
            while not self._stopping.is_set():
                events = self._selector.select(timeout=self._tick_s)
                with self._lock:
                    self._catch_up(_MIN_CATCH_UP_S)
                    for key, _ in events:
                        handler: Callable[[socket.socket], None] | None = key.data
                        if handler is not None:
                            handler(key.fileobj)  # type: ignore[arg-type]
        except BaseException as error:  # a simulator bug: make the test say so, not time out
            _LOGGER.exception("The simulated bus server stopped")
            self._failure = error

    def _catch_up(self, min_lag_s: float) -> None:
        lag = self._time.target() - self.box.now
        if lag > min_lag_s:
            self.box.advance(lag)

    def _accept(self, listener: socket.socket) -> None:
        try:
            sock, _ = listener.accept()
        except BlockingIOError:
            return
        sock.setblocking(False)
        self._connections[sock] = _Connection(sock)
        self._selector.register(sock, selectors.EVENT_READ, self._receive)
        self.connections_accepted += 1

    def _receive(self, sock: socket.socket) -> None:
        connection = self._connections[sock]
        try:
            data = sock.recv(4096)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._close(connection)
            return
        connection.buffer += data
        while (found := split_frame(connection.buffer)) is not None:
            payload, used = found
            del connection.buffer[:used]
            if not self._answer(connection, payload):
                return

    def _answer(self, connection: _Connection, payload: bytes) -> bool:
        """Serve one request; False when the connection had to be closed."""
        try:
            response = self._execute(decode_request(payload))
        except ProtocolError as error:
            _LOGGER.warning("Closing a bus client that sent a bad request: %s", error)
            self._close(connection)
            return False
        self.requests_served += 1
        try:
            connection.sock.sendall(frame(response))
        except OSError:  # the client is gone (killed between request and answer)
            self._close(connection)
            return False
        return True

    def _execute(self, request: Request) -> bytes:
        try:
            return ok_response(self._transfer(request))
        except (OSError, ValueError) as error:
            return error_response(error)

    def _transfer(self, request: Request) -> bytes:
        bus = self.box.bus
        address, register, argument = request.address, request.register, request.argument
        match request.op:
            case Op.READ_BYTE:
                return bytes([bus.read_byte_data(address, register)])
            case Op.WRITE_BYTE:
                bus.write_byte_data(address, register, _single_byte(argument))
                return b""
            case Op.READ_WORD:
                return encode_word(bus.read_word_data(address, register))
            case Op.WRITE_WORD:
                bus.write_word_data(address, register, decode_word(argument))
                return b""
            case Op.READ_BLOCK:
                return bytes(bus.read_i2c_block_data(address, register, _single_byte(argument)))
            case Op.WRITE_BLOCK:
                bus.write_i2c_block_data(address, register, list(argument))
                return b""
        raise ProtocolError(f"unhandled op {request.op}")

    def _close(self, connection: _Connection) -> None:
        if self._connections.pop(connection.sock, None) is not None:
            self._selector.unregister(connection.sock)
        connection.sock.close()


def _single_byte(argument: bytes) -> int:
    if len(argument) != 1:
        raise ProtocolError(f"expected a 1-byte argument, got {len(argument)} bytes")
    return argument[0]


# -- a box on a socket from the command line ----------------------------------------------------


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m edge_agent.simulator.bus_server",
        description="Run a simulated box in real time and serve its I2C bus; then run "
        "`sbms-agent --config CONFIG --simulated-bus SOCKET`.",
    )
    parser.add_argument("socket", type=Path, help="Unix socket to serve the bus on")
    parser.add_argument("config", type=Path, help="write the matching agent configuration here")
    parser.add_argument("--cells", type=int, default=8, choices=range(3, 9), metavar="3..8")
    parser.add_argument("--soc", type=float, default=50.0, help="initial SoC, percent")
    parser.add_argument("--local-hour", type=float, default=12.0, help="box's local time now")
    parser.add_argument("--no-heartbeat", action="store_true", help="no one-shot fitted")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=logging.INFO)
    now = time.time()
    utc_hour = now % 86400.0 / 3600.0
    spec = BoxSpec.for_cells(
        args.cells,
        start=now,
        utc_offset_hours=args.local_hour - utc_hour,
        initial_soc=args.soc / 100.0,
        heartbeat_gate=None if args.no_heartbeat else HeartbeatGateSpec(),
    )
    state = args.config.with_suffix(".state.db").absolute()
    config = simulated_config(spec, state_path=state)
    # JSON is YAML: the agent's loader reads it as is.
    args.config.write_text(json.dumps(config_to_dict(config), indent=2), encoding="utf-8")
    with BusServer(SimulatedBox(spec), args.socket) as server:
        print(f"serving {args.socket} (pid {os.getpid()}); Ctrl-C stops", flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while True:
                time.sleep(10.0)
                truth = server.truth()
                print(
                    f"SoC {truth.soc_percent:5.1f} %  {truth.pack_voltage:5.2f} V  "
                    f"{truth.battery_current:+6.2f} A  loads {truth.loads_on}  "
                    f"pv {truth.pv_primary_on}  enabled {truth.outputs_enabled}",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
