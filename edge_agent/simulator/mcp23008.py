"""Register-accurate simulated MCP23008 port expander (sequential addressing on)."""

from __future__ import annotations

_IODIR, _IPOL, _GPINTEN, _DEFVAL, _INTCON, _IOCON, _GPPU, _INTF, _INTCAP, _GPIO, _OLAT = range(11)
_REGISTER_COUNT = 11
_SEQOP_DISABLED = 0x20  # IOCON bit 5
_READ_ONLY = (_INTF, _INTCAP)


class SimMcp23008:
    def __init__(self) -> None:
        self._registers = bytearray(_REGISTER_COUNT)
        self._registers[_IODIR] = 0xFF
        self._deliberate_latch = 0  # pins whose OLAT bit has been written since power-on
        self.glitches = 0
        self.external_levels = 0  # levels on input pins (opto side pulls nothing: 0)

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
        if address in (_GPIO, _OLAT):  # a GPIO write lands in the output latch
            self._registers[_OLAT] = value
            self._deliberate_latch = 0xFF
            return
        if address == _IODIR:
            becoming_outputs = self._registers[_IODIR] & ~value & 0xFF
            if becoming_outputs & ~self._deliberate_latch:
                self.glitches += 1
        self._registers[address] = value

    # -- analog side ---------------------------------------------------------------------
    def output_levels(self) -> tuple[bool, ...]:
        """Per pin: True only when the pin is an output driving high."""
        outputs = ~self._registers[_IODIR] & 0xFF
        driven_high = self._registers[_OLAT] & outputs
        return tuple(bool(driven_high >> pin & 1) for pin in range(8))

    def is_output(self, pin: int) -> bool:
        return not self._registers[_IODIR] >> pin & 1
