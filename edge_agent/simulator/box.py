"""The simulated battery box: pack, PV arrays, loads and the register-accurate chips on one bus.

`SimulatedBox.advance` moves the physics forward in blocks of 1 s steps, vectorised over the
block. At every block boundary (every `control_block_s` of simulated time on a grid anchored at
`spec.start`, at local midnight, and at the end of every `advance` call) the box re-reads the
MCP23008 outputs (DSSRs and the load contactor) and the ISL94203's balancing decision, and feeds
the chips the new cell voltages, temperatures and shunt voltages; the INA228 charge accumulator
gets the block's exact integral, so it loses no coulombs between polls.

Heartbeat gate (optional, `BoxSpec.heartbeat_gate`): the external retriggerable one-shot of
docs/safety.md. Each rising edge on its MCP23008 pin is stamped with the box's time as it
happens (bus writes only happen between `advance` calls); an output conducts only while
`now < last edge + hold_s` and its pin drives high. A block also ends where the gate drops, so
the outputs go off at exactly that time inside a long `advance`.

Charger (optional, `BoxSpec.charger`): a constant-current / constant-voltage charger switched
by an MCP23008 pin. Its current is set at each block start from the pack's rest voltage, so
while it conducts blocks are at most `_CHARGER_BLOCK_S` long and its taper stays smooth.

Splitting: weather and loads are pure functions of (seed, time), and blocks sit on a fixed grid,
so `advance(3600)` and `advance(1800)` twice give identical trajectories. Advancing in steps
shorter than a block re-reads the switches more often and evaluates the load and PV currents at
a fresher pack voltage: the trajectories then differ by rounding-level amounts (constant-power
load current off by I * dV / V within a block, typically < 0.1 %). Sensor noise (off by default)
is drawn once per block, so it does depend on the split.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import astuple, dataclass, field, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from edge_agent.simulator.cell_curves import curve
from edge_agent.simulator.heat import ArrayFlows, HeatPathSpec, WaterTank, array_flows
from edge_agent.simulator.ina2xx import SimIna226, SimIna228
from edge_agent.simulator.isl94203 import SimIsl94203
from edge_agent.simulator.lfp import (
    REAL_CELL,
    REAL_OCV_SPREAD_V,
    CellParameters,
    FloatArray,
    floats,
)
from edge_agent.simulator.loads import HouseholdLoad, HouseholdLoadSpec
from edge_agent.simulator.mcp23008 import SimMcp23008
from edge_agent.simulator.pack import Pack, PackSpec
from edge_agent.simulator.pv import (
    PANEL_36_CELL,
    PANEL_72_CELL,
    AmbientSpec,
    CloudClass,
    CloudSpec,
    IvCurve,
    PvArraySpec,
    SiteSpec,
    Weather,
    iv_curve,
    local_day,
    panel_temperature,
)
from edge_agent.simulator.smbus import FakeSMBus

JUNE_1_2026_UTC = 1780272000.0
_PACK_STREAM, _NOISE_STREAM = 0, 3
_MCP_PINS = 8
_CHARGER_BLOCK_S = 5.0  # blocks while the charger conducts: it regulates on the pack voltage


@dataclass(frozen=True, slots=True)
class ShuntErrorSpec:
    """Current-sense imperfections: measured = true * (1 + gain_error) + offset + noise."""

    gain_error: float = 0.0  # fraction, e.g. 0.005 = +0.5 %
    offset_a: float = 0.0
    noise_a: float = 0.0  # gaussian sigma of each instantaneous reading


@dataclass(frozen=True, slots=True)
class OutputWiring:
    """Which MCP23008 pin drives what (None: not wired). The fault lamp has no physical effect."""

    loads_pin: int | None = 0  # EXTIO3, LVD: the switched household loads
    pv_primary_pin: int | None = 1  # EXTIO4, HVD: the primary array's DSSR20
    pv_secondary_pin: int | None = 2  # EXTIO5, dual PV: the secondary array's DSSR20
    fault_pin: int | None = 3  # EXTIO6
    # The DSSR20s' heat-path inputs (a diversion fitted: `BoxSpec.heat`); None: not wired.
    heat_primary_pin: int | None = None
    heat_secondary_pin: int | None = None


@dataclass(frozen=True, slots=True)
class HeartbeatGateSpec:
    """The retriggerable one-shot (74LVC1G123) in the optocouplers' common LED return: each
    rising edge on `pin` enables every output for `hold_s`; without a fresh edge none conducts,
    whatever the MCP23008 drives (docs/safety.md)."""

    pin: int = 7
    hold_s: float = 1.5  # the one-shot's pulse width tW as built


@dataclass(frozen=True, slots=True)
class ChargerSpec:
    """A CC/CV charger (mains or generator) on the battery, switched by its remote on/off from
    an MCP23008 pin like the PV DSSRs: `current_limit_a` until the pack's terminals reach
    `absorption_cell_v` per cell, then that voltage, the current tapering as the cells fill.
    No float stage: it stays at absorption while switched on."""

    pin: int = 4
    absorption_cell_v: float = 3.55  # Victron's 28.4 V for 8S LFP
    current_limit_a: float = 20.0
    lead_resistance_ohm: float = 0.01  # output and cables: from its regulation point to the pack


@dataclass(frozen=True, slots=True)
class BoxFaults:
    """Wiring faults of a box being brought up (what `sbms-agent probe` must name).

    - `missing_chips`: I2C addresses of chips not fitted or not powered: nothing acknowledges.
    - `open_sense_wires`: cells (1 = bottom) whose top sense wire is off. The chip's input for
      that cell reads about 0 V and the cell above it (if any) reads the two cells together
      (the input follows its upper neighbour; real chips vary, 0 V is the telling part).
    - `saturated_shunts`: "battery" and/or "pv": the shunt drops far more than its rating says
      (a 75 mV shunt configured as a larger one, or a short), so the INA's ADC clips at its
      full scale, in the direction of the current (charging when there is none).
    """

    missing_chips: tuple[int, ...] = ()
    open_sense_wires: tuple[int, ...] = ()
    saturated_shunts: tuple[Literal["battery", "pv"], ...] = ()


# Beyond the largest INA range (+-163.84 mV): the simulated ADC clips at its full-scale code.
_SATURATING_SHUNT_V = 0.5


@dataclass(frozen=True)
class BoxSpec:
    """Everything that defines a simulated box; the same spec and seed give the same run."""

    cell_count: int = 8
    capacity_ah: float = 100.0
    capacity_spread: float = 0.02
    initial_soc: float = 0.5  # fraction
    soc_spread: float = 0.02
    top_balanced: bool = False  # PackSpec.top_balanced: cells that reach full together
    pack_resistance_ohm: float = 0.005
    self_discharge_per_month: float = 0.02
    balance_resistor_ohm: float = 24.0
    cell: CellParameters = field(default_factory=CellParameters)
    # The cells' resting OCV curve, by name (`cell_curves.CURVES`): "synthesis" is the
    # hardware-facts table the agent's estimator also uses; "a123", "sinopoly" and "generic11"
    # are published curves that share nothing with it (issue 16).
    cell_curve: str = "synthesis"
    ocv_offset_spread_v: float = 0.0  # +- per cell around the curve (lfp.REAL_OCV_SPREAD_V)
    seed: int = 1
    latitude_deg: float = 45.0
    start: float = JUNE_1_2026_UTC  # UNIX seconds
    utc_offset_hours: float = 0.0
    clouds: CloudSpec = field(default_factory=CloudSpec)
    ambient: AmbientSpec = field(default_factory=AmbientSpec)
    internal_temperature_rise_c: float = 5.0  # board above ambient
    pv_primary: PvArraySpec = field(default_factory=PvArraySpec)
    pv_secondary: PvArraySpec | None = None
    base_load_w: float = 5.0  # controller and computer, unswitched
    load_brownout_cell_v: float = 2.0  # below this average cell voltage every load cuts out
    switched_load: HouseholdLoadSpec = field(default_factory=HouseholdLoadSpec)
    battery_shunt_error: ShuntErrorSpec = field(default_factory=ShuntErrorSpec)
    pv_shunt_error: ShuntErrorSpec = field(default_factory=ShuntErrorSpec)
    battery_shunt_rating: tuple[float, float] = (250.0, 75.0)  # amps, millivolts
    pv_shunt_rating: tuple[float, float] | None = (50.0, 50.0)  # None: no PV shunt fitted
    battery_shunt_chip: Literal["ina228", "ina226"] = "ina228"
    isl_address: int = 0x28
    battery_shunt_address: int = 0x40
    pv_shunt_address: int = 0x41
    mcp_address: int = 0x20
    wiring: OutputWiring = field(default_factory=OutputWiring)
    # None: the outputs follow the MCP23008 alone (no one-shot fitted). Off by default because
    # a gate needs an agent pulsing faster than hold_s: physics-only runs and agents sampling
    # every 10 s (long scenarios) could not keep a 1.5 s one-shot alive.
    heartbeat_gate: HeartbeatGateSpec | None = None
    charger: ChargerSpec | None = None  # None: PV is the only charge source
    # Heater elements on the DSSR20s' heat paths and their water tank (issue 19); the pins
    # are `wiring.heat_primary_pin` / `heat_secondary_pin`. None: no heat path.
    heat: HeatPathSpec | None = None
    physics_step_s: float = 1.0
    control_block_s: float = 60.0  # switches and balancing are re-read at least this often
    faults: BoxFaults = field(default_factory=BoxFaults)  # none by default

    def __post_init__(self) -> None:
        if self.physics_step_s <= 0 or self.control_block_s < self.physics_step_s:
            raise ValueError("need 0 < physics_step_s <= control_block_s")
        if self.battery_shunt_chip not in ("ina228", "ina226"):
            raise ValueError("battery_shunt_chip must be ina228 or ina226")
        self._check_heartbeat_gate()
        self._check_charger()
        self._check_heat()
        self.pack_spec()  # validates the cell count and the pack values
        self._check_faults()

    def with_real_cells(self, cell_curve: str | None = None) -> BoxSpec:
        """This box with real-cell effects on (hysteresis, temperature, per-cell OCV offsets:
        `lfp.REAL_CELL`), optionally on another curve."""
        return replace(
            self,
            cell=REAL_CELL,
            ocv_offset_spread_v=REAL_OCV_SPREAD_V,
            cell_curve=self.cell_curve if cell_curve is None else cell_curve,
        )

    @classmethod
    def for_cells(cls, cell_count: int, **overrides: object) -> BoxSpec:
        """A sensibly sized box: 3-4 cells (12 V) with 36-cell panels, 5-8 cells (24 V class)
        with 72-cell panels; loads scale with the pack voltage."""
        small = cell_count <= 4
        panel = PANEL_36_CELL if small else PANEL_72_CELL
        scale = cell_count / 8.0
        defaults = cls(
            cell_count=cell_count,
            pv_primary=PvArraySpec(panel=panel, panels_in_parallel=2),
            base_load_w=3.0 if small else 5.0,
            switched_load=HouseholdLoadSpec().scaled(scale),
        )
        return replace(defaults, **overrides)  # type: ignore[arg-type]

    def _check_heartbeat_gate(self) -> None:
        gate = self.heartbeat_gate
        if gate is None:
            return
        if not 0 <= gate.pin < _MCP_PINS or not gate.hold_s > 0:
            raise ValueError("heartbeat_gate needs a pin within 0-7 and hold_s > 0")
        wired = astuple(self.wiring)
        if gate.pin in wired:
            raise ValueError(f"heartbeat_gate pin {gate.pin} is already wired: {self.wiring}")

    def _check_charger(self) -> None:
        charger = self.charger
        if charger is None:
            return
        if not 0 <= charger.pin < _MCP_PINS:
            raise ValueError("charger needs a pin within 0-7")
        taken = (*astuple(self.wiring), self.heartbeat_gate and self.heartbeat_gate.pin)
        if charger.pin in taken:
            raise ValueError(f"charger pin {charger.pin} is already wired")
        if not (charger.absorption_cell_v > 0 and charger.current_limit_a > 0):
            raise ValueError("charger needs a positive absorption voltage and current limit")
        if not charger.lead_resistance_ohm > 0:
            raise ValueError("charger needs a positive lead resistance")

    def _check_heat(self) -> None:
        heat, wiring = self.heat, self.wiring
        if heat is None:
            return
        if wiring.heat_primary_pin is None and wiring.heat_secondary_pin is None:
            raise ValueError("heat needs wiring.heat_primary_pin or heat_secondary_pin")
        if heat.secondary_ohm is not None and self.pv_secondary is None:
            raise ValueError("heat.secondary_ohm needs a secondary array")
        if not heat.primary_ohm > 0 or not (heat.secondary_ohm or 1.0) > 0:
            raise ValueError("heater elements need a positive resistance")
        if heat.shunt_rating is not None:
            if heat.secondary_ohm is not None:
                raise ValueError("heat.shunt_rating measures one element: no secondary_ohm")
            if heat.shunt_chip not in ("ina228", "ina226"):
                raise ValueError("heat.shunt_chip must be ina228 or ina226")
            taken = (self.isl_address, self.battery_shunt_address, self.mcp_address)
            if heat.shunt_address in (*taken, self.pv_shunt_address):
                raise ValueError("heat.shunt_address is taken by another chip")
        pins = [p for p in astuple(wiring) if p is not None]
        if len(pins) != len(set(pins)):
            raise ValueError(f"two outputs share a pin: {wiring}")

    def _check_faults(self) -> None:
        faults = self.faults
        if any(not 1 <= cell <= self.cell_count for cell in faults.open_sense_wires):
            raise ValueError(f"open_sense_wires names cells 1-{self.cell_count} only")
        if any(shunt not in ("battery", "pv") for shunt in faults.saturated_shunts):
            raise ValueError("saturated_shunts holds 'battery' and 'pv' only")

    def pack_spec(self) -> PackSpec:
        return PackSpec(
            cell_count=self.cell_count,
            capacity_ah=self.capacity_ah,
            capacity_spread=self.capacity_spread,
            initial_soc=self.initial_soc,
            soc_spread=self.soc_spread,
            top_balanced=self.top_balanced,
            pack_resistance_ohm=self.pack_resistance_ohm,
            self_discharge_per_month=self.self_discharge_per_month,
            balance_resistor_ohm=self.balance_resistor_ohm,
            cell=self.cell,
            curve=curve(self.cell_curve),
            ocv_offset_spread_v=self.ocv_offset_spread_v,
        )

    def site(self) -> SiteSpec:
        return SiteSpec(
            latitude_deg=self.latitude_deg,
            utc_offset_hours=self.utc_offset_hours,
            clouds=self.clouds,
            ambient=self.ambient,
        )


@dataclass(frozen=True, slots=True)
class BoxTruth:
    """What really happened in the box, for tests to compare the agent against.

    Currents are at the last physics step (amps; battery positive = charging); `*_ah` totals
    are exact integrals since the box was built. `soc_percent` is the pack's SoC: 100 at the
    first full cell, 0 at the first empty one, over `capacity_ah`; `usable_*` are what the pack
    can deliver at its present temperature (less in the cold; see `edge_agent.simulator.pack`).
    """

    timestamp: float
    soc_percent: float
    remaining_ah: float
    capacity_ah: float
    usable_soc_percent: float
    usable_capacity_ah: float
    cell_soc_percent: tuple[float, ...]
    cell_capacity_ah: tuple[float, ...]
    cell_voltages: tuple[float, ...]
    pack_voltage: float
    battery_current: float
    pv_current: float  # both arrays
    pv_primary_current: float
    pv_secondary_current: float
    charger_current: float
    load_current: float  # base + switched
    switched_load_current: float
    balancing: tuple[bool, ...]
    loads_on: bool  # the switches over the last physics step
    pv_primary_on: bool
    pv_secondary_on: bool
    charger_on: bool
    outputs_since: float  # when loads_on, pv_*_on and charger_on took their present values
    outputs_enabled: bool  # the heartbeat gate at `timestamp` (always True without one)
    heartbeat_at: float | None  # the last rising edge on the heartbeat pin, box time
    heartbeat_pulses: int  # rising edges on the heartbeat pin since the box was built
    max_cell_voltage_seen: float
    min_cell_voltage_seen: float
    irradiance_w_m2: float
    ambient_c: float
    battery_temperature_c: float
    internal_temperature_c: float
    cloud_class: CloudClass
    battery_charge_ah: float  # net charge through the battery shunt
    battery_in_ah: float
    battery_out_ah: float
    pv_charge_ah: float
    charger_charge_ah: float
    load_charge_ah: float
    # The heat paths (issue 19); zero / False / None without `BoxSpec.heat`.
    heat_primary_on: bool = False  # the heat paths' switches over the last physics step
    heat_secondary_on: bool = False
    heater_power_w: float = 0.0  # into the elements at the last physics step
    tank_temperature_c: float | None = None
    heat_wh: float = 0.0  # PV energy into the elements
    # Energy the arrays could have given at the pack voltage while neither of their paths
    # took it (both off, or the element's thermostat open): thrown away.
    pv_curtailed_wh: float = 0.0
    # What the arrays could give at the pack voltage whatever the switches (the estimator's
    # truth): at the last physics step (amps) and in total (watt-hours).
    pv_available_current: float = 0.0
    pv_available_wh: float = 0.0
    pv_to_battery_wh: float = 0.0
    # What the arrays could have given at the pack voltage while their energy went to an
    # element alone: the heat path's share of `pv_available_wh` (docs/diversion.md, energy
    # balance). `heat_wh` is what the element really took at its own operating point.
    pv_to_heat_available_wh: float = 0.0
    heat_overlap_s: float = 0.0  # time any array had both its paths on (must stay 0)


@dataclass(frozen=True, slots=True)
class _Outputs:
    loads: bool
    pv_primary: bool
    pv_secondary: bool
    charger: bool = False
    heat_primary: bool = False
    heat_secondary: bool = False


@dataclass(slots=True)
class _LastStep:
    battery_current: float = 0.0
    pv_primary_current: float = 0.0
    pv_secondary_current: float = 0.0
    charger_current: float = 0.0
    switched_load_current: float = 0.0
    base_load_current: float = 0.0
    irradiance: float = 0.0
    ambient_c: float = 20.0
    heater_power_w: float = 0.0
    heater_current: float = 0.0  # the primary element's (what a heat shunt sees)
    available_current: float = 0.0
    outputs: _Outputs = field(default_factory=lambda: _Outputs(False, False, False))


@dataclass(slots=True)
class _Totals:
    battery_in_ah: float = 0.0
    battery_out_ah: float = 0.0
    pv_ah: float = 0.0
    charger_ah: float = 0.0
    load_ah: float = 0.0
    heat_wh: float = 0.0
    pv_curtailed_wh: float = 0.0
    pv_available_wh: float = 0.0
    pv_to_battery_wh: float = 0.0
    pv_to_heat_available_wh: float = 0.0
    heat_overlap_s: float = 0.0


class SimulatedBox:
    """A battery box behind a fake I2C bus; `advance` is the only way time moves."""

    def __init__(self, spec: BoxSpec) -> None:
        self.spec = spec
        self.pack = Pack(spec.pack_spec(), np.random.default_rng([spec.seed, _PACK_STREAM]))
        self.weather = Weather(spec.site(), spec.seed)
        # Per (array, day): panel temperature and I-V curve at every second (`_day_curve`).
        self._day_curves: dict[tuple[int, int], tuple[FloatArray, IvCurve]] = {}
        self.household = HouseholdLoad(spec.switched_load, spec.seed)
        self._noise_rng = np.random.default_rng([spec.seed, _NOISE_STREAM])

        self.isl = SimIsl94203(spec.cell_count)
        self.battery_shunt: SimIna228 | SimIna226 = (
            SimIna228() if spec.battery_shunt_chip == "ina228" else SimIna226()
        )
        self.pv_shunt = SimIna228() if spec.pv_shunt_rating is not None else None
        self.mcp = SimMcp23008()
        self.mcp.on_rising_edge = self._on_rising_edge
        # The heat path's own INA (issue 19), only when the spec fits one.
        heat = spec.heat
        self.heat_shunt: SimIna228 | SimIna226 | None = None
        if heat is not None and heat.shunt_rating is not None:
            self.heat_shunt = SimIna228() if heat.shunt_chip == "ina228" else SimIna226()
        self.bus = FakeSMBus()
        self.bus.attach(spec.isl_address, self.isl)
        self.bus.attach(spec.battery_shunt_address, self.battery_shunt)
        if self.pv_shunt is not None:
            self.bus.attach(spec.pv_shunt_address, self.pv_shunt)
        self.bus.attach(spec.mcp_address, self.mcp)
        if self.heat_shunt is not None and heat is not None:
            self.bus.attach(heat.shunt_address, self.heat_shunt)
        for address in spec.faults.missing_chips:
            self.bus.detach(address)  # the chip's object stays: the physics still feeds it

        self._now = spec.start
        self._balancing: FloatArray = np.zeros(spec.cell_count)
        self._ambient_override: float | None = None
        self._internal_override: float | None = None
        self._forced_levels: tuple[bool, ...] | None = None
        self._last = _LastStep()
        self._outputs_since = self._now
        self._heartbeat_at: float | None = None
        self._heartbeat_pulses = 0
        self._totals = _Totals()
        self.tank = WaterTank(spec.heat.tank) if spec.heat is not None else None
        self._last.ambient_c = self._ambient_at(self._now)
        self._fed_temperatures = (math.inf, math.inf, math.inf)
        self._feed_devices()

    # -- time ---------------------------------------------------------------------------------

    @property
    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        """Run the physics for `seconds` of simulated time (any length; 0 does nothing)."""
        if seconds < 0 or not math.isfinite(seconds):
            raise ValueError("seconds must be finite and not negative")
        end = self._now + seconds
        step = self.spec.physics_step_s
        while end - self._now > 1e-9:
            gate_drop = self._gate_drop_time()
            outputs = self._read_outputs()
            steps, dt = self._plan_block(end - self._now, step, gate_drop, outputs.charger)
            self._run_block(steps, dt, outputs)
            for boundary in (end, gate_drop):
                if boundary is not None and abs(boundary - self._now) < 1e-6:
                    self._now = boundary  # no float drift between the caller's clock and ours
            self._feed_devices()
            self._balancing = np.asarray(self.isl.balancing_cells(), dtype=np.float64)

    def _plan_block(
        self, remaining: float, step: float, gate_drop: float | None, charging: bool
    ) -> tuple[int, float]:
        """Steps and step length of the next block: whole steps up to the next grid line,
        local midnight or the heartbeat gate's drop, and short blocks while the charger
        regulates; a remainder shorter than a step before the gate drops or the advance ends
        is one short step."""
        if gate_drop is not None and gate_drop - self._now < min(remaining, step) - 1e-9:
            return 1, gate_drop - self._now
        if remaining < step - 1e-9:
            return 1, remaining
        block = self.spec.control_block_s
        since_start = self._now - self.spec.start
        to_grid = block - (since_start % block)
        if to_grid < step - 1e-9:
            to_grid += block
        _, second_of_day = local_day(self._now, self.spec.utc_offset_hours)
        to_midnight = 86400.0 - second_of_day
        horizon = min(remaining, to_grid, max(to_midnight, step))
        if gate_drop is not None:
            horizon = min(horizon, gate_drop - self._now)
        if charging:
            horizon = min(horizon, _CHARGER_BLOCK_S)
        return max(1, int(horizon / step + 1e-9)), step

    # -- heartbeat gate -----------------------------------------------------------------------

    def _on_rising_edge(self, pin: int) -> None:
        gate = self.spec.heartbeat_gate
        if gate is not None and pin == gate.pin:
            self._heartbeat_at = self._now
            self._heartbeat_pulses += 1

    def _gate_drop_time(self) -> float | None:
        """When the enabled gate drops without a new edge; None when it is not enabled."""
        gate = self.spec.heartbeat_gate
        if gate is None or self._heartbeat_at is None:
            return None
        drop = self._heartbeat_at + gate.hold_s
        return drop if self._now < drop - 1e-9 else None

    def _outputs_enabled(self) -> bool:
        return self.spec.heartbeat_gate is None or self._gate_drop_time() is not None

    # -- physics ------------------------------------------------------------------------------

    def _run_block(self, steps: int, dt: float, outputs: _Outputs) -> None:
        spec = self.spec
        day, second_of_day = local_day(self._now, spec.utc_offset_hours)
        weather = self.weather.day(day)
        index = np.minimum(
            (second_of_day + np.arange(steps) * dt).astype(np.int64), weather.ambient_c.size - 1
        )
        irradiance = weather.irradiance_w_m2[index]
        ambient = (
            weather.ambient_c[index]
            if self._ambient_override is None
            else np.full(steps, self._ambient_override)
        )
        pack_voltage = self.pack.pack_voltage  # the battery is nearly linear within a block
        closed = self.tank is not None and self.tank.update_thermostat()
        heat = spec.heat
        primary = self._array_flows(
            spec.pv_primary,
            outputs.pv_primary,
            heat_ohm=heat.primary_ohm if heat and closed and outputs.heat_primary else None,
            pack_voltage=pack_voltage,
            irradiance=irradiance,
            ambient=ambient,
            day=day,
            index=index,
        )
        secondary = self._array_flows(
            spec.pv_secondary,
            outputs.pv_secondary,
            heat_ohm=heat.secondary_ohm if heat and closed and outputs.heat_secondary else None,
            pack_voltage=pack_voltage,
            irradiance=irradiance,
            ambient=ambient,
            day=day,
            index=index,
        )
        pv_primary, pv_secondary = primary.battery_a, secondary.battery_a
        heat_w = primary.heat_w + secondary.heat_w
        self._account_heat(
            dt,
            outputs,
            primary=primary,
            secondary=secondary,
            pack_voltage=pack_voltage,
            second_of_day=second_of_day,
        )
        # Constant-power loads; electronics stop drawing once the pack has collapsed.
        powered = pack_voltage >= spec.load_brownout_cell_v * spec.cell_count
        switched_w = self.household.day(day)[index] if outputs.loads and powered else None
        switched_a = np.zeros(steps) if switched_w is None else switched_w / pack_voltage
        base_a = spec.base_load_w / pack_voltage if powered else 0.0
        pv = pv_primary + pv_secondary
        others = pv - switched_a - base_a
        charger = self._charger_current(outputs.charger, others)
        battery = others + charger

        if outputs != self._last.outputs:
            self._outputs_since = self._now
        pack_voltages = self.pack.step_block(
            battery, dt, self._balancing, self._battery_temperature()
        )
        self._account(dt, battery, pv, switched_a + base_a, charger)
        self._feed_shunts(steps * dt, battery, pv, pack_voltages)
        heater_a = heat.element_current(primary.heat_w) if heat is not None else np.zeros(steps)
        self._feed_heat_shunt(steps * dt, heater_a)
        self._now += steps * dt
        self._last = _LastStep(
            battery_current=float(battery[-1]),
            pv_primary_current=float(pv_primary[-1]),
            pv_secondary_current=float(pv_secondary[-1]),
            charger_current=float(charger[-1]),
            switched_load_current=float(switched_a[-1]),
            base_load_current=base_a,
            irradiance=float(irradiance[-1]),
            ambient_c=float(ambient[-1]),
            heater_power_w=float(heat_w[-1]),
            heater_current=float(heater_a[-1]),
            available_current=float(primary.available_a[-1] + secondary.available_a[-1]),
            outputs=outputs,
        )

    def _array_flows(
        self,
        array: PvArraySpec | None,
        battery_on: bool,
        *,
        heat_ohm: float | None,
        pack_voltage: float,
        irradiance: FloatArray,
        ambient: FloatArray,
        day: int,
        index: npt.NDArray[np.int64],
    ) -> ArrayFlows:
        # Without an array nothing flows, whatever the switches (array_flows gives zeros).
        curve: IvCurve | None = None
        cell_temperature = ambient
        if array is not None:
            if self._ambient_override is None:
                day_temperature, day_curve = self._day_curve(array, day)
                cell_temperature, curve = day_temperature[index], day_curve.at(index)
            else:
                cell_temperature = panel_temperature(ambient, irradiance, array.panel.noct_c)
        return array_flows(
            array,
            battery_on=battery_on,
            heat_ohm=heat_ohm,
            pack_voltage=pack_voltage,
            irradiance_w_m2=irradiance,
            cell_temperature_c=cell_temperature,
            curve=curve,
        )

    def _day_curve(self, array: PvArraySpec, day: int) -> tuple[FloatArray, IvCurve]:
        """The array's panel temperature and I-V curve at every second of a day's weather:
        pure functions of the weather, worked out once a day instead of in every block (the
        same numbers element by element)."""
        key = (id(array), day)
        cached = self._day_curves.get(key)
        if cached is None:
            if len(self._day_curves) >= 4:  # two arrays, today and maybe yesterday
                self._day_curves.clear()
            weather = self.weather.day(day)
            irradiance = weather.irradiance_w_m2
            temperature = panel_temperature(weather.ambient_c, irradiance, array.panel.noct_c)
            cached = temperature, iv_curve(array, irradiance, temperature)
            self._day_curves[key] = cached
        return cached

    def _account_heat(
        self,
        dt: float,
        outputs: _Outputs,
        *,
        primary: ArrayFlows,
        secondary: ArrayFlows,
        pack_voltage: float,
        second_of_day: float,
    ) -> None:
        """The heat paths' totals and the tank over one block."""
        totals = self._totals
        to_wh = dt / 3600.0
        # A box without a secondary array or heat paths: their flows are zeros, which add
        # nothing to any sum (skipped: this runs every physics block).
        arrays = (primary,) if self.spec.pv_secondary is None else (primary, secondary)
        heat_w = primary.heat_w + secondary.heat_w
        if self.spec.heat is not None:
            totals.heat_wh += _sum(heat_w) * to_wh
        available = (
            primary.available_a
            if len(arrays) == 1
            else (primary.available_a + secondary.available_a)
        )
        totals.pv_available_wh += _sum(available) * pack_voltage * to_wh
        battery = (
            primary.battery_a if len(arrays) == 1 else (primary.battery_a + secondary.battery_a)
        )
        totals.pv_to_battery_wh += _sum(battery) * pack_voltage * to_wh
        for flows in arrays:
            idle = (flows.battery_a <= 0.0) & (flows.heat_w <= 0.0)
            totals.pv_curtailed_wh += _sum(flows.available_a[idle]) * pack_voltage * to_wh
            if self.spec.heat is not None:  # without heat paths nothing heats: 0 Wh
                heating = (flows.battery_a <= 0.0) & (flows.heat_w > 0.0)
                heated = _sum(flows.available_a[heating]) * pack_voltage * to_wh
                totals.pv_to_heat_available_wh += heated
        steps = heat_w.size
        if (outputs.pv_primary and outputs.heat_primary) or (
            outputs.pv_secondary and outputs.heat_secondary
        ):
            totals.heat_overlap_s += steps * dt
        if self.tank is not None:
            self.tank.step(_sum(heat_w) * dt, steps * dt, second_of_day / 3600.0)

    def _charger_current(self, is_on: bool, others_a: FloatArray) -> FloatArray:
        """Constant current, or the current that holds the charger's regulation point at the
        absorption voltage (with the pack's rest voltage held for the block):
        setpoint = rest + (charger + others) x R_pack + charger x R_lead."""
        charger = self.spec.charger
        if charger is None or not is_on:
            return np.zeros(others_a.size)
        pack_resistance = float(self.pack.resistances_ohm.sum())
        setpoint = charger.absorption_cell_v * self.spec.cell_count
        regulating = (setpoint - self.pack.rest_voltage - others_a * pack_resistance) / (
            pack_resistance + charger.lead_resistance_ohm
        )
        current: FloatArray = np.clip(regulating, 0.0, charger.current_limit_a)
        return current

    def _account(
        self,
        dt: float,
        battery: FloatArray,
        pv: FloatArray,
        load: FloatArray,
        charger: FloatArray,
    ) -> None:
        to_ah = dt / 3600.0
        charged = _sum(np.maximum(battery, 0.0))
        self._totals.battery_in_ah += charged * to_ah
        self._totals.battery_out_ah += (charged - _sum(battery)) * to_ah
        self._totals.pv_ah += _sum(pv) * to_ah
        self._totals.charger_ah += _sum(charger) * to_ah
        self._totals.load_ah += _sum(load) * to_ah

    # -- devices ------------------------------------------------------------------------------

    def _read_outputs(self) -> _Outputs:
        """What conducts from now on. Forced levels stand for the switches themselves, so
        they bypass the heartbeat gate as they bypass the chip."""
        if self._forced_levels is not None:
            levels = self._forced_levels
        elif self._outputs_enabled():
            levels = self.mcp.output_levels()
        else:
            levels = (False,) * _MCP_PINS
        wiring = self.spec.wiring

        def level(pin: int | None) -> bool:
            return pin is not None and pin < len(levels) and levels[pin]

        return _Outputs(
            loads=level(wiring.loads_pin),
            pv_primary=level(wiring.pv_primary_pin),
            pv_secondary=self.spec.pv_secondary is not None and level(wiring.pv_secondary_pin),
            charger=self.spec.charger is not None and level(self.spec.charger.pin),
            heat_primary=self.spec.heat is not None and level(wiring.heat_primary_pin),
            heat_secondary=self.spec.heat is not None and level(wiring.heat_secondary_pin),
        )

    def _measured(self, true_a: float, error: ShuntErrorSpec, with_noise: bool) -> float:
        measured = true_a * (1.0 + error.gain_error) + error.offset_a
        if with_noise and error.noise_a > 0.0:
            measured += float(self._noise_rng.normal(0.0, error.noise_a))
        return measured

    @staticmethod
    def _volts_per_amp(rating: tuple[float, float]) -> float:
        amps, millivolts = rating
        return millivolts / 1000.0 / amps

    def _feed_shunts(
        self, duration_s: float, battery: FloatArray, pv: FloatArray, pack_voltages: FloatArray
    ) -> None:
        """Give the INA accumulators the block's exact mean (charge = mean x duration)."""
        spec = self.spec
        steps = battery.size
        mean_bus = _sum(pack_voltages) / steps
        battery_mean = self._measured(_sum(battery) / steps, spec.battery_shunt_error, False)
        battery_v = battery_mean * self._volts_per_amp(spec.battery_shunt_rating)
        self.battery_shunt.advance(duration_s, self._shunt_volts("battery", battery_v), mean_bus)
        if self.pv_shunt is not None and spec.pv_shunt_rating is not None:
            pv_mean = self._measured(_sum(pv) / steps, spec.pv_shunt_error, False)
            self.pv_shunt.advance(
                duration_s,
                self._shunt_volts("pv", pv_mean * self._volts_per_amp(spec.pv_shunt_rating)),
                mean_bus,
            )

    def _feed_heat_shunt(self, duration_s: float, amps: FloatArray) -> None:
        """The heat shunt's accumulator: the element's mean current, its mean voltage."""
        heat = self.spec.heat
        if self.heat_shunt is None or heat is None or heat.shunt_rating is None:
            return
        mean_a = _sum(amps) / amps.size
        mean_v = _sum(amps * heat.primary_ohm) / amps.size
        self.heat_shunt.advance(duration_s, mean_a * self._volts_per_amp(heat.shunt_rating), mean_v)

    def _shunt_volts(self, shunt: Literal["battery", "pv"], volts: float) -> float:
        """What the shunt presents to its INA: `volts`, or far beyond any range when saturated."""
        if shunt not in self.spec.faults.saturated_shunts:
            return volts
        return -_SATURATING_SHUNT_V if volts < 0 else _SATURATING_SHUNT_V

    def _sensed_cells(self, volts: list[float]) -> list[float]:
        """The cell voltages as the monitor's inputs see them (open sense wires included)."""
        sensed = list(volts)
        for cell in sorted(self.spec.faults.open_sense_wires):
            index = cell - 1
            if index + 1 < len(sensed):
                sensed[index + 1] += sensed[index]
            sensed[index] = 0.0
        return sensed

    def _tank_sensor_temperature(self) -> float:
        """The tank's thermistor on xT2 when fitted (HeatPathSpec.tank_sensor_on_xt2), else
        NaN (the input open)."""
        heat = self.spec.heat
        if heat is None or not heat.tank_sensor_on_xt2 or self.tank is None:
            return math.nan
        return self.tank.temperature_c

    def _feed_devices(self) -> None:
        """Present the latest state on the chips' registers."""
        spec = self.spec
        pack = self.pack
        self.isl.set_cell_voltages(self._sensed_cells(floats(pack.cell_voltages)))
        self.isl.set_pack_current(self._last.battery_current)
        temperatures = (
            self._internal_temperature(),
            self._battery_temperature(),
            self._tank_sensor_temperature(),
        )
        # Skip sub-resolution changes: the chip's codes are ~0.25 C apart and this is slow.
        fed = self._fed_temperatures
        if any(abs(now - before) >= 0.01 for now, before in zip(temperatures, fed, strict=True)):
            tank = None if math.isnan(temperatures[2]) else temperatures[2]  # NaN: xT2 open
            self.isl.set_temperatures(temperatures[0], (temperatures[1], tank))
            self._fed_temperatures = temperatures
        pack_voltage = pack.pack_voltage
        battery = self._measured(self._last.battery_current, spec.battery_shunt_error, True)
        self.battery_shunt.set_inputs(
            self._shunt_volts("battery", battery * self._volts_per_amp(spec.battery_shunt_rating)),
            pack_voltage,
        )
        if self.pv_shunt is not None and spec.pv_shunt_rating is not None:
            pv_true = self._last.pv_primary_current + self._last.pv_secondary_current
            pv = self._measured(pv_true, spec.pv_shunt_error, True)
            self.pv_shunt.set_inputs(
                self._shunt_volts("pv", pv * self._volts_per_amp(spec.pv_shunt_rating)),
                pack_voltage,
            )
        heat = spec.heat
        if self.heat_shunt is not None and heat is not None and heat.shunt_rating is not None:
            amps = self._last.heater_current
            self.heat_shunt.set_inputs(
                amps * self._volts_per_amp(heat.shunt_rating), amps * heat.primary_ohm
            )

    def _ambient_at(self, unix_s: float) -> float:
        if self._ambient_override is not None:
            return self._ambient_override
        day, second = local_day(unix_s, self.spec.utc_offset_hours)
        ambient = self.weather.day(day).ambient_c
        return float(ambient[min(int(second), ambient.size - 1)])

    def _battery_temperature(self) -> float:
        return self._last.ambient_c if self._ambient_override is None else self._ambient_override

    def _internal_temperature(self) -> float:
        if self._internal_override is not None:
            return self._internal_override
        return self._battery_temperature() + self.spec.internal_temperature_rise_c

    # -- test hooks ---------------------------------------------------------------------------

    def set_ambient_temperature_override(self, celsius: float | None) -> None:
        """Hold the ambient (battery and panel air) temperature; None returns to the weather."""
        self._ambient_override = celsius
        self._feed_devices()

    def set_internal_temperature_override(self, celsius: float | None) -> None:
        """Hold the board (ISL internal) temperature; None: ambient + the configured rise."""
        self._internal_override = celsius
        self._feed_devices()  # at once: a test may read the register before advancing

    def reset_extremes(self) -> None:
        self.pack.reset_extremes()

    def force_output_levels(self, levels: Sequence[bool] | None) -> None:
        """Drive the DSSRs and loads from `levels` (per MCP23008 pin) instead of the chip, for
        physics-only runs without an agent; None hands control back to the MCP23008."""
        if levels is not None and len(levels) != _MCP_PINS:
            raise ValueError(f"need {_MCP_PINS} levels, one per MCP23008 pin")
        self._forced_levels = None if levels is None else tuple(bool(v) for v in levels)

    # -- truth --------------------------------------------------------------------------------

    @property
    def truth(self) -> BoxTruth:
        pack = self.pack
        last = self._last
        totals = self._totals
        day, _ = local_day(self._now, self.spec.utc_offset_hours)
        charge = pack.charge_figures()
        # floats(): the same Python floats as float() of each element, in one call (the
        # scenario tests read the truth after every sample).
        return BoxTruth(
            timestamp=self._now,
            soc_percent=100.0 * charge.soc_fraction,
            remaining_ah=charge.remaining_ah,
            capacity_ah=charge.capacity_ah,
            usable_soc_percent=100.0 * charge.usable_soc_fraction,
            usable_capacity_ah=charge.usable_capacity_ah,
            cell_soc_percent=tuple(floats(100.0 * pack.soc)),
            cell_capacity_ah=tuple(floats(pack.capacities_ah)),
            cell_voltages=tuple(floats(pack.cell_voltages)),
            pack_voltage=pack.pack_voltage,
            battery_current=last.battery_current,
            pv_current=last.pv_primary_current + last.pv_secondary_current,
            pv_primary_current=last.pv_primary_current,
            pv_secondary_current=last.pv_secondary_current,
            charger_current=last.charger_current,
            load_current=last.switched_load_current + last.base_load_current,
            switched_load_current=last.switched_load_current,
            balancing=tuple(map(bool, floats(self._balancing))),
            loads_on=last.outputs.loads,
            pv_primary_on=last.outputs.pv_primary,
            pv_secondary_on=last.outputs.pv_secondary,
            charger_on=last.outputs.charger,
            outputs_since=self._outputs_since,
            outputs_enabled=self._outputs_enabled(),
            heartbeat_at=self._heartbeat_at,
            heartbeat_pulses=self._heartbeat_pulses,
            max_cell_voltage_seen=pack.max_cell_voltage_seen,
            min_cell_voltage_seen=pack.min_cell_voltage_seen,
            irradiance_w_m2=last.irradiance,
            ambient_c=last.ambient_c,
            battery_temperature_c=self._battery_temperature(),
            internal_temperature_c=self._internal_temperature(),
            cloud_class=self.weather.day(day).cloud_class,
            battery_charge_ah=totals.battery_in_ah - totals.battery_out_ah,
            battery_in_ah=totals.battery_in_ah,
            battery_out_ah=totals.battery_out_ah,
            pv_charge_ah=totals.pv_ah,
            charger_charge_ah=totals.charger_ah,
            load_charge_ah=totals.load_ah,
            heat_primary_on=last.outputs.heat_primary,
            heat_secondary_on=last.outputs.heat_secondary,
            heater_power_w=last.heater_power_w,
            tank_temperature_c=None if self.tank is None else self.tank.temperature_c,
            heat_wh=totals.heat_wh,
            pv_curtailed_wh=totals.pv_curtailed_wh,
            pv_available_current=last.available_current,
            pv_available_wh=totals.pv_available_wh,
            pv_to_battery_wh=totals.pv_to_battery_wh,
            pv_to_heat_available_wh=totals.pv_to_heat_available_wh,
            heat_overlap_s=totals.heat_overlap_s,
        )


def _sum(values: FloatArray) -> float:
    """`float(values.sum())`, from the same ufunc reduction without the method's wrapper: the
    box sums a dozen short arrays every physics block."""
    return float(np.add.reduce(values, axis=None))
