"""The assembled simulated box: physics behind the register-accurate chips on the fake bus."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from edge_agent.simulator.box import BoxSpec, OutputWiring, ShuntErrorSpec, SimulatedBox
from edge_agent.simulator.pv import CloudSpec, PvArraySpec

MCP_IODIR, MCP_OLAT = 0x00, 0x0A
ISL_CELL1 = 0x90
ISL_ITEMP = 0xA0
ISL_MV_PER_CODE = 1.17216
INA228_CONFIG, INA228_SHUNT_CAL, INA228_CHARGE = 0x00, 0x02, 0x0A
HOUR = 3600.0
ALWAYS_SUNNY = CloudSpec(sunny_probability=1.0, mixed_probability=0.0)

LOADS, PV_PRIMARY, PV_SECONDARY = 0x01, 0x02, 0x04


def drive_outputs(box: SimulatedBox, pins: int) -> None:
    """What an agent does: OLAT first (no glitch), then the low nibble as outputs."""
    box.bus.write_byte_data(box.spec.mcp_address, MCP_OLAT, pins)
    box.bus.write_byte_data(box.spec.mcp_address, MCP_IODIR, 0xF0)


def isl_cell_volts(box: SimulatedBox, register: int) -> float:
    code = box.bus.read_word_data(box.spec.isl_address, register) & 0x0FFF
    return code * ISL_MV_PER_CODE / 1000.0


def advance_to_hour(box: SimulatedBox, hour: float) -> None:
    box.advance(box.spec.start + hour * HOUR - box.now)


def sunny_box(**overrides: object) -> SimulatedBox:
    values: dict[str, object] = {"clouds": ALWAYS_SUNNY, "initial_soc": 0.2}
    values.update(overrides)
    return SimulatedBox(dataclasses.replace(BoxSpec(), **values))  # type: ignore[arg-type]


# -- outputs drive the physics ----------------------------------------------------------------


def test_charges_by_day_and_discharges_by_night_with_outputs_on() -> None:
    box = sunny_box()
    drive_outputs(box, LOADS | PV_PRIMARY)
    advance_to_hour(box, 3.5)  # sunrise is about 04:30 at 45 N in June
    dawn = box.truth
    assert dawn.soc_percent < 20.0  # the night's loads came out of the battery
    assert dawn.pv_current == 0.0
    advance_to_hour(box, 12.0)
    noon = box.truth
    assert noon.pv_primary_on
    assert noon.loads_on
    assert noon.pv_current > 15.0  # two 9 A panels in June sun
    assert noon.battery_current > 10.0
    assert noon.soc_percent > dawn.soc_percent + 20.0
    advance_to_hour(box, 22.0)
    evening = box.truth
    advance_to_hour(box, 28.0)
    assert box.truth.soc_percent < evening.soc_percent - 3.0
    assert box.truth.battery_current < 0.0


def test_outputs_off_at_power_on_leave_only_the_base_load() -> None:
    box = sunny_box(initial_soc=0.5)
    advance_to_hour(box, 12.0)
    truth = box.truth
    assert not truth.pv_primary_on
    assert not truth.loads_on
    assert not truth.pv_secondary_on
    assert truth.irradiance_w_m2 > 800.0
    assert truth.battery_current == pytest.approx(-box.spec.base_load_w / truth.pack_voltage)
    assert truth.battery_charge_ah < 0.0


def test_secondary_array_adds_its_current_only_when_its_pin_conducts() -> None:
    secondary = PvArraySpec(panels_in_parallel=4)
    box = sunny_box(initial_soc=0.3, pv_secondary=secondary)
    drive_outputs(box, PV_PRIMARY)
    advance_to_hour(box, 11.0)
    primary_only = box.truth.pv_current
    drive_outputs(box, PV_PRIMARY | PV_SECONDARY)
    box.advance(60.0)
    both = box.truth
    assert both.pv_secondary_on
    assert both.pv_secondary_current == pytest.approx(2.0 * both.pv_primary_current, rel=1e-9)
    assert both.pv_current == pytest.approx(3.0 * primary_only, rel=0.02)


def test_secondary_pin_does_nothing_without_a_secondary_array() -> None:
    box = sunny_box()
    drive_outputs(box, PV_SECONDARY)
    advance_to_hour(box, 12.0)
    assert not box.truth.pv_secondary_on
    assert box.truth.pv_current == 0.0


def test_forced_levels_replace_the_expander_and_rewiring_is_honoured() -> None:
    wiring = OutputWiring(loads_pin=5, pv_primary_pin=6, pv_secondary_pin=None, fault_pin=None)
    box = sunny_box(wiring=wiring)
    box.force_output_levels([False] * 6 + [True, False])
    advance_to_hour(box, 12.0)
    forced = box.truth
    assert forced.pv_primary_on
    assert not forced.loads_on
    box.force_output_levels(None)
    box.advance(60.0)
    released = box.truth
    assert not released.pv_primary_on
    with pytest.raises(ValueError, match="8 levels"):
        box.force_output_levels([True])


def test_unprotected_pack_overshoots_and_extremes_record_it() -> None:
    box = sunny_box(initial_soc=0.9)
    drive_outputs(box, PV_PRIMARY)
    advance_to_hour(box, 14.0)
    truth = box.truth
    assert truth.max_cell_voltage_seen > 3.75  # nobody opened the DSSR: OVLO territory
    box.reset_extremes()
    assert box.truth.max_cell_voltage_seen == pytest.approx(max(box.truth.cell_voltages))


# -- the chips show the physics ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("cells", "registers"),
    [
        (8, tuple(ISL_CELL1 + 2 * i for i in range(8))),
        (4, (0x90, 0x92, 0x9C, 0x9E)),  # 4S uses inputs 1, 2, 7, 8
    ],
)
def test_isl_cell_registers_match_truth(cells: int, registers: tuple[int, ...]) -> None:
    box = SimulatedBox(BoxSpec.for_cells(cells))
    drive_outputs(box, LOADS | PV_PRIMARY)
    box.advance(11.3 * HOUR)
    truth = box.truth
    read = [isl_cell_volts(box, register) for register in registers]
    np.testing.assert_allclose(read, truth.cell_voltages, atol=0.0012)  # one 1.17 mV code
    assert len(truth.cell_voltages) == cells


def test_isl_temperatures_follow_the_overrides() -> None:
    box = SimulatedBox(BoxSpec())
    box.set_internal_temperature_override(70.0)
    code = box.bus.read_word_data(box.spec.isl_address, ISL_ITEMP) & 0x0FFF
    celsius = code * 1.8 / 4095 * 1000 / 1.8527 - 273.15
    assert celsius == pytest.approx(70.0, abs=0.5)
    box.set_ambient_temperature_override(-5.0)
    box.advance(120.0)
    assert box.truth.battery_temperature_c == -5.0
    assert box.truth.internal_temperature_c == 70.0
    box.set_internal_temperature_override(None)
    assert box.truth.internal_temperature_c == pytest.approx(-5.0 + 5.0)


def test_box_applies_the_chips_balancing_decision() -> None:
    # A wide spread while charging past full: the chip's power-on window (3.1..4.0 V, more
    # than 20 mV apart) bleeds the high cells once 0x4B b6 (CBDC, balance during charge) is
    # set, as a driver sets it; the box must apply exactly those flags.
    box = sunny_box(initial_soc=0.97, soc_spread=0.03, self_discharge_per_month=0.0)
    box.bus.write_byte_data(box.spec.isl_address, 0x4B, 0x40)
    drive_outputs(box, PV_PRIMARY)
    advance_to_hour(box, 5.0)
    flagged = np.zeros(box.spec.cell_count, dtype=bool)
    for _ in range(4 * 60):  # one block per call: every decision the box applies is seen
        box.advance(60.0)
        assert box.truth.balancing == box.isl.balancing_cells()
        flagged |= np.array(box.truth.balancing)
    bled = box.pack.bled_ah
    assert flagged.any()
    assert not flagged.all()  # the lowest cell never bleeds
    assert np.all(bled[flagged] > 0.0)
    assert np.all(bled[~flagged] == 0.0)


# -- shunt monitors ---------------------------------------------------------------------------


def configure_ina228(box: SimulatedBox, address: int, rating: tuple[float, float]) -> float:
    """Program SHUNT_CAL as the datasheet says; returns the charge LSB in coulombs."""
    amps, millivolts = rating
    current_lsb = amps / 2**19
    shunt_cal = round(13107.2e6 * current_lsb * millivolts / 1000.0 / amps)
    box.bus.write_i2c_block_data(address, INA228_SHUNT_CAL, [shunt_cal >> 8, shunt_cal & 0xFF])
    box.bus.write_i2c_block_data(address, INA228_CONFIG, [0x40, 0x00])  # RSTACC
    return current_lsb


def read_ina228_charge_ah(box: SimulatedBox, address: int, charge_lsb: float) -> float:
    raw = int.from_bytes(bytes(box.bus.read_i2c_block_data(address, INA228_CHARGE, 5)), "big")
    if raw & 1 << 39:
        raw -= 1 << 40
    return raw * charge_lsb / 3600.0


def test_ina228_charge_over_a_day_matches_truth_within_the_sensor_error() -> None:
    gain, offset = 0.005, 0.05
    box = SimulatedBox(
        BoxSpec(
            initial_soc=0.3,
            battery_shunt_error=ShuntErrorSpec(gain_error=gain, offset_a=offset),
        )
    )
    lsb = configure_ina228(box, box.spec.battery_shunt_address, box.spec.battery_shunt_rating)
    pv_lsb = configure_ina228(box, box.spec.pv_shunt_address, (50.0, 50.0))
    drive_outputs(box, LOADS | PV_PRIMARY)
    box.advance(24 * HOUR)
    truth = box.truth
    counted = read_ina228_charge_ah(box, box.spec.battery_shunt_address, lsb)
    expected = truth.battery_charge_ah * (1.0 + gain) + offset * 24.0
    assert counted == pytest.approx(expected, abs=0.02)
    bound = gain * (truth.battery_in_ah + truth.battery_out_ah) + offset * 24.0
    assert abs(counted - truth.battery_charge_ah) <= bound + 0.02
    assert abs(counted - truth.battery_charge_ah) > 0.5  # the error is really applied
    pv_counted = read_ina228_charge_ah(box, box.spec.pv_shunt_address, pv_lsb)
    assert pv_counted == pytest.approx(truth.pv_charge_ah, abs=0.02)  # PV shunt error-free


def test_ina226_can_be_the_battery_shunt() -> None:
    box = SimulatedBox(BoxSpec(battery_shunt_chip="ina226"))
    manufacturer = box.bus.read_word_data(box.spec.battery_shunt_address, 0xFE)
    assert manufacturer == 0x4954  # 0x5449 big-endian, byte-swapped by the SMBus word read


def test_no_pv_shunt_means_nothing_answers_at_its_address() -> None:
    box = SimulatedBox(BoxSpec(pv_shunt_rating=None))
    with pytest.raises(OSError, match=r"No such device|\[Errno 6\]"):
        box.bus.read_byte_data(box.spec.pv_shunt_address, 0)


# -- determinism and splitting ----------------------------------------------------------------


def run_for(spec: BoxSpec, chunks: list[float]) -> SimulatedBox:
    box = SimulatedBox(spec)
    drive_outputs(box, LOADS | PV_PRIMARY)
    for seconds in chunks:
        box.advance(seconds)
    return box


def test_same_seed_same_trajectory_and_different_seed_differs() -> None:
    first = run_for(BoxSpec(seed=11), [2 * 24 * HOUR])
    again = run_for(BoxSpec(seed=11), [2 * 24 * HOUR])
    other = run_for(BoxSpec(seed=12), [2 * 24 * HOUR])
    assert first.truth == again.truth
    assert first.truth.cell_voltages != other.truth.cell_voltages
    assert first.truth.battery_charge_ah != other.truth.battery_charge_ah


def test_whole_blocks_split_gives_identical_results() -> None:
    spec = BoxSpec(seed=4)
    whole = run_for(spec, [14 * HOUR])
    split = run_for(spec, [5 * HOUR, 3 * HOUR, 6 * HOUR])
    assert whole.truth == split.truth


def test_per_second_advance_stays_close_to_block_advance() -> None:
    spec = BoxSpec(seed=4, start=BoxSpec().start + 10 * HOUR)
    blocks = run_for(spec, [HOUR])
    seconds = run_for(spec, [1.0] * 3600)
    assert seconds.now == blocks.now
    assert seconds.truth.soc_percent == pytest.approx(blocks.truth.soc_percent, abs=0.01)
    np.testing.assert_allclose(seconds.truth.cell_voltages, blocks.truth.cell_voltages, atol=0.0005)
    assert seconds.truth.battery_charge_ah == pytest.approx(
        blocks.truth.battery_charge_ah, rel=1e-3
    )


def test_fractional_advances_keep_the_clock_exact() -> None:
    box = SimulatedBox(BoxSpec())
    for _ in range(10):
        box.advance(0.25)
    box.advance(0.0)
    assert box.now == pytest.approx(box.spec.start + 2.5, abs=1e-9)
    with pytest.raises(ValueError, match="not negative"):
        box.advance(-1.0)


def test_for_cells_sizes_panels_to_the_pack_voltage() -> None:
    small = BoxSpec.for_cells(4)
    large = BoxSpec.for_cells(8)
    assert small.pv_primary.panel.voc_v < 25.0
    assert large.pv_primary.panel.voc_v > 40.0
    assert small.switched_load.evening_peak_w < large.switched_load.evening_peak_w
    assert BoxSpec.for_cells(4, seed=9).seed == 9
