"""The simulated DSSR20 heat path and water tank, alone and with the real agent diverting."""

from __future__ import annotations

import dataclasses
from typing import Literal

import numpy as np
import pytest

from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import HEAT_PRIMARY_OUTPUT, SimulatedSystem, simulated_config
from edge_agent.simulator.heat import (
    WATER_J_PER_KG_K,
    HeatPathSpec,
    WaterTank,
    WaterTankSpec,
    array_flows,
    operating_point_on_resistor,
)
from edge_agent.simulator.loads import HouseholdLoadSpec
from edge_agent.simulator.pv import CloudSpec, PvArraySpec, pv_array_current

HOUR = 3600.0
CLEAR_SKY = CloudSpec(sunny_probability=1.0, mixed_probability=0.0, sunny_passing_clouds_per_day=0)
ARRAY = PvArraySpec()  # two 72-cell panels: Isc 18 A, Voc 46 V


@pytest.mark.parametrize("ohm", [0.5, 1.6, 2.5, 5.0])
def test_the_element_works_where_the_curves_meet(ohm: float) -> None:
    sun = np.array([200.0, 600.0, 1000.0])
    cells = np.full(3, 35.0)
    volts, amps = operating_point_on_resistor(ARRAY, ohm, sun, cells)
    np.testing.assert_allclose(amps, pv_array_current(ARRAY, volts, sun, cells), atol=1e-3)
    np.testing.assert_allclose(amps * ohm, volts, rtol=1e-9)
    # On the flat part of the curve the array is a current source: P = Isc^2 R.
    isc = pv_array_current(ARRAY, 0.0, sun, cells)
    flat = isc * ohm < 0.75 * ARRAY.panel.voc_v * 0.9
    np.testing.assert_allclose((volts * amps)[flat], (isc**2 * ohm)[flat], rtol=1e-3)


def test_a_path_to_each_or_to_neither() -> None:
    sun, cells = np.array([900.0]), np.array([40.0])
    common = {"pack_voltage": 27.0, "irradiance_w_m2": sun, "cell_temperature_c": cells}
    battery = array_flows(ARRAY, battery_on=True, heat_ohm=None, **common)  # type: ignore[arg-type]
    heat = array_flows(ARRAY, battery_on=False, heat_ohm=1.6, **common)  # type: ignore[arg-type]
    neither = array_flows(ARRAY, battery_on=False, heat_ohm=None, **common)  # type: ignore[arg-type]
    assert battery.battery_a[0] == pytest.approx(battery.available_a[0])
    assert battery.heat_w[0] == 0.0
    assert heat.battery_a[0] == 0.0
    assert heat.heat_w[0] > 0.8 * (battery.available_a[0] ** 2 * 1.6)
    assert neither.battery_a[0] == 0.0
    assert neither.heat_w[0] == 0.0
    assert neither.available_a[0] == pytest.approx(battery.available_a[0])


def test_the_tank_warms_by_the_energy_and_cools_by_losses_and_draws() -> None:
    tank = WaterTank(WaterTankSpec(volume_l=100.0, initial_c=20.0, room_c=20.0, draws=()))
    tank.step(heat_j=100.0 * WATER_J_PER_KG_K * 10.0, seconds=60.0, local_hour=12.0)
    assert tank.temperature_c == pytest.approx(30.0)
    tank.step(heat_j=0.0, seconds=3600.0, local_hour=13.0)
    assert 29.0 < tank.temperature_c < 30.0  # standing loss
    drawing = WaterTank(WaterTankSpec(volume_l=100.0, initial_c=60.0, inlet_c=10.0))
    drawing.step(heat_j=0.0, seconds=600.0, local_hour=7.0)  # the morning's 40 L
    assert drawing.drawn_l == pytest.approx(40.0)
    assert drawing.temperature_c == pytest.approx(40.0, abs=0.2)


def test_the_thermostat_opens_the_element() -> None:
    tank = WaterTank(WaterTankSpec(initial_c=76.0, thermostat_c=75.0))
    assert not tank.update_thermostat()
    tank.temperature_c = 73.0
    assert not tank.update_thermostat()  # inside the hysteresis
    tank.temperature_c = 71.9
    assert tank.update_thermostat()


def test_a_sunny_day_on_a_full_battery_heats_the_water() -> None:
    """The real agent on a full pack in the sun: the array goes to the element instead of
    being thrown away, the tank warms, the two paths never conduct together, and the agent's
    estimate of the diverted energy is near the truth."""
    spec = BoxSpec(
        start=BoxSpec().start + 9 * HOUR,
        clouds=CLEAR_SKY,
        initial_soc=0.99,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, tank=WaterTankSpec(draws=())),
    )
    config = simulated_config(spec, sample_interval_s=5.0)
    system = SimulatedSystem(spec, config)
    start_c = system.box.truth.tank_temperature_c
    diverting_samples = 0
    report = None
    for _ in range(int(5 * HOUR / 60)):
        report = system.run(60.0)
        assert report is not None
        truth = system.box.truth
        assert not (report.outputs[HEAT_PRIMARY_OUTPUT] and report.outputs["extio4"])
        diverting_samples += report.outputs[HEAT_PRIMARY_OUTPUT]
    truth = system.box.truth
    assert report is not None
    assert report.diversion is not None
    assert truth.heat_overlap_s == 0.0
    assert diverting_samples > 100  # most of the five hours
    assert truth.heat_wh > 1000.0  # about 500 W for most of five hours
    assert start_c is not None
    assert truth.tank_temperature_c is not None
    expected_rise = truth.heat_wh * 3600.0 / (200.0 * WATER_J_PER_KG_K)
    assert truth.tank_temperature_c - start_c == pytest.approx(expected_rise, rel=0.15)
    assert truth.max_cell_voltage_seen < config.control.cells.ovlo
    counters = report.diversion.counters
    assert counters.diverted_measured_wh == 0.0  # no heat-path shunt in this box
    assert counters.diverted_estimated_wh == pytest.approx(truth.heat_wh, rel=0.25)


def test_a_box_with_a_heat_path_needs_its_pin() -> None:
    with pytest.raises(ValueError, match="heat_primary_pin"):
        BoxSpec(heat=HeatPathSpec())
    with pytest.raises(ValueError, match="share a pin"):
        dataclasses.replace(BoxSpec(), wiring=OutputWiring(heat_primary_pin=1), heat=HeatPathSpec())


def _measured_box(chip: Literal["ina228", "ina226"] = "ina228") -> BoxSpec:
    return BoxSpec(
        start=BoxSpec().start + 11 * HOUR,
        clouds=CLEAR_SKY,
        initial_soc=0.99,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(
            primary_ohm=1.6,
            tank=WaterTankSpec(draws=()),
            shunt_rating=(30.0, 75.0),
            shunt_chip=chip,
        ),
    )


@pytest.mark.parametrize("chip", ["ina228", "ina226"])
def test_a_heat_path_shunt_measures_the_diverted_power(chip: Literal["ina228", "ina226"]) -> None:
    """The real drivers read the box's heat-path INA: the agent counts measured energy, and
    its power is the element's own (the simulated chip encodes the datasheet by itself)."""
    spec = _measured_box(chip)
    system = SimulatedSystem(spec, simulated_config(spec, sample_interval_s=5.0))
    assert system.config.hardware.heat_shunt is not None
    compared = 0
    report = None
    for _ in range(int(2 * HOUR / 60)):
        report = system.run(60.0)
        assert report is not None
        measurement = report.measurement
        assert measurement is not None
        assert measurement.heat_power_w is not None
        truth = system.box.truth
        if truth.heater_power_w > 100.0:
            assert measurement.heat_power_w == pytest.approx(truth.heater_power_w, rel=0.02)
            compared += 1
    assert compared > 60
    assert report is not None
    assert report.diversion is not None
    assert report.diversion.measured
    counters = report.diversion.counters
    assert counters.diverted_estimated_wh == 0.0
    assert counters.diverted_measured_wh == pytest.approx(system.box.truth.heat_wh, rel=0.03)


def test_a_failing_heat_shunt_leaves_protection_and_the_estimate() -> None:
    spec = _measured_box()
    assert spec.heat is not None
    system = SimulatedSystem(spec, simulated_config(spec, sample_interval_s=5.0))
    system.run(600.0)
    system.box.bus.detach(spec.heat.shunt_address)  # the chip falls off the bus
    report = system.run(600.0)
    assert report is not None
    assert report.measurement is not None
    assert report.measurement.timestamp == system.box.now
    assert report.measurement.heat_power_w is None  # unmeasured, not a failed sample
    assert not report.faults
    assert report.diversion is not None
    assert not report.diversion.measured
    assert report.diversion.counters.diverted_estimated_wh > 0.0  # estimated meanwhile


def test_a_heat_shunt_measures_one_element() -> None:
    with pytest.raises(ValueError, match="one element"):
        BoxSpec(
            pv_secondary=PvArraySpec(),
            wiring=OutputWiring(heat_primary_pin=5),
            heat=HeatPathSpec(secondary_ohm=2.0, shunt_rating=(30.0, 75.0)),
        )


@pytest.mark.slow
def test_energy_balance_over_a_week_within_one_percent() -> None:
    """Energy balance of the simulated arrays over a week with the real agent switching.

    Definitions (docs/diversion.md, "Energy balance"): PV available is the energy the arrays
    could have delivered at the pack voltage, every physics step, whatever the switches (the
    battery path's operating point: panels straight on the pack, no MPPT). Each step, each
    array's available energy goes to exactly one of: to battery (its battery path conducted:
    the energy it delivered into the pack), to heat (its heat path alone conducted and the
    element's thermostat was closed: the energy it could have given at the pack voltage
    meanwhile), or curtailed (neither took it: battery path off and no heat path, or the
    thermostat open). The balance: |available - (to battery + to heat + curtailed)| <= 1 %
    of available. An overlap of both paths, or a step counted twice or nowhere, breaks it.
    The element's own energy (`heat_wh`, at its operating point on the I-V curve, not at the
    pack voltage) is balanced on the heat side: it equals the energy the tank stored plus
    what it lost through its insulation, within 1 %.

    Mixed weather and a small cabin's loads keep the pack full most afternoons; a 30 L tank
    without draws reaches its thermostat within days, so curtailment by an open element is
    in the week too.
    """
    spec = BoxSpec(
        seed=5,
        initial_soc=0.8,
        clouds=CloudSpec(sunny_probability=0.6, mixed_probability=0.3),
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, tank=WaterTankSpec(volume_l=30.0, draws=())),
        switched_load=HouseholdLoadSpec().scaled(0.3),
        physics_step_s=5.0,
    )
    system = SimulatedSystem(spec, simulated_config(spec, sample_interval_s=30.0))
    thermostat_open_s = 0.0
    for _ in range(int(7 * 24 * HOUR / 600.0)):
        system.run(600.0)
        truth = system.box.truth
        if truth.heat_primary_on and truth.heater_power_w == 0.0 and truth.irradiance_w_m2 > 200.0:
            thermostat_open_s += 600.0
    truth = system.box.truth
    available = truth.pv_available_wh
    to_battery = truth.pv_to_battery_wh
    to_heat = truth.pv_to_heat_available_wh
    curtailed = truth.pv_curtailed_wh
    print(
        f"available {available:.0f} Wh, to battery {to_battery:.0f}, to heat {to_heat:.0f} "
        f"(element {truth.heat_wh:.0f}), curtailed {curtailed:.0f}, "
        f"residual {available - to_battery - to_heat - curtailed:+.1f} Wh, "
        f"thermostat open {thermostat_open_s / 3600:.1f} h"
    )
    assert truth.heat_overlap_s == 0.0
    # Every destination has a real share of the week, so the balance tests each of them.
    assert available > 20_000.0
    assert to_battery > 0.2 * available
    assert to_heat > 0.05 * available
    assert curtailed > 0.02 * available
    assert thermostat_open_s > 0.0  # the full tank sent the sun to "curtailed"
    assert abs(available - (to_battery + to_heat + curtailed)) <= 0.01 * available
    # The heat side: what the element took is in the water (stored, or lost through the
    # insulation; no draws here), counted by the tank on its own.
    tank = system.box.tank
    assert tank is not None
    stored_wh = 30.0 * WATER_J_PER_KG_K * (tank.temperature_c - 20.0) / 3600.0
    assert truth.heat_wh == pytest.approx(stored_wh + tank.lost_wh, rel=0.01)
    # The element's operating point is not the pack's: on 1.6 ohm the array sits below the
    # pack voltage except in full sun, so the element took less than the battery would have
    # (0.85 of it in this week).
    assert 0.7 * to_heat < truth.heat_wh < to_heat
