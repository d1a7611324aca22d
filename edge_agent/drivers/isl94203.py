"""ISL94203 / ISL94202 3-8 cell monitor driver (I2C, registers per the Renesas datasheet).

The chip has a configuration area (0x00-0x4B) backed by EEPROM with a RAM copy, selected by
register 0x89 bit 0. This driver only ever writes the RAM copy: EEPROM writes are slow and wear
the part, and a half-written EEPROM page would survive a power cycle.

The chip protects on its own, whatever the computer does: a cell above OV (0x00) for the OV
delay (0x10) turns its CFET output off, one below UV (0x04) for the UV delay (0x12) its DFET
output (docs/safety.md shows how those cut the charge and load control signals). The agent's
HVD and LVD act first; the chip's OV and UV are set at the agent's lockout levels (OVLO,
UVLO) with their delays, so they are the last line, and the chip's own lockouts (OVLO 0x08,
UVLO 0x0A) a step beyond them.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.control.settings import BalanceSettings, CellThresholds
from edge_agent.drivers.bus import DeviceError, SMBusLike
from edge_agent.drivers.thermistor import NtcDivider

DEFAULT_ADDRESS = 0x28

_ByteUpdate = Callable[[int], int]

CELL_CONFIG_MASKS: dict[int, int] = {3: 0x83, 4: 0xC3, 5: 0xC7, 6: 0xE7, 7: 0xEF, 8: 0xFF}

# Configuration words (12-bit code in bits 11:0; bits 15:12 hold other fields we must keep).
REG_OV = 0x00
REG_OVR = 0x02
REG_UV = 0x04
REG_UVR = 0x06
REG_OVLO = 0x08
REG_UVLO = 0x0A
REG_EOC = 0x0C
REG_OV_DELAY = 0x10  # bits 9:0 value, 11:10 unit (us, ms, s, min); 15:12 kept as found
REG_UV_DELAY = 0x12
REG_CBMIN = 0x1C
REG_CBMAX = 0x1E
REG_CBMINDV = 0x20
REG_CBMAXDV = 0x22
REG_CELL_CONFIG = 0x49  # byte: high byte of the word at 0x48
REG_SETUP1 = 0x4B  # byte: b7 CBDD balance during discharge, b6 CBDC balance during charge
CB_DURING_CHARGE_BIT = 0x40  # CBDC / CB_CHRG
CB_DURING_DISCHARGE_BIT = 0x80  # CBDD / CB_DCHRG

# Live registers.
REG_STATUS0 = 0x80
REG_EEPROM_ENABLE = 0x89  # bit 0: 1 = EEPROM access, 0 = RAM copy
REG_CELLMIN = 0x8A
REG_CELLMAX = 0x8C
REG_CELL1 = 0x90
REG_ITEMP = 0xA0
REG_XT1 = 0xA2
REG_XT2 = 0xA4
REG_VBATT = 0xA6

CODE_MASK = 0x0FFF
# The chip's own lockouts sit this far beyond the agent's (whose lockouts are the chip's OV/UV).
CHIP_LOCKOUT_STEP_V = 0.10
DELAY_UNIT_MS, DELAY_UNIT_S = 1, 2
DELAY_VALUE_MAX = 0x3FF
ADC_FULL_SCALE_V = 1.8
ADC_MAX_CODE = 4095
CELL_VOLTS_PER_CODE = ADC_FULL_SCALE_V * 8 / (ADC_MAX_CODE * 3)  # 1.17216 mV
PACK_VOLTS_PER_CODE = ADC_FULL_SCALE_V * 32 / ADC_MAX_CODE
XT_GAIN = 2  # TGAIN = 0 (power-on default)
XT_FULL_SCALE_V = ADC_FULL_SCALE_V / XT_GAIN
# A node this close to its ceiling is an open input (or too cold to resolve): no reading.
OPEN_SENSOR_FRACTION = 0.97

STATUS_FLAG_NAMES: tuple[tuple[str | None, ...], ...] = (
    ("OVF", "OVLOF", "UVF", "UVLOF", "DOTF", "DUTF", "COTF", "CUTF"),
    ("IOTF", "COCF", "DOCF", "DSCF", "CELLF", "OPENF", None, "EOCHG"),
    ("LD_PRSNT", "CH_PRSNT", "CHING", "DCHING", "ECC_USED", "ECC_FAIL", "INT_SCAN", "LVCHG"),
    ("CBOT", "CBUT", "CBOV", "CBUV", "IN_IDLE", "IN_DOZE", "IN_SLEEP", None),
)


@dataclass(frozen=True, slots=True)
class CellMonitorReading:
    cell_voltages: tuple[float, ...]  # volts, cell 1 (bottom of the stack) first
    cell_min: float
    cell_max: float
    pack_voltage: float  # VBATT: coarse (about 14 mV per code); the sum of cells is better
    internal_temperature_c: float
    external_temperatures_c: tuple[float | None, float | None]  # None: open input, no sensor
    flags: frozenset[str]
    balancing: tuple[bool, ...]  # per configured cell


def volts_to_code(volts: float) -> int:
    """12-bit cell-voltage code for a voltage (thresholds and cells share this scale)."""
    code = round(volts / CELL_VOLTS_PER_CODE)
    if not 0 <= code <= CODE_MASK:
        raise ValueError(f"{volts} V does not fit a 12-bit ISL94203 cell-voltage code")
    return code


def delay_code(seconds: float) -> int:
    """A delay word's 12-bit code: milliseconds up to 1.023 s, else whole seconds (rounded
    up: the chip is the last line, a delay is never shortened into a nuisance trip)."""
    if not 0.0 <= seconds <= DELAY_VALUE_MAX:
        raise ValueError(f"delay {seconds} s does not fit an ISL94203 delay register")
    milliseconds = round(seconds * 1000.0)
    if milliseconds <= DELAY_VALUE_MAX:
        return DELAY_UNIT_MS << 10 | milliseconds
    return DELAY_UNIT_S << 10 | math.ceil(seconds - 1e-9)


def balance_direction_bits(balance: BalanceSettings) -> int:
    """The 0x4B direction bits for the balance settings.

    The chip cannot apply a current threshold. A positive `min_charge_current` means "balance
    only while charging": CBDC alone. Zero means balance whatever the current does: CBDC and
    CBDD, so the chip balances while charging and while discharging (it never balances idle).
    """
    if balance.min_charge_current > 0:
        return CB_DURING_CHARGE_BIT
    return CB_DURING_CHARGE_BIT | CB_DURING_DISCHARGE_BIT


def configuration_codes(thresholds: CellThresholds, balance: BalanceSettings) -> dict[int, int]:
    """The 12-bit codes `Isl94203.configure` writes, by register (see the module docstring)."""
    margin = thresholds.lockout_release_margin
    words = {
        REG_OV: thresholds.ovlo,
        REG_OVR: thresholds.ovlo - margin,
        REG_UV: thresholds.uvlo,
        REG_UVR: thresholds.uvlo + margin,
        REG_OVLO: thresholds.ovlo + CHIP_LOCKOUT_STEP_V,
        REG_UVLO: thresholds.uvlo - CHIP_LOCKOUT_STEP_V,
        REG_EOC: thresholds.eoc,
        REG_CBMIN: balance.min_cell,
        REG_CBMAX: balance.max_cell,
        REG_CBMINDV: balance.min_delta,
        REG_CBMAXDV: balance.max_delta,
    }
    codes = {register: volts_to_code(volts) for register, volts in words.items()}
    codes[REG_OV_DELAY] = delay_code(thresholds.ovlo_delay_s)
    codes[REG_UV_DELAY] = delay_code(thresholds.uvlo_delay_s)
    return codes


def cell_inputs(mask: int) -> tuple[int, ...]:
    """Zero-based cell inputs (VC1 = 0) wired for a cell-configuration mask, bottom first."""
    return tuple(bit for bit in range(8) if mask >> bit & 1)


@functools.lru_cache(maxsize=256)  # pure, and the same few status bytes come back every sample
def decode_flags(status: bytes) -> frozenset[str]:
    names: set[str] = set()
    for byte, byte_names in zip(status, STATUS_FLAG_NAMES, strict=True):
        names.update(name for bit, name in enumerate(byte_names) if name and byte >> bit & 1)
    return frozenset(names)


class Isl94203:
    """One ISL94203 (or ISL94202) on an I2C bus."""

    def __init__(
        self,
        bus: SMBusLike,
        bus_name: str,
        cell_count: int,
        address: int = DEFAULT_ADDRESS,
        thermistor: NtcDivider | None = None,
    ) -> None:
        if cell_count not in CELL_CONFIG_MASKS:
            raise ValueError(f"ISL94203 supports 3 to 8 cells, not {cell_count}")
        self._bus = bus
        self._bus_name = bus_name
        self._address = address
        self._cell_count = cell_count
        self._mask = CELL_CONFIG_MASKS[cell_count]
        self._inputs = cell_inputs(self._mask)
        self._thermistor = thermistor or NtcDivider()
        self._balance: BalanceSettings | None = None  # as written by configure()
        self._balance_mode = 0  # the 0x4B direction bits written by configure()

    @property
    def cell_count(self) -> int:
        return self._cell_count

    # -- identity ------------------------------------------------------------------------
    def verify(self) -> int:
        """Check that an ISL94203 answers; return the cell count its 0x49 byte selects.

        The chip has no ID register, so a sane cell-configuration byte plus readable live status
        registers is the best identity check available.
        """
        try:
            cell_config = self._bus.read_byte_data(self._address, REG_CELL_CONFIG)
            for offset in range(4):
                self._bus.read_byte_data(self._address, REG_STATUS0 + offset)
        except OSError as error:
            raise self._error(f"no ISL94203 answered: {error}") from error
        for count, mask in CELL_CONFIG_MASKS.items():
            if mask == cell_config:
                return count
        valid = ", ".join(f"0x{mask:02X}" for mask in CELL_CONFIG_MASKS.values())
        raise self._error(
            f"cell configuration byte 0x49 reads 0x{cell_config:02X}, not one of {valid}: "
            "not an ISL94203, or its configuration is corrupt"
        )

    # -- configuration -------------------------------------------------------------------
    def configure(self, thresholds: CellThresholds, balance: BalanceSettings) -> None:
        """Write the protection levels (see the module docstring), balance window and cell
        count into the RAM copy, verified."""
        codes = configuration_codes(thresholds, balance)
        self._select_ram()
        for register, code in codes.items():
            self._write_code_preserving_upper_bits(register, code)
        self._write_byte_verified(REG_CELL_CONFIG, lambda _old: self._mask)
        self._balance_mode = balance_direction_bits(balance)
        directions = CB_DURING_CHARGE_BIT | CB_DURING_DISCHARGE_BIT
        self._write_byte_verified(
            REG_SETUP1, lambda old: old & ~directions & 0xFF | self._balance_mode
        )
        self._balance = balance

    def _select_ram(self) -> None:
        eeprom_enable = self._read_byte(REG_EEPROM_ENABLE)
        if not eeprom_enable & 1:
            return
        self._write_byte(REG_EEPROM_ENABLE, eeprom_enable & ~1)
        if self._read_byte(REG_EEPROM_ENABLE) & 1:
            raise self._error(
                "EEPROM access (0x89 bit 0) will not clear: refusing to write configuration"
            )

    def _ensure_ram_selected(self) -> None:
        # Checked before every configuration write: another master may have flipped it.
        if self._read_byte(REG_EEPROM_ENABLE) & 1:
            self._select_ram()

    def _write_code_preserving_upper_bits(self, register: int, code: int) -> None:
        old = self._read_word(register)
        new = (old & ~CODE_MASK & 0xFFFF) | code
        self._ensure_ram_selected()
        self._write_word(register, new)
        found = self._read_word(register)
        if found != new:
            raise self._error(
                f"register 0x{register:02X} verify failed: wrote 0x{new:04X}, read 0x{found:04X}"
            )

    def _write_byte_verified(self, register: int, update: _ByteUpdate) -> None:
        new = update(self._read_byte(register)) & 0xFF
        self._ensure_ram_selected()
        self._write_byte(register, new)
        found = self._read_byte(register)
        if found != new:
            raise self._error(
                f"register 0x{register:02X} verify failed: wrote 0x{new:02X}, read 0x{found:02X}"
            )

    # -- measurement ---------------------------------------------------------------------
    def read(self) -> CellMonitorReading:
        cells = tuple(
            self._read_code(REG_CELL1 + 2 * cell_input) * CELL_VOLTS_PER_CODE
            for cell_input in self._inputs
        )
        status = bytes(self._read_byte(REG_STATUS0 + offset) for offset in range(4))
        flags = decode_flags(status)
        return CellMonitorReading(
            cell_voltages=cells,
            cell_min=self._read_code(REG_CELLMIN) * CELL_VOLTS_PER_CODE,
            cell_max=self._read_code(REG_CELLMAX) * CELL_VOLTS_PER_CODE,
            pack_voltage=self._read_code(REG_VBATT) * PACK_VOLTS_PER_CODE,
            internal_temperature_c=internal_temperature_c(self._read_code(REG_ITEMP)),
            external_temperatures_c=(
                self._external_temperature(self._read_code(REG_XT1)),
                self._external_temperature(self._read_code(REG_XT2)),
            ),
            flags=flags,
            balancing=self._expected_balancing(cells, flags),
        )

    def _expected_balancing(
        self, cells: tuple[float, ...], flags: frozenset[str]
    ) -> tuple[bool, ...]:
        """Which cells the chip's own balancing bleeds now, by its rule and our settings.

        The chip does not report this: CBFC (0x84) is the host's register for microcontroller
        balancing, not a mirror of the internal state machine (docs/wiring.md). So the driver
        applies the rule the chip applies to what it just read: the direction enabled in 0x4B
        (CBDC while CHING, CBDD while DCHING), every cell inside CBMIN..CBMAX (the chip's CBUV
        and CBOV flags) and no balance temperature fault (CBUT, CBOT), a spread between CBMINDV
        and CBMAXDV, and then every cell more than CBMINDV above the lowest.
        """
        none = (False,) * len(cells)
        balance = self._balance
        if balance is None or not cells:
            return none
        direction = ("CHING" in flags and self._balance_mode & CB_DURING_CHARGE_BIT) or (
            "DCHING" in flags and self._balance_mode & CB_DURING_DISCHARGE_BIT
        )
        lowest, highest = min(cells), max(cells)
        if (
            not direction
            or {"CBUV", "CBOV", "CBUT", "CBOT"} & flags
            or not balance.min_delta < highest - lowest < balance.max_delta
        ):
            return none
        return tuple(volts - lowest > balance.min_delta for volts in cells)

    def _external_temperature(self, code: int) -> float | None:
        node_v = code * ADC_FULL_SCALE_V / ADC_MAX_CODE / XT_GAIN
        ceiling_v = min(self._thermistor.supply_v, XT_FULL_SCALE_V)
        if node_v >= OPEN_SENSOR_FRACTION * ceiling_v or node_v <= 0.0:
            return None
        return self._thermistor.temperature_from_voltage(node_v)

    # -- bus access ----------------------------------------------------------------------
    def _read_code(self, register: int) -> int:
        return self._read_word(register) & CODE_MASK

    def _read_word(self, register: int) -> int:
        try:
            return self._bus.read_word_data(self._address, register)
        except OSError as error:
            raise self._error(f"register 0x{register:02X} read failed: {error}") from error

    def _write_word(self, register: int, value: int) -> None:
        try:
            self._bus.write_word_data(self._address, register, value)
        except OSError as error:
            raise self._error(f"register 0x{register:02X} write failed: {error}") from error

    def _read_byte(self, register: int) -> int:
        try:
            return self._bus.read_byte_data(self._address, register)
        except OSError as error:
            raise self._error(f"register 0x{register:02X} read failed: {error}") from error

    def _write_byte(self, register: int, value: int) -> None:
        try:
            self._bus.write_byte_data(self._address, register, value)
        except OSError as error:
            raise self._error(f"register 0x{register:02X} write failed: {error}") from error

    def _error(self, message: str) -> DeviceError:
        return DeviceError(self._bus_name, self._address, message)


def internal_temperature_c(code: int) -> float:
    """ITEMP (0xA0) code to degrees Celsius (datasheet formula; code 1257 is about 25 C)."""
    return code * ADC_FULL_SCALE_V / ADC_MAX_CODE * 1000 / 1.8527 - 273.15
