"""The simulated bus frames transactions like the kernel's SMBus layer."""

from __future__ import annotations

import errno

import pytest

from edge_agent.simulator.smbus import FakeSMBus


class RegisterBytes:
    """A plain auto-incrementing byte register file."""

    def __init__(self) -> None:
        self.memory = bytearray(range(256))
        self.writes: list[tuple[int, bytes]] = []

    def read(self, register: int, length: int) -> bytes:
        return bytes(self.memory[(register + i) % 256] for i in range(length))

    def write(self, register: int, data: bytes) -> None:
        self.writes.append((register, data))
        for offset, value in enumerate(data):
            self.memory[(register + offset) % 256] = value


@pytest.fixture
def device() -> RegisterBytes:
    return RegisterBytes()


@pytest.fixture
def bus(device: RegisterBytes) -> FakeSMBus:
    return FakeSMBus({0x40: device})


def test_word_data_is_little_endian_on_the_wire(bus: FakeSMBus, device: RegisterBytes) -> None:
    device.memory[0x10:0x12] = bytes([0x34, 0x12])
    assert bus.read_word_data(0x40, 0x10) == 0x1234
    bus.write_word_data(0x40, 0x20, 0xABCD)
    assert device.writes[-1] == (0x20, bytes([0xCD, 0xAB]))


def test_byte_and_block_transfers(bus: FakeSMBus, device: RegisterBytes) -> None:
    assert bus.read_byte_data(0x40, 0x05) == 0x05
    bus.write_byte_data(0x40, 0x05, 0x99)
    assert device.memory[0x05] == 0x99
    assert bus.read_i2c_block_data(0x40, 0x06, 3) == [0x06, 0x07, 0x08]
    bus.write_i2c_block_data(0x40, 0x30, [1, 2, 3])
    assert device.writes[-1] == (0x30, bytes([1, 2, 3]))


def test_unknown_address_is_enxio_like_the_kernel(bus: FakeSMBus) -> None:
    with pytest.raises(OSError, match="No such device") as raised:
        bus.read_byte_data(0x41, 0x00)
    assert raised.value.errno == errno.ENXIO


def test_fail_and_heal_one_address(bus: FakeSMBus, device: RegisterBytes) -> None:
    bus.attach(0x41, RegisterBytes())
    bus.fail(0x40)
    with pytest.raises(OSError, match="Remote I/O error") as raised:
        bus.read_word_data(0x40, 0x00)
    assert raised.value.errno == errno.EREMOTEIO
    assert bus.read_byte_data(0x41, 0x01) == 0x01  # other devices unaffected
    bus.heal(0x40)
    assert bus.read_byte_data(0x40, 0x02) == 0x02


def test_fail_all_with_custom_errno(bus: FakeSMBus) -> None:
    bus.fail_all(errno.EIO)
    with pytest.raises(OSError, match="Input/output error") as raised:
        bus.write_byte_data(0x40, 0x00, 1)
    assert raised.value.errno == errno.EIO
    bus.heal_all()
    bus.write_byte_data(0x40, 0x00, 1)


def test_detach_makes_the_address_silent(bus: FakeSMBus) -> None:
    bus.detach(0x40)
    with pytest.raises(OSError, match="No such device") as raised:
        bus.read_byte_data(0x40, 0x00)
    assert raised.value.errno == errno.ENXIO


def test_transactions_are_counted_including_failures(bus: FakeSMBus) -> None:
    bus.read_byte_data(0x40, 0)
    bus.read_i2c_block_data(0x40, 0, 4)
    with pytest.raises(OSError, match="No such device"):
        bus.read_byte_data(0x50, 0)
    assert bus.transactions == 3


def test_block_length_and_value_limits(bus: FakeSMBus) -> None:
    with pytest.raises(ValueError, match="block length"):
        bus.read_i2c_block_data(0x40, 0, 33)
    with pytest.raises(ValueError, match="byte value"):
        bus.write_byte_data(0x40, 0, 256)
    with pytest.raises(ValueError, match="word value"):
        bus.write_word_data(0x40, 0, 0x10000)


def test_name_and_close() -> None:
    bus = FakeSMBus(name="i2c-7")
    assert bus.name == "i2c-7"
    bus.close()
    assert bus.closed
