"""A simulated box served over a Unix socket (`bus_server`) and the agent's bus for it
(`bus_client.SocketSMBus`): every SMBus transaction, errors included, and the box's clock."""

from __future__ import annotations

import errno
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.diy.hardware import open_hardware
from edge_agent.simulator.box import BoxSpec, SimulatedBox
from edge_agent.simulator.bus_client import SocketSMBus
from edge_agent.simulator.bus_protocol import frame
from edge_agent.simulator.bus_server import BusServer
from edge_agent.simulator.harness import simulated_config

DEVICE = 0x50
ISL_ADDRESS, MCP_ADDRESS = 0x28, 0x20


class RegisterBytes:
    """A plain auto-incrementing byte register file."""

    def __init__(self) -> None:
        self.memory = bytearray(range(256))

    def read(self, register: int, length: int) -> bytes:
        return bytes(self.memory[(register + i) % 256] for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        for offset, value in enumerate(data):
            self.memory[(register + offset) % 256] = value


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sbms-") as directory:
        yield Path(directory)


@pytest.fixture
def device() -> RegisterBytes:
    return RegisterBytes()


@pytest.fixture
def server(
    socket_dir: Path, device: RegisterBytes, allow_unix_sockets: None
) -> Iterator[BusServer]:
    box = SimulatedBox(BoxSpec(start=time.time()))
    box.bus.attach(DEVICE, device)
    with BusServer(box, socket_dir / "bus.sock") as running:
        yield running


@pytest.fixture
def bus(server: BusServer) -> Iterator[SocketSMBus]:
    client = SocketSMBus(server.socket_path)
    yield client
    client.close()


def test_byte_word_and_block_transfers_reach_the_device(
    bus: SocketSMBus, device: RegisterBytes
) -> None:
    assert bus.read_byte_data(DEVICE, 0x05) == 0x05
    bus.write_byte_data(DEVICE, 0x05, 0x99)
    assert device.memory[0x05] == 0x99
    device.memory[0x10:0x12] = bytes([0x34, 0x12])
    assert bus.read_word_data(DEVICE, 0x10) == 0x1234  # little-endian on the wire
    bus.write_word_data(DEVICE, 0x20, 0xABCD)
    assert device.memory[0x20:0x22] == bytes([0xCD, 0xAB])
    assert bus.read_i2c_block_data(DEVICE, 0x40, 32) == list(range(0x40, 0x60))
    bus.write_i2c_block_data(DEVICE, 0x30, [1, 2, 3])
    assert device.memory[0x30:0x33] == bytes([1, 2, 3])


def test_device_errors_come_back_as_the_same_errors(server: BusServer, bus: SocketSMBus) -> None:
    with pytest.raises(OSError, match="No such device") as absent:
        bus.read_byte_data(0x51, 0x00)
    assert absent.value.errno == errno.ENXIO
    with server.locked() as box:
        box.bus.fail(DEVICE, errno.EIO)
    with pytest.raises(OSError, match="Input/output error") as failing:
        bus.write_byte_data(DEVICE, 0x00, 1)
    assert failing.value.errno == errno.EIO
    with server.locked() as box:
        box.bus.heal(DEVICE)
    with pytest.raises(ValueError, match="block length 33"):
        bus.read_i2c_block_data(DEVICE, 0x00, 33)
    with pytest.raises(ValueError, match="byte value 256"):
        bus.write_byte_data(DEVICE, 0x00, 256)
    assert bus.read_byte_data(DEVICE, 0x01) == 0x01  # the connection survived all of it


def test_the_agents_drivers_start_on_the_served_box(server: BusServer, bus: SocketSMBus) -> None:
    config = simulated_config(server.box.spec)
    hardware = open_hardware(config.hardware, config.control.cell_count, bus, "socket")
    reading = hardware.cell_monitor.read().cell_voltages  # nothing switched on: a steady pack
    assert reading == pytest.approx(server.truth().cell_voltages, abs=0.002)
    hardware.outputs.apply({"extio3": True, "extio4": True, "extio5": False, "extio6": False})
    with server.locked() as box:
        assert box.mcp.output_levels()[:4] == (True, True, False, False)


def test_box_time_follows_the_monotonic_clock(socket_dir: Path, allow_unix_sockets: None) -> None:
    box = SimulatedBox(BoxSpec(start=time.time()))
    start = box.now
    before_start = time.monotonic()
    with BusServer(box, socket_dir / "bus.sock") as server:
        after_start = time.monotonic()
        time.sleep(0.3)
        before_reading = time.monotonic()
        now = server.now()
        after_reading = time.monotonic()
    assert before_reading - after_start <= now - start <= after_reading - before_start


def test_frozen_time_stands_still_and_then_runs_on_without_a_jump(
    server: BusServer, bus: SocketSMBus
) -> None:
    with server.frozen() as frozen_at:
        time.sleep(0.2)
        bus.write_byte_data(DEVICE, 0x00, 7)  # requests are still served
        assert server.now() == frozen_at
        server.wait_until_idle()
        thawing = time.monotonic()
    time.sleep(0.1)
    assert 0.0 < server.now() - frozen_at <= time.monotonic() - thawing


def test_fast_forward_moves_the_box_ahead_at_once(server: BusServer) -> None:
    before = server.now()
    server.fast_forward(3600.0)
    assert server.now() - before >= 3600.0
    assert server.truth().timestamp == pytest.approx(server.now(), abs=1.0)


def test_a_client_reconnects_after_the_server_came_back(
    socket_dir: Path, device: RegisterBytes, allow_unix_sockets: None
) -> None:
    path = socket_dir / "bus.sock"
    box = SimulatedBox(BoxSpec(start=time.time()))
    box.bus.attach(DEVICE, device)
    bus = SocketSMBus(path)
    with pytest.raises(FileNotFoundError):  # nobody serving: an I2C error, as a lost adapter
        bus.read_byte_data(DEVICE, 0x00)
    with BusServer(box, path):
        assert bus.read_byte_data(DEVICE, 0x02) == 0x02
    with pytest.raises(ConnectionError):  # the server closed the connection
        bus.read_byte_data(DEVICE, 0x02)
    with pytest.raises(FileNotFoundError):  # and removed its socket
        bus.read_byte_data(DEVICE, 0x02)
    with BusServer(box, path):
        assert bus.read_byte_data(DEVICE, 0x03) == 0x03
    bus.close()


def test_a_malformed_request_closes_that_connection_only(
    server: BusServer, bus: SocketSMBus
) -> None:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as rogue:
        rogue.settimeout(5.0)
        rogue.connect(str(server.socket_path))
        rogue.sendall(frame(bytes([99, DEVICE, 0])))  # no such op
        assert rogue.recv(16) == b""  # closed without an answer
    assert bus.read_byte_data(DEVICE, 0x04) == 0x04
