"""INA228 (preferred) and INA226 shunt monitors (Texas Instruments, I2C, big-endian registers).

Scaling follows the datasheets: the current LSB is the maximum measurable current over the
ADC's code range, and the calibration register makes the chip report current in that LSB.
Positive current = the direction the shunt is wired to call positive (charging the battery).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from edge_agent.drivers.bus import DeviceError, SMBusLike

TI_MANUFACTURER_ID = 0x5449  # "TI"

# INA228 registers.
INA228_CONFIG = 0x00
INA228_ADC_CONFIG = 0x01
INA228_SHUNT_CAL = 0x02
INA228_VBUS = 0x05
INA228_CURRENT = 0x07
INA228_CHARGE = 0x0A
INA228_DIAG_ALRT = 0x0B
INA228_MANUFACTURER_ID = 0x3E
INA228_DEVICE_ID = 0x3F
INA228_DEVICE = 0x228
INA228_CONFIG_RSTACC = 1 << 14
INA228_CONFIG_ADCRANGE = 1 << 4
# Continuous shunt + bus (MODE 0xB), 1052 us conversions, 64-sample averaging: ~135 ms per
# result, which smooths PV and inverter ripple while the hardware still integrates every one.
INA228_ADC_CONFIG_VALUE = 0xB << 12 | 5 << 9 | 5 << 6 | 5 << 3 | 3
INA228_DIAG_CHARGEOF = 1 << 10
INA228_RANGE0_FULL_SCALE_V = 0.16384
INA228_RANGE1_FULL_SCALE_V = 0.04096
INA228_VBUS_LSB_V = 195.3125e-6
INA228_CURRENT_CODES = 1 << 19
INA228_CHARGE_BITS = 40

# INA226 registers.
INA226_CONFIG = 0x00
INA226_SHUNT = 0x01
INA226_BUS = 0x02
INA226_CURRENT = 0x04
INA226_CALIBRATION = 0x05
INA226_MANUFACTURER_ID = 0xFE
INA226_DIE_ID = 0xFF
INA226_DIE_ID_VALUE = 0x2260
# Bit 14 always reads 1; 64 averages, 1.1 ms bus and shunt conversions, continuous shunt + bus.
INA226_CONFIG_VALUE = 0x4000 | 3 << 9 | 4 << 6 | 4 << 3 | 7
INA226_FULL_SCALE_V = 0.08192
INA226_SHUNT_LSB_V = 2.5e-6
INA226_BUS_LSB_V = 1.25e-3
INA226_CURRENT_CODES = 1 << 15

CALIBRATION_MAX = 0x7FFF  # both calibration registers are 15 bits
SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class ShuntReading:
    current_a: float  # offset-corrected
    bus_voltage_v: float
    power_w: float  # bus voltage x offset-corrected current (signed like the current)
    charge_ah: float | None  # INA228: counted in hardware since start(); INA226: None


class ShuntMonitor(Protocol):
    def start(self) -> None: ...

    def read(self, now: float) -> ShuntReading: ...

    @property
    def max_current_a(self) -> float: ...

    @property
    def current_lsb_a(self) -> float: ...


def shunt_resistance_ohm(rated_current_a: float, rated_millivolts: float) -> float:
    if rated_current_a <= 0 or rated_millivolts <= 0:
        raise ValueError("shunt rating needs a positive current and voltage")
    return rated_millivolts / 1000.0 / rated_current_a


def sign_extend(value: int, bits: int) -> int:
    sign_bit = 1 << (bits - 1)
    return (value & (sign_bit - 1)) - (value & sign_bit)


class _RegisterAccess:
    """Big-endian register access with OSError -> DeviceError translation."""

    def __init__(self, bus: SMBusLike, bus_name: str, address: int) -> None:
        self._bus = bus
        self._bus_name = bus_name
        self._address = address

    def read_unsigned(self, register: int, length: int) -> int:
        try:
            data = self._bus.read_i2c_block_data(self._address, register, length)
        except OSError as error:
            raise self.error(f"register 0x{register:02X} read failed: {error}") from error
        return int.from_bytes(bytes(data), "big")

    def write_u16(self, register: int, value: int) -> None:
        try:
            self._bus.write_i2c_block_data(self._address, register, [value >> 8, value & 0xFF])
        except OSError as error:
            raise self.error(f"register 0x{register:02X} write failed: {error}") from error

    def write_u16_verified(self, register: int, value: int, *, ignore: int = 0) -> None:
        """Write and read back; bits in `ignore` may read back either way."""
        self.write_u16(register, value)
        found = self.read_unsigned(register, 2)
        if (found ^ value) & ~ignore & 0xFFFF:
            raise self.error(
                f"register 0x{register:02X} verify failed: wrote 0x{value:04X}, read 0x{found:04X}"
            )

    def error(self, message: str) -> DeviceError:
        return DeviceError(self._bus_name, self._address, message)


class Ina228:
    """INA228: 20-bit shunt/bus ADC with a hardware charge accumulator."""

    def __init__(
        self,
        bus: SMBusLike,
        bus_name: str,
        address: int,
        rated_current_a: float,
        rated_millivolts: float,
        *,
        zero_offset_a: float = 0.0,
    ) -> None:
        self._registers = _RegisterAccess(bus, bus_name, address)
        self._zero_offset_a = zero_offset_a
        shunt_ohm = shunt_resistance_ohm(rated_current_a, rated_millivolts)
        # The finer range only if the rated drop plus 25 % overload headroom still fits.
        self._fine_range = rated_millivolts / 1000.0 * 1.25 <= INA228_RANGE1_FULL_SCALE_V
        full_scale_v = (
            INA228_RANGE1_FULL_SCALE_V if self._fine_range else INA228_RANGE0_FULL_SCALE_V
        )
        self._max_current_a = full_scale_v / shunt_ohm
        self._current_lsb_a = self._max_current_a / INA228_CURRENT_CODES
        range_factor = 4 if self._fine_range else 1
        self._shunt_cal = round(13107.2e6 * self._current_lsb_a * shunt_ohm * range_factor)
        if not 1 <= self._shunt_cal <= CALIBRATION_MAX:
            raise self._registers.error(
                f"SHUNT_CAL {self._shunt_cal} does not fit 15 bits for this shunt"
            )
        self._previous_charge_raw: int | None = None
        self._charge_codes = 0
        self._offset_charge_ah = 0.0
        self._previous_read_time: float | None = None
        self._charge_overflow_seen = False

    @property
    def max_current_a(self) -> float:
        return self._max_current_a

    @property
    def current_lsb_a(self) -> float:
        return self._current_lsb_a

    @property
    def shunt_cal(self) -> int:
        return self._shunt_cal

    @property
    def adc_range(self) -> int:
        """CONFIG ADCRANGE: 1 = +-40.96 mV, 0 = +-163.84 mV."""
        return 1 if self._fine_range else 0

    @property
    def charge_overflow_seen(self) -> bool:
        """DIAG_ALRT CHARGEOF was seen; the wrap correction keeps the count right regardless."""
        return self._charge_overflow_seen

    def start(self) -> None:
        self._check_identity()
        adc_range_bit = INA228_CONFIG_ADCRANGE if self._fine_range else 0
        self._registers.write_u16_verified(INA228_SHUNT_CAL, self._shunt_cal)
        self._registers.write_u16_verified(INA228_ADC_CONFIG, INA228_ADC_CONFIG_VALUE)
        # RSTACC clears CHARGE and ENERGY. The datasheet says RST self-clears but not RSTACC,
        # so accept it reading back either way (the other bits must be as written), then write
        # CONFIG once more without it: a chip that keeps it set is not left holding the
        # accumulators at zero, and CONFIG ends as verified, RSTACC clear.
        self._registers.write_u16_verified(
            INA228_CONFIG,
            adc_range_bit | INA228_CONFIG_RSTACC,
            ignore=INA228_CONFIG_RSTACC,
        )
        self._registers.write_u16_verified(INA228_CONFIG, adc_range_bit)
        self._previous_charge_raw = None
        self._charge_codes = 0
        self._offset_charge_ah = 0.0
        self._previous_read_time = None

    def _check_identity(self) -> None:
        manufacturer = self._registers.read_unsigned(INA228_MANUFACTURER_ID, 2)
        device = self._registers.read_unsigned(INA228_DEVICE_ID, 2) >> 4
        if manufacturer == TI_MANUFACTURER_ID and device == INA228_DEVICE:
            return
        raise self._registers.error(
            f"expected INA228 (manufacturer 0x{TI_MANUFACTURER_ID:04X}, device "
            f"0x{INA228_DEVICE:03X}), found manufacturer 0x{manufacturer:04X} device "
            f"0x{device:03X}{_other_chip_hint(self._registers, 'INA226')}"
        )

    def read(self, now: float) -> ShuntReading:
        current_raw = sign_extend(self._registers.read_unsigned(INA228_CURRENT, 3) >> 4, 20)
        bus_raw = self._registers.read_unsigned(INA228_VBUS, 3) >> 4
        # DIAG_ALRT before CHARGE: CHARGEOF clears when CHARGE is read (datasheet, DIAG_ALRT).
        diag = self._registers.read_unsigned(INA228_DIAG_ALRT, 2)
        if diag & INA228_DIAG_CHARGEOF:
            self._charge_overflow_seen = True
        charge_raw = sign_extend(
            self._registers.read_unsigned(INA228_CHARGE, 5), INA228_CHARGE_BITS
        )
        current_a = current_raw * self._current_lsb_a - self._zero_offset_a
        bus_voltage_v = bus_raw * INA228_VBUS_LSB_V
        return ShuntReading(
            current_a=current_a,
            bus_voltage_v=bus_voltage_v,
            power_w=bus_voltage_v * current_a,
            charge_ah=self._accumulate_charge(charge_raw, now),
        )

    def _accumulate_charge(self, charge_raw: int, now: float) -> float:
        if self._previous_charge_raw is None:
            self._charge_codes = charge_raw  # RSTACC zeroed the register at start()
        else:
            # The signed modular difference survives any number of 40-bit wraps, provided the
            # register moves less than half its range between reads (years at full current).
            modulus = 1 << INA228_CHARGE_BITS
            step = (charge_raw - self._previous_charge_raw) % modulus
            if step >= modulus // 2:
                step -= modulus
            self._charge_codes += step
        self._previous_charge_raw = charge_raw
        if self._previous_read_time is not None:
            elapsed_s = now - self._previous_read_time
            self._offset_charge_ah += self._zero_offset_a * elapsed_s / SECONDS_PER_HOUR
        self._previous_read_time = now
        counted_ah = self._charge_codes * self._current_lsb_a / SECONDS_PER_HOUR
        return counted_ah - self._offset_charge_ah


class Ina226:
    """INA226: 16-bit shunt/bus ADC, no charge accumulator (the control core integrates)."""

    def __init__(
        self,
        bus: SMBusLike,
        bus_name: str,
        address: int,
        rated_current_a: float,
        rated_millivolts: float,
        *,
        zero_offset_a: float = 0.0,
    ) -> None:
        self._registers = _RegisterAccess(bus, bus_name, address)
        self._zero_offset_a = zero_offset_a
        shunt_ohm = shunt_resistance_ohm(rated_current_a, rated_millivolts)
        self._max_current_a = INA226_FULL_SCALE_V / shunt_ohm
        self._current_lsb_a = self._max_current_a / INA226_CURRENT_CODES
        self._calibration = round(0.00512 / (self._current_lsb_a * shunt_ohm))
        if not 1 <= self._calibration <= CALIBRATION_MAX:
            raise self._registers.error(
                f"CAL {self._calibration} does not fit 15 bits for this shunt"
            )

    @property
    def max_current_a(self) -> float:
        return self._max_current_a

    @property
    def current_lsb_a(self) -> float:
        return self._current_lsb_a

    @property
    def calibration(self) -> int:
        return self._calibration

    def start(self) -> None:
        self._check_identity()
        self._registers.write_u16_verified(INA226_CONFIG, INA226_CONFIG_VALUE)
        self._registers.write_u16_verified(INA226_CALIBRATION, self._calibration)

    def _check_identity(self) -> None:
        manufacturer = self._registers.read_unsigned(INA226_MANUFACTURER_ID, 2)
        die = self._registers.read_unsigned(INA226_DIE_ID, 2)
        if manufacturer == TI_MANUFACTURER_ID and die == INA226_DIE_ID_VALUE:
            return
        raise self._registers.error(
            f"expected INA226 (manufacturer 0x{TI_MANUFACTURER_ID:04X}, "
            f"die 0x{INA226_DIE_ID_VALUE:04X}), found manufacturer 0x{manufacturer:04X} "
            f"die 0x{die:04X}{_other_chip_hint(self._registers, 'INA228')}"
        )

    def read(self, now: float) -> ShuntReading:
        del now  # no accumulator to time-correct
        current_raw = sign_extend(self._registers.read_unsigned(INA226_CURRENT, 2), 16)
        bus_raw = self._registers.read_unsigned(INA226_BUS, 2) & 0x7FFF
        current_a = current_raw * self._current_lsb_a - self._zero_offset_a
        bus_voltage_v = bus_raw * INA226_BUS_LSB_V
        return ShuntReading(
            current_a=current_a,
            bus_voltage_v=bus_voltage_v,
            power_w=bus_voltage_v * current_a,
            charge_ah=None,
        )


def _other_chip_hint(registers: _RegisterAccess, other: str) -> str:
    """Probe the other family's ID registers to name a mix-up (best effort)."""
    try:
        if other == "INA226":
            manufacturer = registers.read_unsigned(INA226_MANUFACTURER_ID, 2)
            die = registers.read_unsigned(INA226_DIE_ID, 2)
            found = manufacturer == TI_MANUFACTURER_ID and die == INA226_DIE_ID_VALUE
            ids = f"manufacturer 0x{manufacturer:04X} die 0x{die:04X} at 0xFE/0xFF"
        else:
            manufacturer = registers.read_unsigned(INA228_MANUFACTURER_ID, 2)
            device = registers.read_unsigned(INA228_DEVICE_ID, 2) >> 4
            found = manufacturer == TI_MANUFACTURER_ID and device == INA228_DEVICE
            ids = f"manufacturer 0x{manufacturer:04X} device 0x{device:03X} at 0x3E/0x3F"
    except DeviceError:
        return ""
    return f"; {ids}: is this an {other}?" if found else ""
