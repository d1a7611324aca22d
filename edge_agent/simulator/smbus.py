"""A simulated I2C bus with the slice of the `smbus2.SMBus` API the drivers use.

Devices are byte-level register files, like chips on the wire: the bus does the SMBus framing
(word data is little-endian on the wire, exactly as the kernel's SMBus word transfer), so a
big-endian INA register read with `read_word_data` comes back byte-swapped, as on hardware.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Mapping, Sequence
from typing import Protocol

I2C_BLOCK_MAX = 32  # smbus2 refuses longer block transfers


class SimDevice(Protocol):
    """A chip on the simulated bus; registers auto-increment on multi-byte access."""

    def read(self, register: int, length: int) -> bytes: ...

    def write(self, register: int, data: bytes) -> None: ...


class FakeSMBus:
    """Routes SMBus transactions to simulated devices, with fault injection."""

    def __init__(
        self, devices: Mapping[int, SimDevice] | None = None, name: str = "sim-i2c-1"
    ) -> None:
        self.name = name
        self.transactions = 0
        self._devices: dict[int, SimDevice] = dict(devices or {})
        self._failing: dict[int, int] = {}
        self._fail_all_errno: int | None = None
        self.closed = False

    # -- topology and faults -------------------------------------------------------------
    def attach(self, address: int, device: SimDevice) -> None:
        _check_address(address)
        self._devices[address] = device

    def detach(self, address: int) -> None:
        self._devices.pop(address, None)

    def fail(self, address: int, errno_code: int = errno.EREMOTEIO) -> None:
        """Every following transaction to `address` raises OSError(errno_code)."""
        self._failing[address] = errno_code

    def heal(self, address: int) -> None:
        self._failing.pop(address, None)

    def fail_all(self, errno_code: int = errno.EREMOTEIO) -> None:
        self._fail_all_errno = errno_code

    def heal_all(self) -> None:
        self._fail_all_errno = None
        self._failing.clear()

    # -- smbus2.SMBus methods ------------------------------------------------------------
    def read_byte_data(self, i2c_addr: int, register: int) -> int:
        return self._read(i2c_addr, register, 1)[0]

    def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
        self._write(i2c_addr, register, bytes([_check_byte(value)]))

    def read_word_data(self, i2c_addr: int, register: int) -> int:
        data = self._read(i2c_addr, register, 2)
        return data[0] | data[1] << 8

    def write_word_data(self, i2c_addr: int, register: int, value: int) -> None:
        if not 0 <= value <= 0xFFFF:
            raise ValueError(f"word value {value} out of range")
        self._write(i2c_addr, register, bytes([value & 0xFF, value >> 8]))

    def read_i2c_block_data(self, i2c_addr: int, register: int, length: int) -> list[int]:
        if not 1 <= length <= I2C_BLOCK_MAX:
            raise ValueError(f"block length {length} outside 1..{I2C_BLOCK_MAX}")
        return list(self._read(i2c_addr, register, length))

    def write_i2c_block_data(self, i2c_addr: int, register: int, data: Sequence[int]) -> None:
        if not 1 <= len(data) <= I2C_BLOCK_MAX:
            raise ValueError(f"block length {len(data)} outside 1..{I2C_BLOCK_MAX}")
        self._write(i2c_addr, register, bytes(_check_byte(value) for value in data))

    def close(self) -> None:
        self.closed = True

    # -- internals -----------------------------------------------------------------------
    def _device_for(self, address: int) -> SimDevice:
        # The checks inline, not through _check_address: this runs for every transaction of
        # every simulated sample (a measurable share of the long test scenarios' CPU time).
        if not 0x03 <= address <= 0x77:
            _check_address(address)
        self.transactions += 1
        if self._fail_all_errno is not None or self._failing:
            failure = self._fail_all_errno or self._failing.get(address)
            if failure is not None:
                raise OSError(failure, os.strerror(failure))
        device = self._devices.get(address)
        if device is None:  # nobody acknowledged the address byte, as the kernel reports it
            raise OSError(errno.ENXIO, os.strerror(errno.ENXIO))
        return device

    def _read(self, address: int, register: int, length: int) -> bytes:
        if not 0 <= register <= 0xFF:
            _check_byte(register)
        device = self._devices.get(address)
        if device is None or self._fail_all_errno is not None or self._failing:
            device = self._device_for(address)  # counts the transaction, raises its errors
        elif not 0x03 <= address <= 0x77:
            _check_address(address)
        else:  # the common case, inline: a device there and no fault injected
            self.transactions += 1
        data = device.read(register, length)
        if len(data) != length:
            raise AssertionError(f"simulated device returned {len(data)} bytes, not {length}")
        return data

    def _write(self, address: int, register: int, data: bytes) -> None:
        _check_byte(register)
        self._device_for(address).write(register, data)


def _check_address(address: int) -> None:
    if not 0x03 <= address <= 0x77:
        raise ValueError(f"7-bit I2C address 0x{address:X} out of range")


def _check_byte(value: int) -> int:
    if not 0 <= value <= 0xFF:
        raise ValueError(f"byte value {value} out of range")
    return value
