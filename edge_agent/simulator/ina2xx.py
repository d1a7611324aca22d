"""Register-accurate simulated INA228 and INA226 shunt monitors.

Registers are big-endian on the wire and do not auto-increment: a read returns the addressed
register's bytes (zero-padded past its end). Scaling is encoded here from the datasheets,
independently of the drivers. Current is computed by the chip from the shunt-voltage code and
the calibration register exactly as the datasheet relations imply.
"""

from __future__ import annotations

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
_CHARGEOF, _ENERGYOF, _MEMSTAT = 1 << 10, 1 << 11, 1 << 0
_SHUNT_LSB_RANGE0 = 312.5e-9
_SHUNT_LSB_RANGE1 = 78.125e-9
_VBUS_LSB = 195.3125e-6
_DIETEMP_LSB = 7.8125e-3
_I20_MIN, _I20_MAX = -(1 << 19), (1 << 19) - 1
_CHARGE_MODULUS = 1 << 40


class SimIna228:
    """INA228 register file plus the analog inputs and the hardware accumulators."""

    def __init__(self, die_temp_c: float = 25.0) -> None:
        self.die_temp_c = die_temp_c
        self._shunt_voltage_v = 0.0
        self._bus_voltage_v = 0.0
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

    # -- bus side ------------------------------------------------------------------------
    def read(self, register: int, length: int) -> bytes:
        return _reply(self._register_bytes(register), length)

    def write(self, register: int, data: bytes) -> None:
        if len(data) < 2 or register not in self._writable:
            return  # read-only or incomplete: the chip ignores it
        value = int.from_bytes(data[:2], "big")
        if register == _CONFIG:
            if value & _RST:
                self._reset()
                return
            if value & _RSTACC:
                self._charge_lsb_s = 0.0
                self._energy_units = 0.0
                self._diag &= ~(_CHARGEOF | _ENERGYOF)
            value &= ~(_RST | _RSTACC)  # both self-clear
        if register == _SHUNT_CAL:
            value &= 0x7FFF
        self._writable[register] = value

    def _register_bytes(self, register: int) -> bytes:
        if register in self._writable:
            return _pack(self._writable[register], 2)
        readers = {
            _VSHUNT: lambda: _pack(self._vshunt_code() << 4, 3),
            _VBUS: lambda: _pack(self._vbus_code() << 4, 3),
            _DIETEMP: lambda: _pack(round(self.die_temp_c / _DIETEMP_LSB), 2),
            _CURRENT: lambda: _pack(self._current_code() << 4, 3),
            _POWER: lambda: _pack(self._power_code(), 3),
            _ENERGY: lambda: _pack(int(self._energy_units), 5),
            _CHARGE: lambda: _pack(round(self._charge_lsb_s), 5),
            _DIAG_ALRT: lambda: _pack(self._diag, 2),
            _MANUFACTURER_228: lambda: _pack(_TI, 2),
            _DEVICE_228: lambda: _pack(0x2281, 2),
        }
        reader = readers.get(register)
        return reader() if reader else b""

    # -- analog side ---------------------------------------------------------------------
    def set_inputs(self, shunt_voltage_v: float, bus_voltage_v: float) -> None:
        self._shunt_voltage_v = shunt_voltage_v
        self._bus_voltage_v = bus_voltage_v

    def advance(self, dt_s: float, mean_shunt_voltage_v: float, mean_bus_voltage_v: float) -> None:
        """Add what the accumulators integrate over dt_s at these mean inputs."""
        if dt_s < 0:
            raise ValueError("time does not run backwards")
        if not self._converting_shunt():
            return
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
    def _shunt_lsb(self) -> float:
        fine = self._writable[_CONFIG] & _ADCRANGE
        return _SHUNT_LSB_RANGE1 if fine else _SHUNT_LSB_RANGE0

    def _converting_shunt(self) -> bool:
        mode = self._writable[_ADC_CONFIG] >> 12
        return bool(mode & 0x8) and bool(mode & 0x2)  # continuous, shunt channel enabled

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
        return _clip(round(self._current_codes_exact(self._shunt_voltage_v)), _I20_MIN, _I20_MAX)

    def _power_code(self) -> int:
        # POWER LSB = 3.2 x CURRENT_LSB; VBUS LSB / 3.2 = 1 / 16384.
        return _clip(round(abs(self._current_code()) * self._vbus_code() / 16384), 0, 0xFFFFFF)


def _wrapped(before: int, after: int) -> bool:
    half = _CHARGE_MODULUS // 2
    return (before + half) // _CHARGE_MODULUS != (after + half) // _CHARGE_MODULUS


# -- INA226 -------------------------------------------------------------------------------
_CONFIG_226, _SHUNT_226, _BUS_226, _POWER_226, _CURRENT_226, _CAL_226 = range(6)
_MASK_226, _ALERT_226 = 0x06, 0x07
_SHUNT_LSB_226 = 2.5e-6
_BUS_LSB_226 = 1.25e-3


class SimIna226:
    """INA226 register file; it has no accumulators, so advance() changes nothing."""

    def __init__(self) -> None:
        self._shunt_voltage_v = 0.0
        self._bus_voltage_v = 0.0
        self._reset()

    def _reset(self) -> None:
        self._writable: dict[int, int] = {
            _CONFIG_226: 0x4127,
            _CAL_226: 0x0000,
            _MASK_226: 0x0000,
            _ALERT_226: 0x0000,
        }

    def read(self, register: int, length: int) -> bytes:
        return _reply(self._register_bytes(register), length)

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
        self._writable[register] = value

    def _register_bytes(self, register: int) -> bytes:
        if register in self._writable:
            return _pack(self._writable[register], 2)
        readers = {
            _SHUNT_226: lambda: _pack(self._shunt_code(), 2),
            _BUS_226: lambda: _pack(self._bus_code(), 2),
            _POWER_226: lambda: _pack(self._power_code(), 2),
            _CURRENT_226: lambda: _pack(self._current_code(), 2),
            0xFE: lambda: _pack(_TI, 2),
            0xFF: lambda: _pack(0x2260, 2),
        }
        reader = readers.get(register)
        return reader() if reader else b""

    def set_inputs(self, shunt_voltage_v: float, bus_voltage_v: float) -> None:
        self._shunt_voltage_v = shunt_voltage_v
        self._bus_voltage_v = bus_voltage_v

    def advance(self, dt_s: float, mean_shunt_voltage_v: float, mean_bus_voltage_v: float) -> None:
        """Accepted for API symmetry with SimIna228: the INA226 integrates nothing."""
        del dt_s, mean_shunt_voltage_v, mean_bus_voltage_v

    def _shunt_code(self) -> int:
        return _clip(round(self._shunt_voltage_v / _SHUNT_LSB_226), -32768, 32767)

    def _bus_code(self) -> int:
        return _clip(round(self._bus_voltage_v / _BUS_LSB_226), 0, 0x7FFF)

    def _current_code(self) -> int:
        # Datasheet: Current = ShuntVoltage_code x CAL / 2048.
        raw = self._shunt_code() * self._writable[_CAL_226] / 2048
        return _clip(round(raw), -32768, 32767)

    def _power_code(self) -> int:
        # Datasheet: Power = Current_code x BusVoltage_code / 20000 (LSB 25 x CURRENT_LSB).
        return _clip(round(abs(self._current_code()) * self._bus_code() / 20000), 0, 0xFFFF)
