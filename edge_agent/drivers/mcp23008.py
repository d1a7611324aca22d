"""MCP23008 8-bit I2C port expander driving optocoupled EXTIO outputs."""

from __future__ import annotations

import logging
from collections.abc import Mapping

from edge_agent.drivers.bus import DeviceError, SMBusLike
from edge_agent.drivers.outputs import check_known

REG_IODIR = 0x00  # 1 = input (power-on 0xFF)
REG_OLAT = 0x0A  # output latch

_LOGGER = logging.getLogger(__name__)


class Mcp23008Outputs:
    """Outputs on an MCP23008; implements `OutputBank`.

    pins: name -> (pin 0-7, active_low). Active-low means the pin sinks the optocoupler LED:
    ON = pin low, OFF = pin high.
    """

    def __init__(
        self,
        bus: SMBusLike,
        bus_name: str,
        address: int,
        pins: Mapping[str, tuple[int, bool]],
    ) -> None:
        used = [pin for pin, _ in pins.values()]
        if any(not 0 <= pin <= 7 for pin in used) or len(set(used)) != len(used):
            raise ValueError(f"MCP23008 pins must be distinct and within 0-7: {dict(pins)}")
        self._bus = bus
        self._bus_name = bus_name
        self._address = address
        self._pins = dict(pins)
        self.names: tuple[str, ...] = tuple(pins)
        self._used_mask = sum(1 << pin for pin in used)
        self._states: dict[str, bool] = dict.fromkeys(self.names, False)
        self._started = False
        self.resets_recovered = 0  # times the chip was found reset and set up again

    def start(self) -> None:
        """All outputs OFF: latch first, then switch the pins to outputs (no glitch)."""
        self._states = dict.fromkeys(self.names, False)
        self._set_up(self._latch_value())
        self._started = True

    def apply(self, states: Mapping[str, bool]) -> None:
        """Set the outputs. A chip found reset (a brown-out, or its RESET pin pulled: all
        pins back to inputs, so every output OFF) is set up again with these states."""
        if not self._started:
            raise RuntimeError("Mcp23008Outputs.apply() before start()")
        check_known(self.names, states, f"MCP23008 at 0x{self._address:02X}")
        self._states.update(states)
        olat = self._latch_value()
        self._write(REG_OLAT, olat)
        # Reading back catches a chip that reset (IODIR back to all inputs) or a stuck bus.
        iodir = self._read(REG_IODIR)
        if iodir & self._used_mask == self._used_mask:
            self.resets_recovered += 1
            _LOGGER.warning(
                "MCP23008 at 0x%02X had reset (IODIR 0x%02X): setting its outputs up again",
                self._address,
                iodir,
            )
            self._set_up(olat)
            return
        self._verify(olat)

    def _set_up(self, olat: int) -> None:
        self._write(REG_OLAT, olat)
        self._write(REG_IODIR, 0xFF & ~self._used_mask)
        self._verify(olat)

    def release(self) -> None:
        """All pins to inputs: the optocoupler's own resistor then holds it OFF."""
        self._started = False
        self._write(REG_IODIR, 0xFF)

    def _latch_value(self) -> int:
        olat = 0
        for name, (pin, active_low) in self._pins.items():
            pin_high = self._states[name] != active_low
            olat |= int(pin_high) << pin
        return olat

    def _verify(self, olat: int) -> None:
        iodir = self._read(REG_IODIR)
        found_olat = self._read(REG_OLAT)
        if iodir & self._used_mask or (found_olat ^ olat) & self._used_mask:
            raise DeviceError(
                self._bus_name,
                self._address,
                f"MCP23008 verify failed: IODIR 0x{iodir:02X} (want output pins "
                f"0x{self._used_mask:02X} clear), OLAT 0x{found_olat:02X} (want 0x{olat:02X})",
            )

    def _write(self, register: int, value: int) -> None:
        try:
            self._bus.write_byte_data(self._address, register, value)
        except OSError as error:
            raise DeviceError(
                self._bus_name, self._address, f"register 0x{register:02X} write failed: {error}"
            ) from error

    def _read(self, register: int) -> int:
        try:
            return self._bus.read_byte_data(self._address, register)
        except OSError as error:
            raise DeviceError(
                self._bus_name, self._address, f"register 0x{register:02X} read failed: {error}"
            ) from error
