"""INA228 / INA226 drivers against the register-accurate simulated chips."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.ina2xx import Ina226, Ina228
from edge_agent.simulator.ina2xx import SimIna226, SimIna228
from edge_agent.simulator.smbus import FakeSMBus

ADDRESS = 0x40
R_250A_75MV = 0.075 / 250


def ina228(
    rated_a: float = 250.0, rated_mv: float = 75.0, zero_offset_a: float = 0.0
) -> tuple[SimIna228, FakeSMBus, Ina228]:
    chip = SimIna228()
    bus = FakeSMBus({ADDRESS: chip}, name="i2c-1")
    driver = Ina228(bus, bus.name, ADDRESS, rated_a, rated_mv, zero_offset_a=zero_offset_a)
    driver.start()
    return chip, bus, driver


def ina226(zero_offset_a: float = 0.0) -> tuple[SimIna226, Ina226]:
    chip = SimIna226()
    bus = FakeSMBus({ADDRESS: chip}, name="i2c-1")
    driver = Ina226(bus, bus.name, ADDRESS, 250.0, 75.0, zero_offset_a=zero_offset_a)
    driver.start()
    return chip, driver


def test_calibration_for_a_250a_75mv_shunt() -> None:
    _, bus, driver = ina228(250.0, 75.0)
    assert driver.adc_range == 0  # 93.75 mV with headroom does not fit 40.96 mV
    assert driver.max_current_a == pytest.approx(0.16384 / R_250A_75MV)  # 546.13 A
    assert driver.current_lsb_a == pytest.approx(1.0417e-3, rel=1e-4)
    assert driver.shunt_cal == 4096
    assert bus.read_i2c_block_data(ADDRESS, 0x02, 2) == [0x10, 0x00]
    assert bus.read_i2c_block_data(ADDRESS, 0x00, 2) == [0x00, 0x00]  # RSTACC self-cleared


def test_calibration_for_a_50a_50mv_shunt() -> None:
    _, _, driver = ina228(50.0, 50.0)
    assert driver.adc_range == 0  # 62.5 mV > 40.96 mV
    assert driver.max_current_a == pytest.approx(163.84)
    assert driver.current_lsb_a == pytest.approx(312.5e-6)
    assert driver.shunt_cal == 4096


def test_fine_range_for_a_low_drop_shunt() -> None:
    chip, bus, driver = ina228(100.0, 25.0)
    assert driver.adc_range == 1  # 31.25 mV fits 40.96 mV
    assert bus.read_i2c_block_data(ADDRESS, 0x00, 2) == [0x00, 0x10]  # ADCRANGE bit 4
    assert driver.current_lsb_a == pytest.approx(0.04096 / 0.00025 / 2**19)
    chip.set_inputs(shunt_voltage_v=-60.0 * 0.00025, bus_voltage_v=26.0)
    assert driver.read(0.0).current_a == pytest.approx(-60.0, abs=driver.current_lsb_a)


@settings(max_examples=80, deadline=None)
@given(st.floats(min_value=-300.0, max_value=300.0))
def test_ina228_current_round_trip(amps: float) -> None:
    chip, _, driver = ina228()
    chip.set_inputs(shunt_voltage_v=amps * R_250A_75MV, bus_voltage_v=26.4)
    reading = driver.read(0.0)
    assert reading.current_a == pytest.approx(amps, abs=driver.current_lsb_a)
    assert reading.power_w == pytest.approx(26.4 * amps, abs=0.05 + 26.4 * driver.current_lsb_a)


def test_ina228_sign_extension_at_the_extremes() -> None:
    chip, bus, driver = ina228()
    chip.set_inputs(shunt_voltage_v=-312.5e-9, bus_voltage_v=0.0)  # -1 LSB
    assert bus.read_i2c_block_data(ADDRESS, 0x07, 3) == [0xFF, 0xFF, 0xF0]
    assert driver.read(0.0).current_a == pytest.approx(-driver.current_lsb_a)
    chip.set_inputs(shunt_voltage_v=-0.2, bus_voltage_v=0.0)  # beyond negative full scale
    assert bus.read_i2c_block_data(ADDRESS, 0x07, 3) == [0x80, 0x00, 0x00]
    assert driver.read(0.0).current_a == pytest.approx(-driver.max_current_a)
    chip.set_inputs(shunt_voltage_v=0.2, bus_voltage_v=0.0)
    assert driver.read(0.0).current_a == pytest.approx(driver.max_current_a - driver.current_lsb_a)


def test_ina228_bus_voltage_scaling() -> None:
    chip, _, driver = ina228()
    chip.set_inputs(shunt_voltage_v=0.0, bus_voltage_v=28.4)
    assert driver.read(0.0).bus_voltage_v == pytest.approx(28.4, abs=195.3125e-6)
    chip.set_inputs(shunt_voltage_v=0.0, bus_voltage_v=49.9)
    assert driver.read(0.0).bus_voltage_v == pytest.approx(49.9, abs=195.3125e-6)


def test_ina228_counts_charge_in_hardware() -> None:
    chip, _, driver = ina228()
    first = driver.read(0.0).charge_ah
    assert first == 0.0
    chip.advance(3600.0, mean_shunt_voltage_v=10.0 * R_250A_75MV, mean_bus_voltage_v=27.0)
    chip.advance(1800.0, mean_shunt_voltage_v=-4.0 * R_250A_75MV, mean_bus_voltage_v=26.0)
    charge = driver.read(5400.0).charge_ah
    assert charge == pytest.approx(10.0 - 2.0, abs=0.01)


@pytest.mark.parametrize("direction", [1, -1])
def test_ina228_charge_survives_a_40_bit_wrap(direction: int) -> None:
    chip, bus, driver = ina228()
    lsb = driver.current_lsb_a
    driver.read(0.0)
    start_raw = direction * (2**39 - 1000)
    chip.set_charge_raw(start_raw)
    before = driver.read(1.0).charge_ah
    assert before == pytest.approx(start_raw * lsb / 3600)
    chip.advance(1.0, mean_shunt_voltage_v=direction * 3000 * 312.5e-9, mean_bus_voltage_v=27.0)
    assert chip.charge_raw * direction < 0  # the register wrapped to the other sign
    assert bus.read_i2c_block_data(ADDRESS, 0x0B, 2)[0] & 0x04  # CHARGEOF (bit 10)
    after = driver.read(2.0).charge_ah
    assert after is not None
    assert before is not None
    assert after - before == pytest.approx(direction * 3000 * lsb / 3600, rel=1e-6)
    assert driver.charge_overflow_seen


def test_ina228_zero_offset_corrects_current_and_charge() -> None:
    chip, _, driver = ina228(zero_offset_a=0.3)
    chip.set_inputs(shunt_voltage_v=0.0, bus_voltage_v=26.0)
    assert driver.read(100.0).current_a == pytest.approx(-0.3)
    chip.advance(3600.0, mean_shunt_voltage_v=0.0, mean_bus_voltage_v=26.0)
    assert driver.read(3700.0).charge_ah == pytest.approx(-0.3)


def test_ina226_scaling_and_sign() -> None:
    chip, driver = ina226()
    assert driver.calibration == 2048
    assert driver.current_lsb_a == pytest.approx(8.333e-3, rel=1e-3)
    chip.set_inputs(shunt_voltage_v=-42.0 * R_250A_75MV, bus_voltage_v=26.6)
    reading = driver.read(0.0)
    assert reading.current_a == pytest.approx(-42.0, abs=driver.current_lsb_a)
    assert reading.bus_voltage_v == pytest.approx(26.6, abs=1.25e-3)
    assert reading.charge_ah is None
    chip.set_inputs(shunt_voltage_v=120.0 * R_250A_75MV, bus_voltage_v=26.6)
    assert driver.read(0.0).current_a == pytest.approx(120.0, abs=driver.current_lsb_a)


def test_ina226_zero_offset() -> None:
    chip, driver = ina226(zero_offset_a=-0.25)
    chip.set_inputs(shunt_voltage_v=0.0, bus_voltage_v=26.0)
    assert driver.read(0.0).current_a == pytest.approx(0.25)


def test_ina228_driver_finds_an_ina226() -> None:
    bus = FakeSMBus({ADDRESS: SimIna226()}, name="i2c-1")
    with pytest.raises(DeviceError) as raised:
        Ina228(bus, bus.name, ADDRESS, 250.0, 75.0).start()
    message = str(raised.value)
    assert message.startswith("i2c-1 address 0x40: expected INA228")
    assert "found manufacturer 0x0000 device 0x000" in message
    assert "manufacturer 0x5449 die 0x2260" in message
    assert "is this an INA226?" in message


def test_ina226_driver_finds_an_ina228() -> None:
    bus = FakeSMBus({ADDRESS: SimIna228()}, name="i2c-1")
    with pytest.raises(DeviceError) as raised:
        Ina226(bus, bus.name, ADDRESS, 250.0, 75.0).start()
    message = str(raised.value)
    assert message.startswith("i2c-1 address 0x40: expected INA226")
    assert "device 0x228" in message
    assert "is this an INA228?" in message


@pytest.mark.parametrize("driver_class", [Ina228, Ina226])
def test_nothing_at_the_address(driver_class: type[Ina228] | type[Ina226]) -> None:
    bus = FakeSMBus(name="i2c-1")
    with pytest.raises(
        DeviceError, match=r"i2c-1 address 0x45: register 0x.. read failed.*Errno 6"
    ):
        driver_class(bus, bus.name, 0x45, 250.0, 75.0).start()


def test_bus_error_mid_read() -> None:
    _, bus, driver = ina228()
    driver.read(0.0)
    bus.fail(ADDRESS)
    with pytest.raises(DeviceError, match=r"i2c-1 address 0x40: register 0x07 read failed"):
        driver.read(1.0)


def test_rated_values_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        Ina228(FakeSMBus(), "i2c-1", ADDRESS, 0.0, 75.0)
