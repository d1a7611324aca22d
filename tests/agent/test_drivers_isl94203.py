"""ISL94203 driver against the register-accurate simulated chip."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.control.settings import BalanceSettings, CellThresholds
from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.isl94203 import Isl94203
from edge_agent.simulator.isl94203 import SimIsl94203
from edge_agent.simulator.smbus import FakeSMBus

ADDRESS = 0x28
VOLTS_PER_CODE = 1.8 * 8 / (4095 * 3)
MASKS = {3: 0x83, 4: 0xC3, 5: 0xC7, 6: 0xE7, 7: 0xEF, 8: 0xFF}


def make(cell_count: int = 4) -> tuple[SimIsl94203, FakeSMBus, Isl94203]:
    chip = SimIsl94203(cell_count)
    bus = FakeSMBus({ADDRESS: chip}, name="i2c-1")
    return chip, bus, Isl94203(bus, bus.name, cell_count)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=2.0, max_value=4.5), min_size=4, max_size=4))
def test_cell_voltage_round_trip_within_one_code(volts: list[float]) -> None:
    chip, _, driver = make(4)
    chip.set_cell_voltages(volts)
    reading = driver.read()
    for measured, actual in zip(reading.cell_voltages, volts, strict=True):
        assert measured == pytest.approx(actual, abs=VOLTS_PER_CODE)
    assert reading.cell_min == pytest.approx(min(volts), abs=VOLTS_PER_CODE)
    assert reading.cell_max == pytest.approx(max(volts), abs=VOLTS_PER_CODE)
    assert reading.pack_voltage == pytest.approx(sum(volts), abs=1.8 * 32 / 4095)


@pytest.mark.parametrize("cell_count", [3, 4, 5, 6, 7, 8])
def test_cells_are_mapped_through_the_configuration_mask(cell_count: int) -> None:
    chip, bus, driver = make(cell_count)
    driver.configure(CellThresholds(), BalanceSettings())
    assert bus.read_byte_data(ADDRESS, 0x49) == MASKS[cell_count]
    volts = [3.0 + 0.05 * cell for cell in range(cell_count)]
    chip.set_cell_voltages(volts)
    wired = [bit for bit in range(8) if MASKS[cell_count] >> bit & 1]
    for cell_input in range(8):
        code = bus.read_word_data(ADDRESS, 0x90 + 2 * cell_input) & 0x0FFF
        if cell_input in wired:
            expected = volts[wired.index(cell_input)]
            assert code * VOLTS_PER_CODE == pytest.approx(expected, abs=VOLTS_PER_CODE)
        else:
            assert code == 0
    assert driver.read().cell_voltages == pytest.approx(volts, abs=VOLTS_PER_CODE)


def test_four_cells_use_inputs_1_2_7_8() -> None:
    chip, bus, driver = make(4)
    chip.set_cell_voltages([3.1, 3.2, 3.3, 3.4])
    assert [bus.read_word_data(ADDRESS, register) & 0xFFF for register in (0x94, 0x9A)] == [0, 0]
    assert bus.read_word_data(ADDRESS, 0x9C) & 0xFFF == round(3.3 / VOLTS_PER_CODE)
    assert driver.read().cell_voltages[2] == pytest.approx(3.3, abs=VOLTS_PER_CODE)


# The chip's own protection is the last line: its OV/UV at the agent's lockouts (2.50 /
# 3.75 V, released 0.05 V inside), its lockouts 0.1 V beyond; EOC as the agent's.
THRESHOLD_REGISTERS = {
    0x00: 3.75,
    0x02: 3.70,
    0x04: 2.50,
    0x06: 2.55,
    0x08: 3.85,
    0x0A: 2.40,
    0x0C: 3.53,
}
BALANCE_REGISTERS = {0x1C: "min_cell", 0x1E: "max_cell", 0x20: "min_delta", 0x22: "max_delta"}


def test_configure_writes_ram_only_and_preserves_upper_bits() -> None:
    chip, bus, driver = make(8)
    registers = [*THRESHOLD_REGISTERS, *BALANCE_REGISTERS]
    for index, register in enumerate(registers):  # distinctive delay/other fields
        chip.write(register, bytes([0x00, (index + 1) << 4 & 0xF0]))
    chip.write(0x89, b"\x01")  # someone left EEPROM access selected
    chip.eeprom_writes = 0
    thresholds = CellThresholds()
    balance = BalanceSettings()
    driver.configure(thresholds, balance)
    assert chip.eeprom_writes == 0
    assert bus.read_byte_data(ADDRESS, 0x89) & 1 == 0
    for index, register in enumerate(registers):
        word = bus.read_word_data(ADDRESS, register)
        assert word >> 12 == (index + 1) & 0x0F
        volts = THRESHOLD_REGISTERS.get(register)
        if volts is None:
            volts = getattr(balance, BALANCE_REGISTERS[register])
        assert word & 0x0FFF == round(volts / VOLTS_PER_CODE), hex(register)
    assert bus.read_byte_data(ADDRESS, 0x4B) & 0x40


@pytest.mark.parametrize(
    ("seconds", "value", "unit"),
    [(1.0, 1000, 1), (0.0, 0, 1), (0.25, 250, 1), (1.023, 1023, 1), (2.0, 2, 2), (1.5, 2, 2)],
)
def test_configure_writes_the_lockout_delays_as_the_chips_ov_and_uv_delays(
    seconds: float, value: int, unit: int
) -> None:
    """Delay words: value in bits 9:0, unit in 11:10 (00 us, 01 ms, 10 s, 11 min), as the
    datasheet's EEPROM map and LibreSolar's ISL94202 driver encode them; bits 15:12 kept."""
    chip, bus, driver = make(8)
    chip.write(0x10, bytes([0x00, 0x50]))
    thresholds = CellThresholds(ovlo_delay_s=seconds, uvlo_delay_s=1.0)
    driver.configure(thresholds, BalanceSettings())
    ov_delay = bus.read_word_data(ADDRESS, 0x10)
    assert (ov_delay & 0x3FF, ov_delay >> 10 & 0b11, ov_delay >> 12) == (value, unit, 0x5)
    assert bus.read_word_data(ADDRESS, 0x12) & 0x0FFF == 1 << 10 | 1000


class StuckEepromChip(SimIsl94203):
    def write(self, register: int, data: bytes) -> None:
        if register == 0x89:
            return  # the EEPROM-enable bit will not clear
        super().write(register, data)


def test_configure_refuses_when_eeprom_access_will_not_clear() -> None:
    chip = StuckEepromChip(4)
    super(StuckEepromChip, chip).write(0x89, b"\x01")
    chip.eeprom_writes = 0
    bus = FakeSMBus({ADDRESS: chip}, name="i2c-1")
    with pytest.raises(DeviceError, match=r"i2c-1 address 0x28: EEPROM access"):
        Isl94203(bus, bus.name, 4).configure(CellThresholds(), BalanceSettings())
    assert chip.eeprom_writes == 0


class ForgetfulChip(SimIsl94203):
    def write(self, register: int, data: bytes) -> None:
        if register != 0x02:
            super().write(register, data)


def test_configure_verifies_every_word() -> None:
    bus = FakeSMBus({ADDRESS: ForgetfulChip(4)}, name="i2c-1")
    with pytest.raises(DeviceError, match="register 0x02 verify failed"):
        Isl94203(bus, bus.name, 4).configure(CellThresholds(), BalanceSettings())


def test_flags_are_decoded_by_name() -> None:
    chip, _, driver = make(4)
    driver.configure(CellThresholds(), BalanceSettings())
    chip.set_pack_current(12.0)
    chip.set_cell_voltages([3.30, 3.30, 3.62, 3.30])  # above eoc 3.53, below the chip's OV
    flags = driver.read().flags
    assert {"EOCHG", "CHING"} <= flags
    assert not {"OVF", "UVF", "UVLOF", "OVLOF", "DCHING"} & flags
    chip.set_cell_voltages([3.30, 3.30, 3.76, 3.30])  # above the chip's OV (the agent's OVLO)
    assert {"OVF", "EOCHG", "CHING"} <= driver.read().flags
    chip.set_pack_current(-3.0)
    chip.set_cell_voltages([3.30, 2.35, 3.30, 3.30])  # below the chip's UVLO 2.40
    flags = driver.read().flags
    assert {"UVF", "UVLOF", "DCHING"} <= flags
    assert not {"OVF", "EOCHG", "CHING"} & flags


def test_balancing_follows_the_chip_rule() -> None:
    chip, _, driver = make(4)
    driver.configure(CellThresholds(), BalanceSettings())
    volts = [3.40, 3.35, 3.38, 3.35]
    chip.set_pack_current(5.0)
    chip.set_cell_voltages(volts)
    assert driver.read().balancing == (True, False, True, False)
    assert chip.balancing_cells() == (True, False, True, False)
    chip.set_pack_current(0.0)  # balance-while-charging bit set: idle means no bleeding
    assert driver.read().balancing == (False, False, False, False)
    chip.set_pack_current(5.0)
    chip.set_cell_voltages([3.10, 3.35, 3.38, 3.35])  # a cell below CBMIN 3.20
    assert driver.read().balancing == (False,) * 4


def test_without_a_charge_current_threshold_the_chip_balances_both_ways_but_not_idle() -> None:
    """0x4B b6 is CBDC (balance during charge), b7 CBDD (during discharge): with
    `min_charge_current: 0` the driver sets both; idle the chip balances in neither."""
    chip, bus, driver = make(4)
    driver.configure(CellThresholds(), BalanceSettings(min_charge_current=0.0))
    assert bus.read_byte_data(ADDRESS, 0x4B) & 0xC0 == 0xC0
    chip.set_cell_voltages([3.40, 3.35, 3.38, 3.35])
    for amps in (5.0, -5.0):
        chip.set_pack_current(amps)
        assert chip.balancing_cells() == (True, False, True, False)
        assert driver.read().balancing == (True, False, True, False)
    chip.set_pack_current(0.0)
    assert chip.balancing_cells() == (False,) * 4
    assert driver.read().balancing == (False,) * 4


def test_a_charge_current_threshold_means_balance_during_charge_only() -> None:
    chip, bus, driver = make(4)
    bus.write_byte_data(ADDRESS, 0x4B, 0x80 | 0x08)  # CBDD and UVLOPD set beforehand
    driver.configure(CellThresholds(), BalanceSettings(min_charge_current=0.3))
    assert bus.read_byte_data(ADDRESS, 0x4B) == 0x40 | 0x08  # CBDC only, other bits kept
    chip.set_cell_voltages([3.40, 3.35, 3.38, 3.35])
    chip.set_pack_current(-5.0)
    assert chip.balancing_cells() == (False,) * 4
    assert driver.read().balancing == (False,) * 4


def test_cbfc_is_the_hosts_register_not_a_mirror_of_the_balancing() -> None:
    """The datasheet (as LibreSolar's ISL94202 driver quotes it): CBFC cannot tell whether a
    cell balances at the moment. The simulated chip keeps what the host writes there."""
    chip, bus, driver = make(4)
    driver.configure(CellThresholds(), BalanceSettings())
    chip.set_pack_current(5.0)
    chip.set_cell_voltages([3.40, 3.35, 3.38, 3.35])
    assert chip.balancing_cells() == (True, False, True, False)
    assert bus.read_byte_data(ADDRESS, 0x84) == 0x00
    bus.write_byte_data(ADDRESS, 0x84, 0x81)
    assert bus.read_byte_data(ADDRESS, 0x84) == 0x81
    assert chip.balancing_cells() == (True, False, True, False)
    assert driver.read().balancing == (True, False, True, False)


def test_an_unconfigured_driver_claims_no_balancing() -> None:
    chip, _, driver = make(4)
    chip.set_pack_current(5.0)
    chip.set_cell_voltages([3.40, 3.35, 3.38, 3.35])
    assert driver.read().balancing == (False,) * 4


@settings(max_examples=40, deadline=None)
@given(
    internal=st.floats(min_value=-20.0, max_value=90.0),
    external=st.floats(min_value=-5.0, max_value=90.0),
)
def test_temperatures_round_trip(internal: float, external: float) -> None:
    chip, _, driver = make(4)
    chip.set_temperatures(internal, (external, None))
    reading = driver.read()
    assert reading.internal_temperature_c == pytest.approx(internal, abs=0.3)
    measured = reading.external_temperatures_c[0]
    assert measured is not None
    assert measured == pytest.approx(external, abs=0.6)
    assert reading.external_temperatures_c[1] is None  # open input


def test_verify_reports_identity_problems() -> None:
    chip, bus, driver = make(6)
    assert driver.verify() == 6
    chip.write(0x49, b"\x12")
    with pytest.raises(DeviceError, match="0x49 reads 0x12"):
        driver.verify()
    bus.detach(ADDRESS)
    with pytest.raises(DeviceError, match=r"i2c-1 address 0x28: no ISL94203 answered.*Errno 6"):
        driver.verify()


def test_bus_errors_mid_read_become_device_errors() -> None:
    chip, bus, driver = make(4)
    chip.set_cell_voltages([3.3] * 4)
    driver.read()
    bus.fail(ADDRESS)
    with pytest.raises(DeviceError, match=r"i2c-1 address 0x28: register 0x90 read failed"):
        driver.read()


def test_cell_count_out_of_range() -> None:
    with pytest.raises(ValueError, match="3 to 8"):
        Isl94203(FakeSMBus(), "i2c-1", 9)
    with pytest.raises(ValueError, match="3 to 8"):
        SimIsl94203(2)
