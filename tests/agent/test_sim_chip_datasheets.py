"""The simulated chips against independent readings of their datasheets (issue 17).

Each chip is driven here by code that shares nothing with our drivers: the register logic of
a public open-source driver, re-typed in a few lines (its arithmetic, not its I/O layer), or
the datasheet's own statements about a register. Why each is trusted is said where it is used;
docs/wiring.md ("Datasheet notes") quotes the sections.
"""

from __future__ import annotations

import pytest

from edge_agent.control.settings import BalanceSettings, CellThresholds
from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.ina2xx import Ina228
from edge_agent.drivers.isl94203 import Isl94203
from edge_agent.simulator.ina2xx import SimIna226, SimIna228
from edge_agent.simulator.isl94203 import SimIsl94203
from edge_agent.simulator.mcp23008 import SimMcp23008
from edge_agent.simulator.smbus import FakeSMBus, SimDevice

INA = 0x40
ISL = 0x28
MCP = 0x20


def read16(bus: FakeSMBus, register: int) -> int:
    high, low = bus.read_i2c_block_data(INA, register, 2)
    return high << 8 | low


def write16(bus: FakeSMBus, register: int, value: int) -> None:
    bus.write_i2c_block_data(INA, register, [value >> 8, value & 0xFF])


def read24(bus: FakeSMBus, register: int) -> int:
    data = bus.read_i2c_block_data(INA, register, 3)
    return data[0] << 16 | data[1] << 8 | data[2]


# -- INA228 (TI SBOSA20) --------------------------------------------------------------------
INA228_CONFIG, INA228_ADC_CONFIG, INA228_SHUNT_CAL = 0x00, 0x01, 0x02
INA228_VBUS, INA228_DIETEMP, INA228_CURRENT, INA228_CHARGE, INA228_DIAG = 0x05, 6, 7, 0x0A, 0x0B
RSTACC = 1 << 14
CNVRF, CHARGEOF, MEMSTAT = 1 << 1, 1 << 10, 1 << 0


@pytest.mark.parametrize("rstacc_reads_back", [False, True])
def test_ina228_start_works_whether_rstacc_reads_back_0_or_1(rstacc_reads_back: bool) -> None:
    """SBOSA20 CONFIG: RST "self-clears"; RSTACC only "clears registers to default values for
    ENERGY and CHARGE". A chip keeping RSTACC at 1 must neither stop the start nor leave the
    accumulators held at zero."""
    chip = SimIna228(rstacc_reads_back=rstacc_reads_back)
    bus = FakeSMBus({INA: chip})
    chip.set_charge_raw(123_456_789)  # whatever the chip counted before this start
    driver = Ina228(bus, bus.name, INA, 250.0, 75.0)
    if rstacc_reads_back:  # the variant is real: RSTACC written alone reads back set
        write16(bus, INA228_CONFIG, RSTACC)
        assert read16(bus, INA228_CONFIG) == RSTACC
    driver.start()
    assert read16(bus, INA228_CONFIG) & RSTACC == 0  # left counting
    assert driver.read(0.0).charge_ah == 0.0  # and cleared by the start
    shunt_ohm = 0.075 / 250.0
    chip.advance(3600.0, mean_shunt_voltage_v=20.0 * shunt_ohm, mean_bus_voltage_v=26.0)
    charge = driver.read(3600.0).charge_ah
    assert charge == pytest.approx(20.0, abs=0.01)


class _DropsAdcRange:
    """An INA228 whose CONFIG does not keep ADCRANGE: the start must still refuse it."""

    def __init__(self) -> None:
        self.chip = SimIna228()

    def read(self, register: int, length: int) -> bytes:
        return self.chip.read(register, length)

    def write(self, register: int, data: bytes) -> None:
        if register == INA228_CONFIG:
            data = bytes([data[0], data[1] & ~0x10 & 0xFF])
        self.chip.write(register, data)


def test_ina228_start_still_verifies_the_other_config_bits() -> None:
    device: SimDevice = _DropsAdcRange()
    bus = FakeSMBus({INA: device})
    driver = Ina228(bus, bus.name, INA, 100.0, 25.0)  # a low-drop shunt: ADCRANGE 1
    with pytest.raises(DeviceError, match="register 0x00 verify failed"):
        driver.start()


def test_ina228_diag_alrt_alert_bits_are_writable_and_its_flags_are_not() -> None:
    """SBOSA20 DIAG_ALRT: ALATCH, CNVR, SLOWALERT, APOL (bits 15-12) are R/W; the overflow
    flags are the chip's; MEMSTAT reads 1 in normal operation."""
    chip = SimIna228()
    bus = FakeSMBus({INA: chip})
    read16(bus, INA228_DIAG)  # clear the power-on conversion flag
    write16(bus, INA228_DIAG, 0xFFFF)
    assert read16(bus, INA228_DIAG) == 0xF000 | MEMSTAT
    write16(bus, INA228_DIAG, 0x0000)
    assert read16(bus, INA228_DIAG) == MEMSTAT


def test_ina228_cnvrf_sets_on_each_conversion_and_clears_when_read() -> None:
    chip = SimIna228()
    bus = FakeSMBus({INA: chip})
    read16(bus, INA228_DIAG)
    assert read16(bus, INA228_DIAG) & CNVRF == 0
    chip.set_inputs(0.01, 24.0)  # continuous mode (reset value): a conversion completes
    assert read16(bus, INA228_DIAG) & CNVRF
    assert read16(bus, INA228_DIAG) & CNVRF == 0
    write16(bus, INA228_ADC_CONFIG, 0x3 << 12)  # triggered shunt + bus: converts once
    assert read16(bus, INA228_DIAG) & CNVRF
    chip.set_inputs(0.02, 24.0)  # triggered mode: new inputs are not converted
    assert read16(bus, INA228_DIAG) & CNVRF == 0


def test_ina228_measures_die_temperature_only_in_modes_that_include_it() -> None:
    """SBOSA20 ADC_CONFIG MODE: Bh is "continuous shunt and bus voltage", Fh "continuous bus,
    shunt voltage and temperature"; 4h "triggered temperature, single shot"."""
    chip = SimIna228(die_temp_c=30.0)
    bus = FakeSMBus({INA: chip})
    assert read16(bus, INA228_DIETEMP) * 7.8125e-3 == pytest.approx(30.0)
    write16(bus, INA228_ADC_CONFIG, 0xB << 12)
    chip.die_temp_c = 60.0
    chip.set_inputs(0.0, 24.0)
    assert read16(bus, INA228_DIETEMP) * 7.8125e-3 == pytest.approx(30.0)  # kept, not measured
    assert read24(bus, INA228_VBUS) >> 4 == round(24.0 / 195.3125e-6)  # bus still converted
    write16(bus, INA228_ADC_CONFIG, 0x4 << 12)  # one triggered temperature conversion
    assert read16(bus, INA228_DIETEMP) * 7.8125e-3 == pytest.approx(60.0)
    write16(bus, INA228_ADC_CONFIG, 0xF << 12)
    chip.die_temp_c = 45.0
    chip.set_inputs(0.0, 24.0)
    assert read16(bus, INA228_DIETEMP) * 7.8125e-3 == pytest.approx(45.0)


def test_ina228_chargeof_clears_when_charge_is_read() -> None:
    chip = SimIna228()
    bus = FakeSMBus({INA: chip})
    write16(bus, INA228_SHUNT_CAL, 4096)
    chip.set_charge_raw(2**39 - 10)
    chip.advance(1.0, mean_shunt_voltage_v=100 * 312.5e-9, mean_bus_voltage_v=24.0)
    assert read16(bus, INA228_DIAG) & CHARGEOF
    assert read16(bus, INA228_DIAG) & CHARGEOF  # reading DIAG_ALRT does not clear it
    bus.read_i2c_block_data(INA, INA228_CHARGE, 5)
    assert read16(bus, INA228_DIAG) & CHARGEOF == 0


class AdafruitStyleIna228:
    """The register logic of Adafruit's CircuitPython INA228 driver (adafruit_ina228.py, MIT),
    re-typed over our bus: CURRENT_LSB = max current / 2^19, SHUNT_CAL = 13107.2e6 x R x
    CURRENT_LSB (x4 with ADCRANGE), 24-bit results read whole and divided by 16, DIAG_ALRT
    changed by read-modify-write. Trusted as independent: written by another team against the
    same datasheet and in use on Adafruit's INA228 breakout."""

    def __init__(self, bus: FakeSMBus) -> None:
        self.bus = bus
        self.current_lsb = 0.0
        if (read16(bus, 0x3F) >> 4) & 0xFFF != 0x228:
            raise RuntimeError("Failed to find INA228")
        write16(bus, INA228_CONFIG, 0x8000)  # reset()
        write16(bus, INA228_ADC_CONFIG, 0xF << 12 | read16(bus, INA228_ADC_CONFIG) & 0x0FFF)

    def set_shunt(self, shunt_res: float, max_current: float) -> None:
        self.current_lsb = max_current / (1 << 19)
        scale = 4 if read16(self.bus, INA228_CONFIG) & 0x10 else 1
        cal_value = int(13107.2 * 1000000.0 * shunt_res * self.current_lsb * scale)
        write16(self.bus, INA228_SHUNT_CAL, cal_value)
        if read16(self.bus, INA228_SHUNT_CAL) != cal_value:
            raise ValueError("Calibration readback mismatch")

    @property
    def current(self) -> float:  # amperes here (Adafruit returns mA)
        raw = read24(self.bus, INA228_CURRENT)
        if raw & 0x800000:
            raw -= 0x1000000
        return (raw / 16.0) * self.current_lsb

    @property
    def voltage(self) -> float:
        return (read24(self.bus, INA228_VBUS) >> 4) * 195.3125e-6

    @property
    def temperature(self) -> float:
        raw = read16(self.bus, INA228_DIETEMP)
        return (raw - 0x10000 if raw & 0x8000 else raw) * 7.8125e-3

    @property
    def conversion_ready(self) -> bool:
        return bool(read16(self.bus, INA228_DIAG) & (1 << 1))

    @property
    def alert_latch(self) -> bool:
        return bool(read16(self.bus, INA228_DIAG) & (1 << 15))

    @alert_latch.setter
    def alert_latch(self, value: bool) -> None:
        diag = read16(self.bus, INA228_DIAG)
        write16(self.bus, INA228_DIAG, diag | 1 << 15 if value else diag & ~(1 << 15))


def test_ina228_against_adafruits_register_logic() -> None:
    chip = SimIna228(die_temp_c=31.5)
    bus = FakeSMBus({INA: chip})
    sensor = AdafruitStyleIna228(bus)
    sensor.set_shunt(0.1, 2.0)  # Adafruit's default: 0.1 ohm, 2 A
    assert read16(bus, INA228_SHUNT_CAL) == int(13107.2e6 * 0.1 * 2.0 / 2**19)  # 49999
    chip.set_inputs(shunt_voltage_v=1.234 * 0.1, bus_voltage_v=12.6)
    assert sensor.conversion_ready
    assert not sensor.conversion_ready  # cleared by the read
    assert sensor.current == pytest.approx(1.234, abs=2 * sensor.current_lsb)
    chip.set_inputs(shunt_voltage_v=-0.5 * 0.1, bus_voltage_v=12.6)
    assert sensor.current == pytest.approx(-0.5, abs=2 * sensor.current_lsb)
    assert sensor.voltage == pytest.approx(12.6, abs=195.3125e-6)
    assert sensor.temperature == pytest.approx(31.5, abs=7.8125e-3)
    sensor.alert_latch = True
    assert sensor.alert_latch
    sensor.alert_latch = False
    assert not sensor.alert_latch


# -- INA226 (TI SBOS547) --------------------------------------------------------------------
INA226_CONFIG, INA226_MASK = 0x00, 0x06
CVRF = 1 << 3


def test_ina226_cvrf_sets_on_conversion_and_clears_on_mask_enable_read() -> None:
    """SBOS547, Basic ADC Functions: CVRF "is set after all conversions, averaging, and
    multiplications are complete" and clears on "writing a new mode into the Operating Mode
    bits in the Configuration Register (except for Power-Down or Disable selections)" or
    "reading the Mask/Enable Register"."""
    chip = SimIna226()
    bus = FakeSMBus({INA: chip})
    read16(bus, INA226_MASK)
    assert read16(bus, INA226_MASK) & CVRF == 0
    chip.set_inputs(0.01, 12.0)
    assert read16(bus, INA226_MASK) & CVRF
    assert read16(bus, INA226_MASK) & CVRF == 0
    chip.set_inputs(0.01, 12.0)
    write16(bus, INA226_CONFIG, 0x4127)  # continuous shunt + bus: restarts, clears CVRF
    assert read16(bus, INA226_MASK) & CVRF == 0
    chip.set_inputs(0.01, 12.0)
    write16(bus, INA226_CONFIG, 0x4120)  # power-down: CVRF stays
    assert read16(bus, INA226_MASK) & CVRF
    write16(bus, INA226_CONFIG, 0x4123)  # triggered shunt + bus: one conversion
    assert read16(bus, INA226_MASK) & CVRF


def test_ina226_mask_enable_flags_are_read_only() -> None:
    """SBOS547 Mask/Enable: SOL..CNVR (15-10), APOL (1) and LEN (0) are the host's; AFF, CVRF
    and OVF (4-2) are the chip's flags; 9-5 are reserved."""
    chip = SimIna226()
    bus = FakeSMBus({INA: chip})
    read16(bus, INA226_MASK)
    write16(bus, INA226_MASK, 0xFFFF)
    assert read16(bus, INA226_MASK) == 0xFC03
    chip.set_inputs(0.0, 5.0)
    write16(bus, INA226_MASK, 0x0000)
    assert read16(bus, INA226_MASK) == CVRF  # a write neither sets nor clears a flag


class TillaartStyleIna226:
    """The register logic of Rob Tillaart's Arduino INA226 library (INA226.cpp 0.5.x, MIT):
    setMaxCurrentShunt with its LSB normalisation to 1-2-5 steps, CAL = 0.00512 / (LSB x R),
    power = register x 25 x LSB, and isConversionReady/waitConversionReady polling Mask/Enable
    bit 3. Trusted as independent: a widely used library written from the datasheet by someone
    else; it is also the driver the issue names as polling CVRF."""

    def __init__(self, bus: FakeSMBus) -> None:
        self.bus = bus
        self.current_lsb = 0.0

    def set_max_current_shunt(self, max_current: float, shunt: float) -> int:
        self.current_lsb = max_current * 3.0517578125e-5
        self.current_lsb = max(self.current_lsb, 7.8125e-8 / shunt)
        current_lsb_ua = int(self.current_lsb * 1e6) + 1
        factor = 1
        for _ in range(4):
            step = next((s for s in (1, 2, 5) if s * factor >= current_lsb_ua), None)
            if step is not None:
                self.current_lsb = step * factor * 1e-6
                break
            factor *= 10
        calibration = round(0.00512 / (self.current_lsb * shunt))
        while calibration > 65535:
            self.current_lsb *= 2
            calibration >>= 1
        write16(self.bus, 0x05, calibration)
        return calibration

    def is_conversion_ready(self) -> bool:
        return read16(self.bus, INA226_MASK) & 0x0008 == 0x0008

    def wait_conversion_ready(self, polls: int) -> bool:
        return any(self.is_conversion_ready() for _ in range(polls))

    def current(self) -> float:
        raw = read16(self.bus, 0x04)
        return (raw - 0x10000 if raw & 0x8000 else raw) * self.current_lsb

    def bus_voltage(self) -> float:
        return read16(self.bus, 0x02) * 1.25e-3

    def power(self) -> float:
        return read16(self.bus, 0x03) * 25 * self.current_lsb


def test_ina226_against_rob_tillaarts_register_logic() -> None:
    chip = SimIna226()
    bus = FakeSMBus({INA: chip})
    sensor = TillaartStyleIna226(bus)
    assert sensor.set_max_current_shunt(20.0, 0.002) == 2560  # LSB normalised to 1 mA
    assert sensor.current_lsb == pytest.approx(1e-3)
    read16(bus, INA226_MASK)
    assert not sensor.wait_conversion_ready(polls=5)  # nothing converted since: it times out
    chip.set_inputs(shunt_voltage_v=10.0 * 0.002, bus_voltage_v=24.0)  # 10 A, 24 V
    assert sensor.wait_conversion_ready(polls=5)
    assert not sensor.is_conversion_ready()  # its own poll read cleared the flag
    # Shunt 20 mV = 8000 codes; current = 8000 x 2560 / 2048 = 10000 (1 mA each);
    # power = 10000 x 19200 / 20000 = 9600 (25 mW each).
    assert sensor.current() == pytest.approx(10.0)
    assert sensor.bus_voltage() == pytest.approx(24.0)
    assert sensor.power() == pytest.approx(240.0)


# -- MCP23008 (Microchip DS21919) -----------------------------------------------------------
IODIR, IOCON, GPPU, GPIO, OLAT = 0x00, 0x05, 0x06, 0x09, 0x0A


def test_mcp23008_iocon_unimplemented_bits_read_0() -> None:
    """DS21919 IOCON: bit 7 and 6 "Unimplemented: Read as '0'", bit 0 likewise; 5-1 are SEQOP,
    DISSLW, HAEN, ODR, INTPOL."""
    bus = FakeSMBus({MCP: SimMcp23008()})
    bus.write_byte_data(MCP, IOCON, 0xFF)
    assert bus.read_byte_data(MCP, IOCON) == 0x3E
    bus.write_byte_data(MCP, IOCON, 0x00)
    assert bus.read_byte_data(MCP, IOCON) == 0x00


class AdafruitStyleMcp23008:
    """The register logic of Adafruit's CircuitPython MCP230xx driver (mcp23008.py and
    digital_inout.py, MIT): at start one sequential write of IODIR 0xFF and ten zeros from
    register 0, then per pin a read-modify-write of GPIO for the level and of IODIR for the
    direction. Trusted as independent: another team's reading of DS21919, relying on the
    chip's sequential addressing, which our own driver never uses."""

    def __init__(self, bus: FakeSMBus) -> None:
        self.bus = bus
        bus.write_i2c_block_data(MCP, IODIR, [0xFF] + [0x00] * 10)

    def switch_to_output(self, pin: int, value: bool) -> None:
        gpio = self.bus.read_byte_data(MCP, GPIO)
        gpio = gpio | 1 << pin if value else gpio & ~(1 << pin)
        self.bus.write_byte_data(MCP, GPIO, gpio)
        self.bus.write_byte_data(MCP, IODIR, self.bus.read_byte_data(MCP, IODIR) & ~(1 << pin))

    def switch_to_input(self, pin: int, pull_up: bool) -> None:
        self.bus.write_byte_data(MCP, IODIR, self.bus.read_byte_data(MCP, IODIR) | 1 << pin)
        gppu = self.bus.read_byte_data(MCP, GPPU)
        self.bus.write_byte_data(MCP, GPPU, gppu | 1 << pin if pull_up else gppu & ~(1 << pin))

    def value(self, pin: int) -> bool:
        return bool(self.bus.read_byte_data(MCP, GPIO) >> pin & 1)


def test_mcp23008_against_adafruits_register_logic() -> None:
    chip = SimMcp23008()
    bus = FakeSMBus({MCP: chip})
    bus.write_byte_data(MCP, IODIR, 0x00)  # left in some state by a previous user
    bus.write_byte_data(MCP, OLAT, 0xAA)
    expander = AdafruitStyleMcp23008(bus)
    assert [bus.read_byte_data(MCP, register) for register in range(11)] == [0xFF] + [0] * 10
    expander.switch_to_output(3, True)
    expander.switch_to_output(5, False)
    expander.switch_to_input(6, pull_up=True)
    assert chip.output_levels() == tuple(pin == 3 for pin in range(8))
    assert [chip.is_output(pin) for pin in (3, 5, 6)] == [True, True, False]
    assert [expander.value(pin) for pin in (3, 5)] == [True, False]
    assert expander.value(6)  # the pull-up holds an open input high
    assert chip.rising_edges(3) == 2  # high under the previous user, and again now


# -- ISL94203 (Renesas FN7626; ISL94202 FN8889 shares the register map) ---------------------
def libre_solar_code(volts: float) -> int:
    """LibreSolar bms-firmware isl94202_write_voltage: voltage x 4095 x 3 / 1.8 / 8, truncated
    to a 12-bit code (drivers/bms_ic/isl94202/isl94202_interface.c, Apache-2.0)."""
    return int(volts * 4095 * 3 / 1.8 / 8) & 0x0FFF


def libre_solar_cell_volts(raw: int) -> float:
    """LibreSolar isl94202_read_voltages: raw x 18 x 800 / 4095 / 3 / 1000."""
    return (raw & 0x0FFF) * 18 * 800 / 4095 / 3 / 1000


def test_isl94203_against_libre_solars_register_logic() -> None:
    """LibreSolar's ISL94202 driver (Zephyr BMS firmware, in production on their boards) sets
    CBMIN/CBMAX/CBMINDV/CBMAXDV with its own encoding and enables "automatic balancing during
    charging" with SETUP1 = CBDC (bit 6) | CB_EOC (bit 0). The simulated chip, configured that
    way, must balance while charging and not while discharging, and read back cells as that
    driver decodes them."""
    chip = SimIsl94203(4)
    bus = FakeSMBus({ISL: chip})
    for register, volts in ((0x1C, 3.2), (0x1E, 4.5), (0x20, 0.01), (0x22, 1.0)):
        bus.write_word_data(ISL, register, libre_solar_code(volts))
    bus.write_byte_data(ISL, 0x4B, 1 << 6 | 1 << 0)
    volts = [3.40, 3.35, 3.38, 3.35]
    chip.set_cell_voltages(volts)
    inputs = (0, 1, 6, 7)  # 4 cells: VC1, VC2, VC7, VC8 (mask 0xC3)
    measured = [libre_solar_cell_volts(bus.read_word_data(ISL, 0x90 + 2 * i)) for i in inputs]
    assert measured == pytest.approx(volts, abs=1.8 * 8 / 4095 / 3)
    chip.set_pack_current(5.0)
    assert chip.balancing_cells() == (True, False, True, False)
    chip.set_pack_current(-5.0)
    assert chip.balancing_cells() == (False,) * 4


def test_isl94203_driver_and_chip_agree_on_the_balance_directions() -> None:
    """Our driver against the chip for every direction and both settings of the rule."""
    for min_charge_current, directions in ((0.3, {5.0}), (0.0, {5.0, -5.0})):
        chip = SimIsl94203(4)
        bus = FakeSMBus({ISL: chip})
        driver = Isl94203(bus, bus.name, 4)
        driver.configure(CellThresholds(), BalanceSettings(min_charge_current=min_charge_current))
        chip.set_cell_voltages([3.40, 3.35, 3.38, 3.35])
        for amps in (5.0, -5.0, 0.0):
            chip.set_pack_current(amps)
            expected = (True, False, True, False) if amps in directions else (False,) * 4
            assert chip.balancing_cells() == expected
            assert driver.read().balancing == expected
