"""The real agent wired to a simulated box: used by `sbms-agent --simulate`, tests and benchmarks.

The agent gets a configuration that matches the box's wiring and the simulated I2C bus; from
there on it runs exactly the production drivers, control core and state store.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from pathlib import Path

from edge_agent.config import (
    HEARTBEAT_LINE,
    HEARTBEAT_MARGIN,
    AgentConfig,
    CellMonitorSettings,
    HardwareSettings,
    HeartbeatSettings,
    OutputPinSettings,
    ShuntSettings,
    StorageSettings,
    TimingSettings,
    default_config,
)
from edge_agent.control.envelope import default_remote_window
from edge_agent.control.model import ControlReport
from edge_agent.control.settings import (
    ArraySettings,
    ControlSettings,
    DiversionSettings,
    OutputSettings,
    OutputType,
    SocSettings,
    Wiring,
)
from edge_agent.diy.agent import Agent
from edge_agent.diy.hardware import open_hardware
from edge_agent.drivers.bus import SMBusLike
from edge_agent.drivers.bus_log import RecordingBus
from edge_agent.recording.record import SessionRecorder
from edge_agent.simulator.box import BoxSpec, SimulatedBox
from edge_agent.storage.state_writer import StateSink

# Which EXTIO drives what in the simulated box (BoxSpec's default MCP23008 wiring).
_LOADS_PIN, _PRIMARY_PV_PIN, _SECONDARY_PV_PIN, _FAULT_PIN = 0, 1, 2, 3
CHARGER_OUTPUT = "charger"  # the output switching the box's charger, when it has one
# The outputs switching the DSSR20s' heat paths (type 7, wired to a heater), when fitted.
HEAT_PRIMARY_OUTPUT, HEAT_SECONDARY_OUTPUT = "heat1", "heat2"


def simulated_config(
    spec: BoxSpec,
    control: ControlSettings | None = None,
    sample_interval_s: float = 1.0,
    state_path: Path | None = None,
) -> AgentConfig:
    """An agent configuration for `spec`'s box: its chips, addresses and output wiring (a
    type 1 output for its charger, if any), and the heartbeat line when the box has the
    one-shot (ValueError when `sample_interval_s` is
    too long to keep it alive: the configuration would not validate)."""
    base = default_config()
    control = control or dataclasses.replace(
        base.control,
        cell_count=spec.cell_count,
        soc=SocSettings(capacity_ah=spec.capacity_ah),
    )
    dual_pv = spec.pv_secondary is not None
    # The box's wiring, as its file would say it: EXTIO5 switches the secondary array's DSSR20
    # when one is fitted, and nothing otherwise (a charge wire without a source behind it
    # would count as a way to charge that is not there).
    outputs: tuple[OutputSettings, ...] = (
        OutputSettings("extio3", OutputType.LVD, Wiring.LOAD),
        OutputSettings("extio4", OutputType.HVD, Wiring.CHARGE),
        OutputSettings(
            "extio5",
            OutputType.DUAL_PV if dual_pv else OutputType.UNUSED,
            Wiring.CHARGE if dual_pv else Wiring.NONE,
        ),
        OutputSettings("extio6", OutputType.FAULT, Wiring.FAULT),
    )
    pins = [
        ("extio3", _LOADS_PIN),
        ("extio4", _PRIMARY_PV_PIN),
        ("extio5", _SECONDARY_PV_PIN),
        ("extio6", _FAULT_PIN),
    ]
    if spec.charger is not None:  # its remote on/off: a charge source like the PV DSSRs
        outputs = (*outputs, OutputSettings(CHARGER_OUTPUT, OutputType.HVD, Wiring.CHARGE))
        pins.append((CHARGER_OUTPUT, spec.charger.pin))
    outputs, pins, diversion = _heat_outputs(spec, control.diversion, outputs, pins)
    control = dataclasses.replace(
        control, cell_count=spec.cell_count, outputs=outputs, diversion=diversion
    )
    hardware = HardwareSettings(
        i2c_bus=1,
        cell_monitor=CellMonitorSettings(chip="isl94203", address=spec.isl_address),
        battery_shunt=ShuntSettings(
            chip=spec.battery_shunt_chip,
            address=spec.battery_shunt_address,
            rated_current_a=spec.battery_shunt_rating[0],
            rated_millivolts=spec.battery_shunt_rating[1],
        ),
        pv_shunt=None
        if spec.pv_shunt_rating is None
        else ShuntSettings(
            chip="ina228",
            address=spec.pv_shunt_address,
            rated_current_a=spec.pv_shunt_rating[0],
            rated_millivolts=spec.pv_shunt_rating[1],
        ),
        heat_shunt=_heat_shunt_settings(spec),
        outputs=tuple(
            OutputPinSettings(name=name, driver="mcp23008", address=spec.mcp_address, pin=pin)
            for name, pin in pins
        ),
        heartbeat=_heartbeat_settings(spec, sample_interval_s),
    )
    stale_after = max(base.control.stale_after_s, 2.5 * sample_interval_s)
    return dataclasses.replace(
        base,
        agent_id="simulator",
        control=dataclasses.replace(control, stale_after_s=stale_after),
        hardware=hardware,
        timing=TimingSettings(
            sample_interval_s=sample_interval_s,
            state_save_interval_s=max(1.0, sample_interval_s),
            status_interval_s=1.0,
        ),
        storage=StorageSettings(state_path=state_path or Path("sbms-sim-state.db")),
        # The defaults for this box's own settings (its capacity), not an empty file's.
        remote_window=default_remote_window(control),
    )


def _heat_outputs(
    spec: BoxSpec,
    diversion: DiversionSettings,
    outputs: tuple[OutputSettings, ...],
    pins: list[tuple[str, int]],
) -> tuple[tuple[OutputSettings, ...], list[tuple[str, int]], DiversionSettings]:
    """The diversion outputs of a box with heat paths, and what its owner would tell the
    estimate: each array's size and element, and the site (unless `diversion` says more);
    with the tank's thermistor on xT2, that xT2 reads the tank."""
    heat, wiring = spec.heat, spec.wiring
    if heat is None:
        return outputs, pins, diversion
    arrays = [
        ArraySettings(
            "extio4", spec.pv_primary.rated_isc_a, spec.pv_primary.panel.voc_v, heat.primary_ohm
        )
    ]
    paths = [(HEAT_PRIMARY_OUTPUT, "extio4", wiring.heat_primary_pin)]
    if spec.pv_secondary is not None:
        secondary = spec.pv_secondary
        arrays.append(
            ArraySettings(
                "extio5", secondary.rated_isc_a, secondary.panel.voc_v, heat.secondary_ohm
            )
        )
        paths.append((HEAT_SECONDARY_OUTPUT, "extio5", wiring.heat_secondary_pin))
    for name, array_output, pin in paths:
        if pin is not None:
            outputs = (
                *outputs,
                OutputSettings(name, OutputType.DIVERSION, Wiring.HEATER, diverts=array_output),
            )
            pins = [*pins, (name, pin)]
    if diversion == DiversionSettings():
        diversion = DiversionSettings(
            arrays=tuple(arrays),
            latitude_deg=spec.latitude_deg,
            longitude_deg=spec.utc_offset_hours * 15.0,
            tank_temperature="external2" if heat.tank_sensor_on_xt2 else None,
        )
    return outputs, pins, diversion


def _heat_shunt_settings(spec: BoxSpec) -> ShuntSettings | None:
    heat = spec.heat
    if heat is None or heat.shunt_rating is None:
        return None
    amps, millivolts = heat.shunt_rating
    return ShuntSettings(heat.shunt_chip, heat.shunt_address, amps, millivolts)


def _heartbeat_settings(spec: BoxSpec, sample_interval_s: float) -> HeartbeatSettings | None:
    gate = spec.heartbeat_gate
    if gate is None:
        return None
    if gate.hold_s < HEARTBEAT_MARGIN * sample_interval_s:
        raise ValueError(
            f"the box's heartbeat one-shot holds {gate.hold_s:g} s: too short for a sample "
            f"every {sample_interval_s:g} s (needs {HEARTBEAT_MARGIN:g} x the interval)"
        )
    line = OutputPinSettings(
        name=HEARTBEAT_LINE, driver="mcp23008", address=spec.mcp_address, pin=gate.pin
    )
    return HeartbeatSettings(line, gate.hold_s)


class SimulatedSystem:
    """A simulated box and the real agent driving it, stepped synchronously."""

    def __init__(
        self,
        spec: BoxSpec,
        config: AgentConfig | None = None,
        store: StateSink | None = None,
        recorder: SessionRecorder | None = None,
        *,
        record_bus: bool = True,
    ) -> None:
        """With a `recorder`, the agent runs on a `RecordingBus` (every register transaction
        recorded) unless `record_bus` is False (decoded samples only)."""
        self.box = SimulatedBox(spec)
        self.config = config or simulated_config(spec)
        bus: SMBusLike = self.box.bus
        self.bus_log: RecordingBus | None = None
        if recorder is not None and record_bus:
            self.bus_log = bus = RecordingBus(self.box.bus, self.box.bus.name)
        hardware = open_hardware(
            self.config.hardware, self.config.control.cell_count, bus, self.box.bus.name
        )
        self.agent = Agent(
            self.config, hardware, store, self.box.now, recorder=recorder, bus_log=self.bus_log
        )

    def run(
        self,
        seconds: float,
        on_report: Callable[[ControlReport], None] | None = None,
    ) -> ControlReport | None:
        """Advance the box and sample at the configured interval for `seconds`."""
        interval = self.config.timing.sample_interval_s
        report: ControlReport | None = None
        end = self.box.now + seconds
        while self.box.now < end - 1e-9:
            self.box.advance(min(interval, end - self.box.now))
            report = self.agent.step(self.box.now)
            if on_report is not None:
                on_report(report)
        return report
