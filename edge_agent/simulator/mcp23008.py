"""Register-accurate simulated MCP23008 port expander (sequential addressing on).

Besides its registers it counts, per pin, the rising edges it drives (a pin that is an output
going from low to high, by a latch write or by becoming an output with its latch high), so a
simulated box can wire a pin to edge-triggered hardware such as a retriggerable one-shot.
"""

from __future__ import annotations

from collections.abc import Callable

_IODIR, _IPOL, _GPINTEN, _DEFVAL, _INTCON, _IOCON, _GPPU, _INTF, _INTCAP, _GPIO, _OLAT = range(11)
_REGISTER_COUNT = 11
_PINS = 8
_SEQOP_DISABLED = 0x20  # IOCON bit 5
# IOCON (DS21919, register 1-6): bits 7, 6 and 0 are unimplemented and read as 0; bits 5-1 are
# SEQOP, DISSLW, HAEN, ODR and INTPOL.
_IOCON_IMPLEMENTED = 0x3E
_READ_ONLY = (_INTF, _INTCAP)
# Power-on reset (datasheet register table): IODIR 0xFF (all inputs), every other register 0
# (INTCAP is "unknown" there; 0 here).
_POWER_ON_IODIR = 0xFF

RisingEdgeListener = Callable[[int], None]


class SimMcp23008:
    def __init__(self) -> None:
        self._registers = bytearray(_REGISTER_COUNT)
        self._deliberate_latch = 0  # pins whose OLAT bit has been written since power-on
        self._rising_edges = [0] * _PINS
        self.glitches = 0
        self.resets = 0
        self.external_levels = 0  # levels on input pins (opto side pulls nothing: 0)
        # Called with the pin number at every rising edge, as it happens (the box stamps
        # heartbeat pulses with its own time here).
        self.on_rising_edge: RisingEdgeListener | None = None
        self.power_on_reset()
        self.resets = 0  # coming up at construction is not a reset

    # -- bus side ------------------------------------------------------------------------
    def read(self, register: int, length: int) -> bytes:
        return bytes(self._read_one(address) for address in self._addresses(register, length))

    def write(self, register: int, data: bytes) -> None:
        for address, value in zip(self._addresses(register, len(data)), data, strict=True):
            self._write_one(address, value)

    def _addresses(self, register: int, length: int) -> list[int]:
        if self._registers[_IOCON] & _SEQOP_DISABLED:
            return [register] * length
        return [(register + offset) % _REGISTER_COUNT for offset in range(length)]

    def _read_one(self, address: int) -> int:
        if address >= _REGISTER_COUNT:
            return 0
        if address == _GPIO:
            outputs = ~self._registers[_IODIR] & 0xFF
            inputs = self._registers[_IODIR] & (self.external_levels | self._registers[_GPPU])
            level = (self._registers[_OLAT] & outputs) | inputs
            return level ^ (self._registers[_IPOL] & self._registers[_IODIR])
        return self._registers[address]

    def _write_one(self, address: int, value: int) -> None:
        if address >= _REGISTER_COUNT or address in _READ_ONLY:
            return
        driven_before = self._driven_high()
        if address in (_GPIO, _OLAT):  # a GPIO write lands in the output latch
            self._registers[_OLAT] = value
            self._deliberate_latch = 0xFF
        else:
            if address == _IODIR:
                becoming_outputs = self._registers[_IODIR] & ~value & 0xFF
                if becoming_outputs & ~self._deliberate_latch:
                    self.glitches += 1
            if address == _IOCON:
                value &= _IOCON_IMPLEMENTED
            self._registers[address] = value
        self._count_rising_edges(self._driven_high() & ~driven_before)

    def _driven_high(self) -> int:
        return self._registers[_OLAT] & ~self._registers[_IODIR] & 0xFF

    def _count_rising_edges(self, rising: int) -> None:
        for pin in range(_PINS):
            if rising >> pin & 1:
                self._rising_edges[pin] += 1
                if self.on_rising_edge is not None:
                    self.on_rising_edge(pin)

    # -- power ---------------------------------------------------------------------------
    def power_on_reset(self) -> None:
        """A brown-out or the RESET pin: every register back to its power-on value, so every
        pin is an input again. The edge counters are the test's instrument and carry on."""
        self._registers[:] = bytes(_REGISTER_COUNT)
        self._registers[_IODIR] = _POWER_ON_IODIR
        self._deliberate_latch = 0
        self.resets += 1

    # -- analog side ---------------------------------------------------------------------
    def output_levels(self) -> tuple[bool, ...]:
        """Per pin: True only when the pin is an output driving high."""
        driven_high = self._driven_high()
        return tuple(bool(driven_high >> pin & 1) for pin in range(_PINS))

    def is_output(self, pin: int) -> bool:
        return not self._registers[_IODIR] >> pin & 1

    def rising_edges(self, pin: int) -> int:
        """How many times `pin` has gone from low to high as an output since construction."""
        return self._rising_edges[pin]
