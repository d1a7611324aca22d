"""The simulated box's CC/CV charger: constant current up to its absorption voltage, then a
tapering current, switched by its MCP23008 pin like the PV DSSRs."""

from __future__ import annotations

import itertools

import pytest

from edge_agent.config import config_to_dict, parse_config
from edge_agent.control.settings import OutputType, Wiring
from edge_agent.simulator.box import BoxSpec, ChargerSpec, HeartbeatGateSpec, SimulatedBox
from edge_agent.simulator.harness import CHARGER_OUTPUT, simulated_config

HOUR = 3600.0
MCP_IODIR, MCP_OLAT = 0x00, 0x0A
CHARGER_PIN = 4


def night_box(charger: ChargerSpec, **overrides: object) -> SimulatedBox:
    values: dict[str, object] = {"initial_soc": 0.7, "soc_spread": 0.001}
    values.update(overrides)
    start = BoxSpec().start + 20 * HOUR  # no sun: the charger is the only source
    return SimulatedBox(BoxSpec(start=start, charger=charger, **values))  # type: ignore[arg-type]


def charger_on(box: SimulatedBox, on: bool = True) -> None:
    box.bus.write_byte_data(box.spec.mcp_address, MCP_OLAT, int(on) << CHARGER_PIN)
    box.bus.write_byte_data(box.spec.mcp_address, MCP_IODIR, 0xFF & ~(1 << CHARGER_PIN))


@pytest.mark.parametrize("limit_a", [10.0, 40.0])
def test_bulk_at_the_current_limit_then_absorption_at_the_set_voltage(limit_a: float) -> None:
    charger = ChargerSpec(current_limit_a=limit_a)
    box = night_box(charger, capacity_spread=0.002)
    charger_on(box)
    box.advance(600.0)
    bulk = box.truth
    assert bulk.charger_on
    assert bulk.charger_current == pytest.approx(limit_a)
    assert bulk.charger_charge_ah == pytest.approx(limit_a * 600.0 / HOUR)
    assert bulk.pv_current == 0.0
    assert bulk.battery_current == pytest.approx(limit_a - bulk.load_current)
    box.advance(6 * HOUR)
    done = box.truth
    assert done.soc_percent == pytest.approx(100.0, abs=0.1)
    assert done.charger_current < 1.0  # tapered
    setpoint = charger.absorption_cell_v * box.spec.cell_count
    lead_drop = done.charger_current * charger.lead_resistance_ohm
    assert done.pack_voltage == pytest.approx(setpoint - lead_drop, abs=0.005)


def test_the_taper_is_smooth() -> None:
    box = night_box(ChargerSpec(current_limit_a=40.0), initial_soc=0.95)
    charger_on(box)
    currents = []
    for _ in range(120):
        box.advance(30.0)
        currents.append(box.truth.charger_current)
    tapering = currents[currents.index(max(currents)) :]
    rises = [later - earlier for earlier, later in itertools.pairwise(tapering)]
    assert tapering[-1] < 5.0
    assert max(rises) < 0.05  # no ringing between the blocks' regulation points


def test_the_charger_conducts_only_while_its_pin_drives_high() -> None:
    box = night_box(ChargerSpec())
    box.advance(60.0)
    before = box.truth
    charger_on(box)
    box.advance(60.0)
    during = box.truth
    assert (before.charger_on, during.charger_on) == (False, True)
    charger_on(box, False)
    box.advance(60.0)
    truth = box.truth
    assert (truth.charger_on, truth.charger_current) == (False, 0.0)
    assert truth.charger_charge_ah == pytest.approx(20.0 * 60.0 / HOUR)


@pytest.mark.parametrize(
    "charger",
    [ChargerSpec(pin=1), ChargerSpec(pin=7), ChargerSpec(current_limit_a=0.0)],
)
def test_the_charger_needs_a_free_pin_and_sane_values(charger: ChargerSpec) -> None:
    with pytest.raises(ValueError, match="charger"):
        BoxSpec(charger=charger, heartbeat_gate=HeartbeatGateSpec(pin=7))


def test_simulated_config_switches_the_charger_with_a_charge_wired_hvd_output() -> None:
    config = simulated_config(BoxSpec(charger=ChargerSpec(pin=5)))
    output = next(item for item in config.control.outputs if item.name == CHARGER_OUTPUT)
    assert (output.type, output.wiring) == (OutputType.HVD, Wiring.CHARGE)
    pin = next(item for item in config.hardware.outputs if item.name == CHARGER_OUTPUT)
    assert (pin.driver, pin.address, pin.pin) == ("mcp23008", 0x20, 5)
    assert parse_config(config_to_dict(config)) == config
