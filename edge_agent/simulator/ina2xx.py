"""Register-accurate simulated INA228 and INA226 shunt monitors.

Registers are big-endian on the wire and do not auto-increment: a read returns the addressed
register's bytes (zero-padded past its end). Scaling is encoded here from the datasheets,
independently of the drivers. Current is computed by the chip from the shunt-voltage code and
the calibration register exactly as the datasheet relations imply.
"""

from __future__ import annotations

from collections.abc import Callable

_TI = 0x5449


def _clip(value: int, low: int, high: int) -> int:
    return max(low, min(high, value))


def _pack(value: int, size: int) -> bytes:
    return (value % (1 << (8 * size))).to_bytes(size, "big")


def _reply(payload: bytes, length: int) -> bytes:
    return (payload + bytes(length))[:length]


# -- INA228 -------------------------------------------------------------------------------
_CONFIG, _ADC_CONFIG, _SHUNT_CAL, _SHUNT_TEMPCO = 0x00, 0x01, 0x02, 0x03
_VSHUNT, _VBUS, _DIETEMP, _CURRENT, _POWER, _ENERGY, _CHARGE, _DIAG_ALRT = range(0x04, 0x0C)
_MANUFACTURER_228, _DEVICE_228 = 0x3E, 0x3F
_RST, _RSTACC, _ADCRANGE = 1 << 15, 1 << 14, 1 << 4
_CHARGEOF, _ENERGYOF, _CNVRF, _MEMSTAT = 1 << 10, 1 << 11, 1 << 1, 1 << 0
# DIAG_ALRT: ALATCH, CNVR, SLOWALERT and APOL (bits 15-12) are the host's to write; the flags
# below them are the chip's (datasheet SBOSA20, DIAG_ALRT register table).
_DIAG_WRITABLE = 0xF000
# ADC_CONFIG MODE (bits 15-12): bit 3 continuous, bit 2 temperature, bit 1 shunt, bit 0 bus;
# 0h and 8h shut down (datasheet, ADC_CONFIG register table).
_MODE_CONTINUOUS, _MODE_TEMPERATURE, _MODE_SHUNT, _MODE_BUS = 0x8, 0x4, 0x2, 0x1
_SHUNT_LSB_RANGE0 = 312.5e-9
_SHUNT_LSB_RANGE1 = 78.125e-9
_VBUS_LSB = 195.3125e-6
_DIETEMP_LSB = 7.8125e-3
_I20_MIN, _I20_MAX = -(1 << 19), (1 << 19) - 1
_CHARGE_MODULUS = 1 << 40


class SimIna228:
    """INA228 register file plus the analog inputs and the hardware accumulators.

    Results are latched at conversions, as on the chip: a channel the ADC_CONFIG mode leaves
    out (die temperature in mode 0xB) keeps its last result. In a continuous mode every
    `set_inputs` and `advance` completes a conversion; a write of a triggered mode converts
    once. Each conversion sets CNVRF; reading DIAG_ALRT clears it.

    `rstacc_reads_back`: the datasheet says RST self-clears but does not say so of RSTACC. By
    default RSTACC clears the accumulators and reads back 0; with True it reads back 1 and holds
    them at zero until the host writes it 0 (the pessimistic reading), so a driver can be tested
    against both.
    """

    def __init__(self, die_temp_c: float = 25.0, *, rstacc_reads_back: bool = False) -> None:
        self.die_temp_c = die_temp_c
        self.rstacc_reads_back = rstacc_reads_back
        self._shunt_voltage_v = 0.0
        self._bus_voltage_v = 0.0
        # The read-only registers' encoders, made once (a read is several per sample).
        self._readers: dict[int, Callable[[], bytes]] = {
            _VSHUNT: lambda: _pack(self._vshunt_result << 4, 3),
            _VBUS: lambda: _pack(self._vbus_result << 4, 3),
            _DIETEMP: lambda: _pack(self._dietemp_result, 2),
            _CURRENT: lambda: _pack(self._current_code() << 4, 3),
            _POWER: lambda: _pack(self._power_code(), 3),
            _ENERGY: lambda: _pack(int(self._energy_units), 5),
            _CHARGE: lambda: _pack(round(self._charge_lsb_s), 5),
            _DIAG_ALRT: lambda: _pack(self._diag, 2),
            _MANUFACTURER_228: lambda: _pack(_TI, 2),
            _DEVICE_228: lambda: _pack(0x2281, 2),
        }
        self._reset()

    def _reset(self) -> None:
        self._writable: dict[int, int] = {
            _CONFIG: 0x0000,
            _ADC_CONFIG: 0xFB68,
            _SHUNT_CAL: 0x1000,
            _SHUNT_TEMPCO: 0x0000,
            0x0C: 0x7FFF,
            0x0D: 0x8000,
            0x0E: 0x7FFF,
            0x0F: 0x0000,
            0x10: 0x7FFF,
            0x11: 0xFFFF,
        }
        self._diag = _MEMSTAT
        self._charge_lsb_s = 0.0  # exact accumulated charge in CURRENT_LSB x seconds
        self._energy_units = 0.0  # exact accumulated energy in 51.2 x CURRENT_LSB joules
        self._vshunt_result = 0  # latched conversion results (codes)
        self._vbus_result = 0
        self._dietemp_result = 0
        self._convert()  # ADC_CONFIG resets to continuous, all channels: converting already

    # -- bus side ------------------------------------------------------------------------
    def read(self, register: int, length: int) -> bytes:
        reply = _reply(self._register_bytes(register), length)
        if register == _DIAG_ALRT:
            self._diag &= ~_CNVRF  # reading the register clears the conversion-ready flag
        elif register == _CHARGE:
            self._diag &= ~_CHARGEOF  # CHARGEOF clears when CHARGE is read
        elif register == _ENERGY:
            self._diag &= ~_ENERGYOF
        return reply

    def write(self, register: int, data: bytes) -> None:
        if len(data) < 2:
            return  # incomplete: the chip ignores it
        value = int.from_bytes(data[:2], "big")
        if register == _DIAG_ALRT:
            self._diag = (self._diag & ~_DIAG_WRITABLE) | (value & _DIAG_WRITABLE)
            return
        if register not in self._writable:
            return  # read-only: the chip ignores it
        if register == _CONFIG:
            if value & _RST:
                self._reset()
                return
            if value & _RSTACC:
                self._charge_lsb_s = 0.0
                self._energy_units = 0.0
                self._diag &= ~(_CHARGEOF | _ENERGYOF)
            if not self.rstacc_reads_back:
                value &= ~_RSTACC
            value &= 0x7FF0  # RST self-clears, bits 3-0 are reserved (read 0)
        if register == _SHUNT_CAL:
            value &= 0x7FFF
        self._writable[register] = value
        if register == _ADC_CONFIG and self._mode() & _MODE_CONTINUOUS == 0:
            self._convert()  # a triggered mode converts once, a shutdown mode not at all

    def _register_bytes(self, register: int) -> bytes:
        if register in self._writable:
            return _pack(self._writable[register], 2)
        reader = self._readers.get(register)
        return reader() if reader else b""

    # -- analog side ---------------------------------------------------------------------
    def set_inputs(self, shunt_voltage_v: float, bus_voltage_v: float) -> None:
        """New analog inputs; in a continuous mode the ADC converts them (CNVRF sets)."""
        self._shunt_voltage_v = shunt_voltage_v
        self._bus_voltage_v = bus_voltage_v
        if self._mode() & _MODE_CONTINUOUS:
            self._convert()

    def advance(self, dt_s: float, mean_shunt_voltage_v: float, mean_bus_voltage_v: float) -> None:
        """Add what the accumulators integrate over dt_s at these mean inputs."""
        if dt_s < 0:
            raise ValueError("time does not run backwards")
        if dt_s > 0 and self._mode() & _MODE_CONTINUOUS:
            self._convert()
        if not self._converting_shunt() or self._writable[_CONFIG] & _RSTACC:
            return  # not integrating, or RSTACC held at 1 keeps the accumulators cleared
        current_lsb = self._current_codes_exact(mean_shunt_voltage_v)
        before = round(self._charge_lsb_s)
        self._charge_lsb_s += current_lsb * dt_s
        if _wrapped(before, round(self._charge_lsb_s)):
            self._diag |= _CHARGEOF
        # Energy in 51.2 x CURRENT_LSB joules: P = I_codes x LSB x V.
        self._energy_units += abs(current_lsb) * max(0.0, mean_bus_voltage_v) * dt_s / 51.2
        if self._energy_units >= _CHARGE_MODULUS:
            self._energy_units -= _CHARGE_MODULUS
            self._diag |= _ENERGYOF

    def set_charge_raw(self, value: int) -> None:
        """Load the CHARGE accumulator (signed 40-bit code), e.g. just below a wrap."""
        if not -(1 << 39) <= value < 1 << 39:
            raise ValueError("CHARGE is a signed 40-bit register")
        self._charge_lsb_s = float(value)

    @property
    def charge_raw(self) -> int:
        """CHARGE register as a signed 40-bit value."""
        raw = round(self._charge_lsb_s) % _CHARGE_MODULUS
        return raw - _CHARGE_MODULUS if raw >= _CHARGE_MODULUS // 2 else raw

    # -- chip arithmetic -----------------------------------------------------------------
    def _mode(self) -> int:
        return self._writable[_ADC_CONFIG] >> 12

    def _convert(self) -> None:
        """One conversion of the channels the mode enables (none when shut down)."""
        mode = self._mode()
        if mode & 0x7 == 0:
            return  # 0h and 8h: shutdown
        if mode & _MODE_SHUNT:
            self._vshunt_result = self._vshunt_code()
        if mode & _MODE_BUS:
            self._vbus_result = self._vbus_code()
        if mode & _MODE_TEMPERATURE:
            self._dietemp_result = round(self.die_temp_c / _DIETEMP_LSB)
        self._diag |= _CNVRF

    def _shunt_lsb(self) -> float:
        fine = self._writable[_CONFIG] & _ADCRANGE
        return _SHUNT_LSB_RANGE1 if fine else _SHUNT_LSB_RANGE0

    def _converting_shunt(self) -> bool:
        mode = self._mode()
        return bool(mode & _MODE_CONTINUOUS) and bool(mode & _MODE_SHUNT)

    def _vshunt_code(self) -> int:
        return _clip(round(self._shunt_voltage_v / self._shunt_lsb()), _I20_MIN, _I20_MAX)

    def _vbus_code(self) -> int:
        return _clip(round(self._bus_voltage_v / _VBUS_LSB), 0, _I20_MAX)

    def _current_codes_exact(self, shunt_voltage_v: float) -> float:
        # SHUNT_CAL = 13107.2e6 x CURRENT_LSB x R (x4 at ADCRANGE 1) and CURRENT = V / R in
        # CURRENT_LSB units give CURRENT = VSHUNT_code x 4096 / SHUNT_CAL in both ranges.
        shunt_cal = self._writable[_SHUNT_CAL]
        if shunt_cal == 0:
            return 0.0
        vshunt = _clip(round(shunt_voltage_v / self._shunt_lsb()), _I20_MIN, _I20_MAX)
        return vshunt * 4096 / shunt_cal

    def _current_code(self) -> int:
        # From the latched shunt-voltage result: CURRENT = VSHUNT x 4096 / SHUNT_CAL.
        shunt_cal = self._writable[_SHUNT_CAL]
        if shunt_cal == 0:
            return 0
        return _clip(round(self._vshunt_result * 4096 / shunt_cal), _I20_MIN, _I20_MAX)

    def _power_code(self) -> int:
        # POWER LSB = 3.2 x CURRENT_LSB; VBUS LSB / 3.2 = 1 / 16384.
        return _clip(round(abs(self._current_code()) * self._vbus_result / 16384), 0, 0xFFFFFF)


def _wrapped(before: int, after: int) -> bool:
    half = _CHARGE_MODULUS // 2
    return (before + half) // _CHARGE_MODULUS != (after + half) // _CHARGE_MODULUS


# -- INA226 -------------------------------------------------------------------------------
_CONFIG_226, _SHUNT_226, _BUS_226, _POWER_226, _CURRENT_226, _CAL_226 = range(6)
_MASK_226, _ALERT_226 = 0x06, 0x07
_CVRF_226 = 1 << 3
_MASK_FLAGS_226 = 0x001C  # AFF, CVRF, OVF: read-only
_MASK_WRITABLE_226 = 0xFC03  # SOL, SUL, BOL, BUL, POL, CNVR; APOL, LEN
_SHUNT_LSB_226 = 2.5e-6
_BUS_LSB_226 = 1.25e-3


class SimIna226:
    """INA226 register file; it has no accumulators, so advance() changes nothing.

    Like the INA228 model, results are latched at conversions: in a continuous mode (MODE 5-7)
    every `set_inputs` and `advance` converts the enabled channels, a write of a triggered mode
    (1-3) converts once, power-down (0, 4) not at all. Mask/Enable (datasheet SBOS547, Basic
    ADC Functions): CVRF (bit 3) sets when a conversion completes and clears on a write to the
    Configuration register (except a power-down mode) or a read of Mask/Enable; AFF, CVRF and
    OVF (bits 4-2) are the chip's and ignore writes, bits 9-5 are reserved.
    """

    def __init__(self) -> None:
        self._shunt_voltage_v = 0.0
        self._bus_voltage_v = 0.0
        self._readers: dict[int, Callable[[], bytes]] = {
            _SHUNT_226: lambda: _pack(self._shunt_result, 2),
            _BUS_226: lambda: _pack(self._bus_result, 2),
            _POWER_226: lambda: _pack(self._power_code(), 2),
            _CURRENT_226: lambda: _pack(self._current_code(), 2),
            0xFE: lambda: _pack(_TI, 2),
            0xFF: lambda: _pack(0x2260, 2),
        }
        self._reset()

    def _reset(self) -> None:
        self._writable: dict[int, int] = {
            _CONFIG_226: 0x4127,
            _CAL_226: 0x0000,
            _MASK_226: 0x0000,
            _ALERT_226: 0x0000,
        }
        self._shunt_result = 0
        self._bus_result = 0
        self._convert()  # continuous shunt and bus at power-on

    def read(self, register: int, length: int) -> bytes:
        reply = _reply(self._register_bytes(register), length)
        if register == _MASK_226:
            self._writable[_MASK_226] &= ~_CVRF_226
        return reply

    def write(self, register: int, data: bytes) -> None:
        if len(data) < 2 or register not in self._writable:
            return
        value = int.from_bytes(data[:2], "big")
        if register == _CONFIG_226:
            if value & _RST:
                self._reset()
                return
            value = (value & 0x0FFF) | 0x4000  # bits 13:12 reserved, bit 14 reads 1
        if register == _CAL_226:
            value &= 0x7FFF
        if register == _MASK_226:
            flags = self._writable[_MASK_226] & _MASK_FLAGS_226
            value = (value & _MASK_WRITABLE_226) | flags
        self._writable[register] = value
        if register == _CONFIG_226:
            mode = value & 0x7
            if mode & 0x3:  # not power-down: the write restarts the conversion
                self._writable[_MASK_226] &= ~_CVRF_226
            if mode in (1, 2, 3):
                self._convert()

    def _register_bytes(self, register: int) -> bytes:
        if register in self._writable:
            return _pack(self._writable[register], 2)
        reader = self._readers.get(register)
        return reader() if reader else b""

    def _convert(self) -> None:
        mode = self._writable[_CONFIG_226] & 0x7
        if mode & 0x3 == 0:
            return  # power-down
        if mode & 0x1:
            self._shunt_result = self._shunt_code()
        if mode & 0x2:
            self._bus_result = self._bus_code()
        self._writable[_MASK_226] |= _CVRF_226

    def set_inputs(self, shunt_voltage_v: float, bus_voltage_v: float) -> None:
        self._shunt_voltage_v = shunt_voltage_v
        self._bus_voltage_v = bus_voltage_v
        if self._writable[_CONFIG_226] & 0x4:
            self._convert()

    def advance(self, dt_s: float, mean_shunt_voltage_v: float, mean_bus_voltage_v: float) -> None:
        """The INA226 integrates nothing; in a continuous mode time passing converts."""
        del mean_shunt_voltage_v, mean_bus_voltage_v
        if dt_s > 0 and self._writable[_CONFIG_226] & 0x4:
            self._convert()

    def _shunt_code(self) -> int:
        return _clip(round(self._shunt_voltage_v / _SHUNT_LSB_226), -32768, 32767)

    def _bus_code(self) -> int:
        return _clip(round(self._bus_voltage_v / _BUS_LSB_226), 0, 0x7FFF)

    def _current_code(self) -> int:
        # Datasheet: Current = ShuntVoltage_code x CAL / 2048.
        raw = self._shunt_result * self._writable[_CAL_226] / 2048
        return _clip(round(raw), -32768, 32767)

    def _power_code(self) -> int:
        # Datasheet: Power = Current_code x BusVoltage_code / 20000 (LSB 25 x CURRENT_LSB).
        return _clip(round(abs(self._current_code()) * self._bus_result / 20000), 0, 0xFFFF)
