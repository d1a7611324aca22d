"""The slice of `smbus2.SMBus` the drivers use.

Drivers take any object with these methods: `smbus2.SMBus` on hardware, the simulated bus in
tests and demos. Errors are `OSError` (as smbus2 raises them from the kernel: EIO, ENXIO,
EREMOTEIO) and drivers turn them into `DeviceError` naming the bus and address.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol


class SMBusLike(Protocol):
    def read_byte_data(self, i2c_addr: int, register: int) -> int: ...

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_word_data(self, i2c_addr: int, register: int) -> int: ...

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None: ...

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]: ...

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None: ...

    def close(self) -> None: ...


class DeviceError(Exception):
    """A chip could not be reached, did not identify itself, or answered nonsense."""

    def __init__(self, bus: str, address: int, message: str) -> None:
        super().__init__(f"{bus} address 0x{address:02X}: {message}")
        self.bus = bus
        self.address = address
