"""The simulated box's heartbeat one-shot: outputs conduct only within hold_s of a pulse.

The box models the external retriggerable one-shot (docs/safety.md) that enables the
optocouplers' common LED return; these tests drive it through the MCP23008's registers, as an
agent would, and through the real driver and agent.
"""

from __future__ import annotations

import dataclasses
import logging

import pytest

from edge_agent.config import (
    HEARTBEAT_LINE,
    HeartbeatSettings,
    OutputPinSettings,
    config_to_dict,
    parse_config,
)
from edge_agent.diy.hardware import CombinedOutputs
from edge_agent.drivers.mcp23008 import Mcp23008Outputs
from edge_agent.simulator.box import BoxSpec, HeartbeatGateSpec, SimulatedBox
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import CloudSpec

MCP_IODIR, MCP_OLAT = 0x00, 0x0A
LOADS, PV_PRIMARY, HEARTBEAT = 0x01, 0x02, 0x80
HOLD_S = 1.5
NOON = 12 * 3600.0
CLEAR_SKY = CloudSpec(sunny_probability=1.0, mixed_probability=0.0, sunny_passing_clouds_per_day=0)
GATE = HeartbeatGateSpec()  # pin 7, 1.5 s


def spec(gate: HeartbeatGateSpec | None = GATE) -> BoxSpec:
    base = BoxSpec(clouds=CLEAR_SKY, heartbeat_gate=gate)
    return dataclasses.replace(base, start=base.start + NOON)


def box_driving(pins: int, gate: HeartbeatGateSpec | None = GATE) -> SimulatedBox:
    """A box at noon whose MCP23008 drives `pins` high, heartbeat line low (OLAT first)."""
    box = SimulatedBox(spec(gate))
    box.bus.write_byte_data(box.spec.mcp_address, MCP_OLAT, pins)
    box.bus.write_byte_data(box.spec.mcp_address, MCP_IODIR, 0x70)  # pins 0-3 and 7 outputs
    return box


def pulse(box: SimulatedBox, pins: int) -> None:
    box.bus.write_byte_data(box.spec.mcp_address, MCP_OLAT, pins | HEARTBEAT)
    box.bus.write_byte_data(box.spec.mcp_address, MCP_OLAT, pins)


def test_without_a_pulse_nothing_conducts_whatever_the_pins_drive() -> None:
    box = box_driving(LOADS | PV_PRIMARY)
    box.advance(5.0)
    truth = box.truth
    assert box.mcp.output_levels()[:2] == (True, True)
    assert (truth.loads_on, truth.pv_primary_on, truth.outputs_enabled) == (False, False, False)
    assert truth.pv_charge_ah == 0.0
    assert (truth.heartbeat_at, truth.heartbeat_pulses) == (None, 0)


def test_a_pulse_enables_the_outputs_and_is_stamped_with_the_box_time() -> None:
    box = box_driving(LOADS | PV_PRIMARY)
    box.advance(5.0)
    pulse(box, LOADS | PV_PRIMARY)
    assert box.truth.heartbeat_at == box.now
    assert box.truth.outputs_enabled
    box.advance(1.0)
    truth = box.truth
    assert (truth.loads_on, truth.pv_primary_on) == (True, True)
    assert truth.outputs_since == truth.heartbeat_at
    assert truth.pv_current > 10.0


def test_outputs_go_off_exactly_hold_s_after_the_last_pulse_inside_a_long_advance() -> None:
    box = box_driving(LOADS | PV_PRIMARY)
    pulse(box, LOADS | PV_PRIMARY)
    pulsed_at = box.now
    box.advance(600.0)
    truth = box.truth
    assert (truth.loads_on, truth.pv_primary_on, truth.outputs_enabled) == (False, False, False)
    assert truth.outputs_since == pulsed_at + HOLD_S
    # The same physics as a box without the one-shot whose outputs are on for exactly 1.5 s.
    ungated = box_driving(LOADS | PV_PRIMARY, gate=None)
    ungated.advance(HOLD_S)
    assert truth.pv_charge_ah == pytest.approx(ungated.truth.pv_charge_ah, rel=1e-12)
    assert truth.pv_charge_ah > 0.0


def test_the_next_pulse_enables_the_outputs_again() -> None:
    box = box_driving(LOADS | PV_PRIMARY)
    pulse(box, LOADS | PV_PRIMARY)
    box.advance(10.0)
    assert not box.truth.loads_on
    pulse(box, LOADS | PV_PRIMARY)
    again_at = box.now
    box.advance(0.5)
    truth = box.truth
    assert (truth.loads_on, truth.pv_primary_on) == (True, True)
    assert truth.outputs_since == again_at
    assert truth.heartbeat_pulses == 2


def test_pulses_more_often_than_hold_s_keep_the_outputs_on() -> None:
    box = box_driving(LOADS | PV_PRIMARY)
    pulse(box, LOADS | PV_PRIMARY)
    first_at = box.now
    for _ in range(120):
        box.advance(1.4)
        pulse(box, LOADS | PV_PRIMARY)
    truth = box.truth
    assert truth.loads_on
    assert truth.outputs_since == first_at  # never dropped in between
    assert truth.heartbeat_pulses == 121


def test_a_pulse_without_outputs_driven_switches_nothing_on() -> None:
    box = box_driving(0)
    pulse(box, 0)
    box.advance(1.0)
    truth = box.truth
    assert truth.outputs_enabled
    assert (truth.loads_on, truth.pv_primary_on) == (False, False)


def test_forced_levels_stand_for_the_switches_and_bypass_the_gate() -> None:
    box = SimulatedBox(spec())
    box.force_output_levels([True, True, False, False, False, False, False, False])
    box.advance(5.0)
    assert (box.truth.loads_on, box.truth.pv_primary_on) == (True, True)


def test_without_a_gate_the_pins_alone_decide() -> None:
    assert BoxSpec().heartbeat_gate is None
    box = box_driving(LOADS | PV_PRIMARY, gate=None)
    box.advance(5.0)
    truth = box.truth
    assert (truth.loads_on, truth.pv_primary_on, truth.outputs_enabled) == (True, True, True)


@pytest.mark.parametrize(
    "gate", [HeartbeatGateSpec(pin=1), HeartbeatGateSpec(pin=8), HeartbeatGateSpec(hold_s=0.0)]
)
def test_the_gate_needs_a_free_pin_and_a_hold_time(gate: HeartbeatGateSpec) -> None:
    with pytest.raises(ValueError, match="heartbeat_gate"):
        BoxSpec(heartbeat_gate=gate)


# -- with the agent's configuration, driver and control loop ------------------------------------


def test_simulated_config_has_the_heartbeat_line_and_validates() -> None:
    config = simulated_config(spec(HeartbeatGateSpec(pin=6, hold_s=2.0)))
    line = OutputPinSettings(name=HEARTBEAT_LINE, driver="mcp23008", address=0x20, pin=6)
    assert config.hardware.heartbeat == HeartbeatSettings(line, 2.0)
    assert parse_config(config_to_dict(config)) == config
    assert simulated_config(spec(gate=None)).hardware.heartbeat is None


def test_simulated_config_refuses_samples_too_slow_for_the_one_shot() -> None:
    with pytest.raises(ValueError, match="too short for a sample every 10 s"):
        simulated_config(spec(), sample_interval_s=10.0)


def test_the_agent_keeps_the_gate_open_and_a_hung_agent_lets_it_drop() -> None:
    system = SimulatedSystem(spec())
    system.run(30.0)
    truth = system.box.truth
    assert (truth.loads_on, truth.pv_primary_on) == (True, True)
    assert truth.heartbeat_pulses == 30  # one per decided sample
    system.box.advance(10.0)  # the agent hangs: no samples, the expander keeps driving
    truth = system.box.truth
    assert system.box.mcp.output_levels()[:2] == (True, True)
    assert (truth.loads_on, truth.pv_primary_on) == (False, False)
    assert truth.heartbeat_at is not None
    assert truth.outputs_since == truth.heartbeat_at + HOLD_S
    system.run(2.0)
    assert (system.box.truth.loads_on, system.box.truth.pv_primary_on) == (True, True)


def test_the_driver_sets_a_reset_expander_up_again_and_the_pulse_reenables_it(
    caplog: pytest.LogCaptureFixture,
) -> None:
    box = SimulatedBox(spec())
    pins = {"extio3": (0, False), "extio4": (1, False), HEARTBEAT_LINE: (7, False)}
    expander = Mcp23008Outputs(box.bus, box.bus.name, box.spec.mcp_address, pins)
    expander.start()
    outputs = CombinedOutputs([expander], heartbeat=True)
    outputs.apply({"extio3": True, "extio4": True})
    box.advance(1.0)
    assert (box.truth.loads_on, box.truth.pv_primary_on) == (True, True)
    box.mcp.power_on_reset()  # a brown-out: every pin an input again
    box.advance(1.0)
    assert (box.truth.loads_on, box.truth.pv_primary_on) == (False, False)
    with caplog.at_level(logging.WARNING, logger="edge_agent.drivers.mcp23008"):
        outputs.apply({"extio3": True, "extio4": True})
    assert expander.resets_recovered == 1
    assert "had reset" in caplog.text
    assert box.mcp.glitches == 0  # latch first, then the pins back to outputs
    assert box.truth.heartbeat_pulses == 2
    box.advance(1.0)
    assert (box.truth.loads_on, box.truth.pv_primary_on) == (True, True)
