"""The simulated MCP23008 on its own: rising edges per pin and the power-on reset.

Register numbers and power-on values come from the datasheet's register table (DS21919),
written out here rather than taken from the driver or the simulated chip.
"""

from __future__ import annotations

from edge_agent.simulator.mcp23008 import SimMcp23008
from edge_agent.simulator.smbus import FakeSMBus

ADDRESS = 0x20
IODIR, IPOL, GPINTEN, DEFVAL, INTCON, IOCON, GPPU, INTF, INTCAP, GPIO, OLAT = range(11)
POWER_ON = [0xFF] + [0x00] * 10  # IODIR all inputs, every other register clear


def chip_on_bus() -> tuple[SimMcp23008, FakeSMBus]:
    chip = SimMcp23008()
    return chip, FakeSMBus({ADDRESS: chip})


def test_latch_writes_count_only_low_to_high_on_output_pins() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, OLAT, 0x00)
    bus.write_byte_data(ADDRESS, IODIR, 0xFE)  # pin 0 an output, the rest inputs
    for latch in (0x01, 0x01, 0x00, 0x01, 0xFF, 0x00):
        bus.write_byte_data(ADDRESS, OLAT, latch)
    assert chip.rising_edges(0) == 2  # up, (stays), down, up, (stays), down
    assert [chip.rising_edges(pin) for pin in range(1, 8)] == [0] * 7  # inputs drive nothing


def test_gpio_writes_land_in_the_latch_and_count_too() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, IODIR, 0x00)
    bus.write_byte_data(ADDRESS, GPIO, 0x81)
    assert bus.read_byte_data(ADDRESS, OLAT) == 0x81
    assert (chip.rising_edges(0), chip.rising_edges(7), chip.rising_edges(3)) == (1, 1, 0)


def test_a_pin_becoming_an_output_with_its_latch_high_is_a_rising_edge() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, OLAT, 0x80)  # latch first, as the driver does
    assert chip.rising_edges(7) == 0  # still an input: nothing driven
    bus.write_byte_data(ADDRESS, IODIR, 0x7F)
    assert chip.rising_edges(7) == 1
    bus.write_byte_data(ADDRESS, IODIR, 0xFF)  # released: the line falls
    bus.write_byte_data(ADDRESS, IODIR, 0x7F)
    assert chip.rising_edges(7) == 2
    assert chip.glitches == 0


def test_a_multi_register_write_counts_each_edge_as_it_happens() -> None:
    chip, bus = chip_on_bus()
    seen: list[int] = []
    chip.on_rising_edge = seen.append
    bus.write_byte_data(ADDRESS, IODIR, 0x00)
    # Sequential write from GPIO: GPIO (0x09) then OLAT (0x0A), both the latch.
    bus.write_i2c_block_data(ADDRESS, GPIO, [0x04, 0x00])
    bus.write_i2c_block_data(ADDRESS, GPIO, [0x04, 0x06])
    assert seen == [2, 2, 1]  # pin 2 rose twice, pin 1 once (pin 2 stayed high)
    assert chip.rising_edges(2) == 2


def test_power_on_reset_restores_every_register_and_releases_the_pins() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, OLAT, 0x0F)
    bus.write_byte_data(ADDRESS, IODIR, 0xF0)
    for register, value in ((IPOL, 0x11), (GPINTEN, 0x22), (DEFVAL, 0x33), (INTCON, 0x44)):
        bus.write_byte_data(ADDRESS, register, value)
    bus.write_byte_data(ADDRESS, GPPU, 0x55)
    assert chip.output_levels()[:4] == (True,) * 4
    chip.power_on_reset()
    assert chip.resets == 1
    assert bus.read_i2c_block_data(ADDRESS, IODIR, 11) == POWER_ON
    assert chip.output_levels() == (False,) * 8
    assert not any(chip.is_output(pin) for pin in range(8))
    assert chip.rising_edges(0) == 1  # the counters are an instrument, not a register


def test_after_a_reset_the_latch_must_be_written_again_before_the_pins_turn_outputs() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, OLAT, 0x01)
    bus.write_byte_data(ADDRESS, IODIR, 0xFE)
    chip.power_on_reset()
    bus.write_byte_data(ADDRESS, IODIR, 0xFE)  # outputs first: they drive the reset latch
    assert chip.glitches == 1
    assert chip.output_levels()[0] is False  # OLAT came back as 0: the pin drives low
    bus.write_byte_data(ADDRESS, OLAT, 0x01)
    assert chip.rising_edges(0) == 2


def test_sequential_addressing_off_repeats_one_register() -> None:
    chip, bus = chip_on_bus()
    bus.write_byte_data(ADDRESS, IOCON, 0x20)  # SEQOP disabled
    bus.write_byte_data(ADDRESS, IODIR, 0x00)
    bus.write_i2c_block_data(ADDRESS, OLAT, [0x01, 0x00, 0x01])
    assert chip.rising_edges(0) == 2
    assert bus.read_byte_data(ADDRESS, IOCON) == 0x20
