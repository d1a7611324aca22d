"""Register-accurate simulated ISL94203 cell monitor.

Byte-addressed register file 0x00-0xAB with little-endian 16-bit words, as on the wire. The
datasheet facts are encoded here independently of the driver, so a driver scaling bug is not
mirrored by the device. The "analog side" methods are what the simulated physics drives.
"""

from __future__ import annotations

from collections.abc import Sequence

from edge_agent.drivers.thermistor import NtcDivider

_REGISTER_COUNT = 0xAC
_CONFIG_END = 0x58  # 0x00-0x4B configuration, 0x50-0x57 user EEPROM: both EEPROM-backed
# CBFC (0x84), CTRL0..CTRL3 and the EEPROM-enable register. CBFC is the host's: with
# microcontroller balancing it selects the balance FETs; the chip's own state machine does not
# report its decisions there (docs/wiring.md, "Cell balancing").
_WRITABLE_CONTROL = range(0x84, 0x8A)
_EEPROM_ENABLE = 0x89

_MASK_FOR_COUNT = {3: 0x83, 4: 0xC3, 5: 0xC7, 6: 0xE7, 7: 0xEF, 8: 0xFF}
_VOLTS_PER_CELL_CODE = 1.8 * 8 / (4095 * 3)
_VOLTS_PER_PACK_CODE = 1.8 * 32 / 4095
_MAX_CODE = 4095

# Threshold words in the configuration RAM.
_OV, _OVR, _UV, _UVR, _OVLO, _UVLO, _EOC = 0x00, 0x02, 0x04, 0x06, 0x08, 0x0A, 0x0C
_CBMIN, _CBMAX, _CBMINDV, _CBMAXDV = 0x1C, 0x1E, 0x20, 0x22
_OV_DELAY, _UV_DELAY = 0x10, 0x12
_ONE_SECOND_DELAY = 0x0801  # EEPROM default: value 1 (bits 9:0), unit seconds (bits 11:10 = 10)
_CELL_CONFIG = 0x49
_SETUP1 = 0x4B
_CB_DURING_CHARGE = 0x40  # b6 CBDC (CB_CHRG): balance while CHING
_CB_DURING_DISCHARGE = 0x80  # b7 CBDD (CB_DCHRG): balance while DCHING

# Status bits.
_STAT0, _STAT1, _STAT2, _STAT3 = 0x80, 0x81, 0x82, 0x83
_OVF, _OVLOF, _UVF, _UVLOF = 0x01, 0x02, 0x04, 0x08
_EOCHG = 0x80
_CHING, _DCHING = 0x04, 0x08
_CBOV, _CBUV = 0x04, 0x08

_CELLMIN, _CELLMAX, _ISNS, _CELL1 = 0x8A, 0x8C, 0x8E, 0x90
_ITEMP, _XT1, _XT2, _VBATT = 0xA0, 0xA2, 0xA4, 0xA6

_CURRENT_DEADBAND_A = 0.1
_SENSE_OHM = 0.001
_ISNS_GAIN = 50  # CTRL0 bits 5:4 = 00 at reset
_XT_GAIN = 2  # TGAIN = 0 at reset

# Datasheet power-on configuration (approximate): LFP-friendly values are written by drivers.
_RESET_WORDS_V = {
    _OV: 4.25,
    _OVR: 4.15,
    _UV: 2.7,
    _UVR: 3.0,
    _OVLO: 4.35,
    _UVLO: 2.5,
    _EOC: 4.2,
    _CBMIN: 3.1,
    _CBMAX: 4.0,
    _CBMINDV: 0.02,
    _CBMAXDV: 0.5,
}


def _cell_code(volts: float) -> int:
    return max(0, min(_MAX_CODE, round(volts / _VOLTS_PER_CELL_CODE)))


class SimIsl94203:
    """The chip as seen from the I2C bus plus the analog inputs the physics sets."""

    def __init__(self, cell_count: int, thermistor: NtcDivider | None = None) -> None:
        if cell_count not in _MASK_FOR_COUNT:
            raise ValueError(f"ISL94203 handles 3 to 8 cells, not {cell_count}")
        self._registers = bytearray(_REGISTER_COUNT)
        self._thermistor = thermistor or NtcDivider()
        self.eeprom_writes = 0
        self._cell_volts_by_input = [0.0] * 8
        self._pack_current_a = 0.0
        for register, volts in _RESET_WORDS_V.items():
            self._set_word(register, _cell_code(volts))
        for register in (_OV_DELAY, _UV_DELAY):
            self._set_word(register, _ONE_SECOND_DELAY)
        self._registers[_CELL_CONFIG] = _MASK_FOR_COUNT[cell_count]
        self.set_temperatures(25.0, (25.0, None))

    # -- bus side (SimDevice) ------------------------------------------------------------
    def read(self, register: int, length: int) -> bytes:
        data = bytes(self._registers[register : register + length])
        return data + bytes(length - len(data))  # past the last register: zeros

    def write(self, register: int, data: bytes) -> None:
        eeprom_selected = bool(self._registers[_EEPROM_ENABLE] & 1)
        touched_config = False
        for address, value in enumerate(data, start=register):
            if address < _CONFIG_END:
                self._registers[address] = value
                touched_config = True
            elif address in _WRITABLE_CONTROL:
                self._registers[address] = value
            # status and measurement registers are read-only: writes are ignored
        if touched_config and eeprom_selected:
            self.eeprom_writes += 1
        self._update_status()

    # -- analog side ---------------------------------------------------------------------
    def set_cell_voltages(self, volts: Sequence[float]) -> None:
        """One voltage per configured cell, bottom first, placed on the 0x49-mask inputs."""
        inputs = self._cell_inputs()
        if len(volts) != len(inputs):
            raise ValueError(f"{len(volts)} cell voltages for {len(inputs)} configured cells")
        self._cell_volts_by_input = [0.0] * 8
        codes_by_input = [0] * 8  # an unwired input reads 0 V
        codes = [_cell_code(volts_in) for volts_in in volts]
        for cell_input, cell_volts, code in zip(inputs, volts, codes, strict=True):
            self._cell_volts_by_input[cell_input] = cell_volts
            codes_by_input[cell_input] = code
        for cell_input, code in enumerate(codes_by_input):
            self._set_word(_CELL1 + 2 * cell_input, code)
        self._set_word(_CELLMIN, min(codes))
        self._set_word(_CELLMAX, max(codes))
        pack_code = round(sum(volts) / _VOLTS_PER_PACK_CODE)
        self._set_word(_VBATT, max(0, min(_MAX_CODE, pack_code)))
        self._update_status()

    def set_pack_current(self, amps: float) -> None:
        """Positive = charging. Sets CHING/DCHING (0.1 A deadband) and ISNS magnitude."""
        self._pack_current_a = amps
        status2 = self._registers[_STAT2] & ~(_CHING | _DCHING)
        if amps > _CURRENT_DEADBAND_A:
            status2 |= _CHING
        elif amps < -_CURRENT_DEADBAND_A:
            status2 |= _DCHING
        self._registers[_STAT2] = status2
        sense_v = abs(amps) * _SENSE_OHM * _ISNS_GAIN
        self._set_word(_ISNS, min(_MAX_CODE, round(sense_v / 1.8 * _MAX_CODE)))
        self._update_status()

    def set_temperatures(self, internal_c: float, external_c: Sequence[float | None]) -> None:
        """Internal die temperature and up to two external sensors (None = open input)."""
        if len(external_c) > 2:
            raise ValueError("the ISL94203 has two external temperature inputs")
        itemp_v = (internal_c + 273.15) * 1.8527 / 1000
        self._set_word(_ITEMP, max(0, min(_MAX_CODE, round(itemp_v / 1.8 * _MAX_CODE))))
        padded = [*external_c, None, None][:2]
        for register, temperature in zip((_XT1, _XT2), padded, strict=True):
            if temperature is None:
                node_v = self._thermistor.supply_v  # open: the pull-up takes the node to TEMPO
            else:
                node_v = self._thermistor.node_voltage(temperature)
            code = round(node_v * _XT_GAIN / 1.8 * _MAX_CODE)
            self._set_word(register, max(0, min(_MAX_CODE, code)))

    def balancing_cells(self) -> tuple[bool, ...]:
        """Bleed state per configured cell, from the chip's rule and its RAM configuration."""
        inputs = self._cell_inputs()
        bleeding = self._bleeding_inputs()
        return tuple(cell_input in bleeding for cell_input in inputs)

    # -- chip logic ----------------------------------------------------------------------
    def _cell_inputs(self) -> tuple[int, ...]:
        return _INPUTS_FOR_MASK[self._registers[_CELL_CONFIG]]

    def _configured_volts(self) -> list[float]:
        return [self._cell_volts_by_input[cell_input] for cell_input in self._cell_inputs()]

    def _threshold_v(self, register: int) -> float:
        return (self._word(register) & 0x0FFF) * _VOLTS_PER_CELL_CODE

    def _bleeding_inputs(self) -> set[int]:
        volts = self._configured_volts()
        if not volts:
            return set()
        lowest, highest = min(volts), max(volts)
        spread = highest - lowest
        min_delta = self._threshold_v(_CBMINDV)
        in_window = lowest >= self._threshold_v(_CBMIN) and highest <= self._threshold_v(_CBMAX)
        spread_ok = min_delta < spread < self._threshold_v(_CBMAXDV)
        setup1 = self._registers[_SETUP1]
        status2 = self._registers[_STAT2]
        # The chip balances only in a direction its 0x4B bit enables: while charging with CBDC,
        # while discharging with CBDD, and not at all in between (idle).
        direction_enabled = bool(
            (status2 & _CHING and setup1 & _CB_DURING_CHARGE)
            or (status2 & _DCHING and setup1 & _CB_DURING_DISCHARGE)
        )
        if not (in_window and spread_ok and direction_enabled):
            return set()
        return {
            cell_input
            for cell_input in self._cell_inputs()
            if self._cell_volts_by_input[cell_input] - lowest > min_delta
        }

    def _update_status(self) -> None:
        volts = self._configured_volts()
        if not volts or max(volts) == 0.0:
            return  # no cell voltages measured yet: flags stay as they are
        lowest, highest = min(volts), max(volts)
        status0 = self._registers[_STAT0]
        status0 = _hysteresis(
            status0, _OVF, highest > self._threshold_v(_OV), highest < self._threshold_v(_OVR)
        )
        status0 = _hysteresis(
            status0, _UVF, lowest < self._threshold_v(_UV), lowest > self._threshold_v(_UVR)
        )
        status0 = _level(status0, _OVLOF, highest > self._threshold_v(_OVLO))
        status0 = _level(status0, _UVLOF, lowest < self._threshold_v(_UVLO))
        self._registers[_STAT0] = status0
        self._registers[_STAT1] = _level(
            self._registers[_STAT1], _EOCHG, highest >= self._threshold_v(_EOC)
        )
        status3 = _level(self._registers[_STAT3], _CBOV, highest > self._threshold_v(_CBMAX))
        self._registers[_STAT3] = _level(status3, _CBUV, lowest < self._threshold_v(_CBMIN))

    def _word(self, register: int) -> int:
        return self._registers[register] | self._registers[register + 1] << 8

    def _set_word(self, register: int, value: int) -> None:
        self._registers[register] = value & 0xFF
        self._registers[register + 1] = value >> 8 & 0xFF


# The cell inputs (VC1 = 0) each value of the cell-configuration byte wires, bottom first:
# looked up, not worked out, on every status update (several per simulated sample).
_INPUTS_FOR_MASK = tuple(tuple(bit for bit in range(8) if mask >> bit & 1) for mask in range(256))


def _level(byte: int, bit: int, condition: bool) -> int:
    return byte | bit if condition else byte & ~bit


def _hysteresis(byte: int, bit: int, set_when: bool, clear_when: bool) -> int:
    if set_when:
        return byte | bit
    if clear_when:
        return byte & ~bit
    return byte
