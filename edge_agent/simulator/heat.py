"""The DSSR20's heat path: a PV array on a resistive water-heater element, and the tank.

Each array's DSSR20 connects it to the battery (through its ideal diode), to its heater
element, to both, or to neither (open circuit). On the element alone, the array works where
its I-V curve (`pv.pv_array_current`, the simulator's own model) meets the element's line
I = V / R. With both paths on, the battery holds the array at the pack voltage: the element
takes V / R and the battery the rest, unless the array cannot supply the element, when the
diode blocks and the array works on the element alone. The agent must never let this happen
(break before make); the box counts the seconds it did (`BoxTruth.heat_overlap_s`).

The tank: one mixed volume of water, warmed by the elements, losing heat to the room through
its insulation, and cooled by hot-water draws (hot water out, mains water in) at set times of
the local day. Its thermostat opens the elements at `thermostat_c` (as a real element's does),
and closes them again `thermostat_hysteresis_c` below: an open element takes no current, so
the panels' power is then curtailed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import numpy as np

from edge_agent.simulator.lfp import FloatArray
from edge_agent.simulator.pv import IvCurve, PvArraySpec, iv_curve

WATER_J_PER_KG_K = 4186.0
DRAW_MINUTES = 10.0  # each draw runs this long
_BISECTION_STEPS = 48


@dataclass(frozen=True, slots=True)
class WaterTankSpec:
    """A hot-water cylinder (1 kg per litre)."""

    volume_l: float = 200.0
    initial_c: float = 20.0
    room_c: float = 20.0
    # Standing loss UA: a 200 L cylinder at 60 C in a 20 C room loses about 1.5-2 kWh a day.
    loss_w_per_k: float = 1.8
    inlet_c: float = 12.0  # mains water replacing each draw
    thermostat_c: float = 75.0
    thermostat_hysteresis_c: float = 3.0
    # (local hour, litres), each drawn over DRAW_MINUTES: a morning and an evening shower.
    draws: tuple[tuple[float, float], ...] = ((7.0, 40.0), (19.5, 60.0))


@dataclass(frozen=True, slots=True)
class HeatPathSpec:
    """Heater elements on the arrays' DSSR20 heat paths, all in one tank."""

    primary_ohm: float = 1.6  # 18 A from two 72-cell panels: about 29 V, 520 W
    secondary_ohm: float | None = None  # None: the secondary array has no heat path
    tank: WaterTankSpec = field(default_factory=WaterTankSpec)
    # A shunt monitor in the primary element's circuit (its current, the element's voltage as
    # the bus voltage), (amps, millivolts) of its shunt; None: not fitted (optional, as on a
    # real box). It measures the only element, so not with a secondary one.
    shunt_rating: tuple[float, float] | None = None
    shunt_chip: Literal["ina228", "ina226"] = "ina228"
    shunt_address: int = 0x44
    # A thermistor on the tank wired to the cell monitor's second external input (xT2), the
    # DIY box's spare one: the agent then publishes the tank's temperature as `external2` and,
    # since simulated_config sets `diversion.tank_temperature: external2`, as `heater_tank`.
    tank_sensor_on_xt2: bool = False

    def element_current(self, heat_w: FloatArray) -> FloatArray:
        """The primary element's current from its power (a resistor: P = I^2 R)."""
        amps: FloatArray = np.sqrt(np.maximum(heat_w, 0.0) / self.primary_ohm)
        return amps


def operating_point_on_resistor(
    array: PvArraySpec,
    resistance_ohm: float,
    irradiance_w_m2: FloatArray,
    cell_temperature_c: FloatArray,
    curve: IvCurve | None = None,
) -> tuple[FloatArray, FloatArray]:
    """(volts, amps) where the array's I-V curve meets V = I R (bisection on the voltage:
    the array's current falls with voltage and the element's rises, so there is one root).
    `curve`: the array's curve at these steps, when the caller has it already."""
    if curve is None:
        curve = iv_curve(array, irradiance_w_m2, cell_temperature_c)
    low: FloatArray = np.zeros(irradiance_w_m2.shape, dtype=np.float64)
    high: FloatArray = np.full(irradiance_w_m2.shape, array.panel.voc_v * 1.5, dtype=np.float64)
    for _ in range(_BISECTION_STEPS):
        middle: FloatArray = (low + high) * 0.5
        surplus = curve.current_at(middle) > (middle / resistance_ohm)
        low = np.where(surplus, middle, low).astype(np.float64)
        high = np.where(surplus, high, middle).astype(np.float64)
    volts: FloatArray = (low + high) * 0.5
    amps: FloatArray = volts * (1.0 / resistance_ohm)
    return volts, amps


@dataclass(frozen=True, slots=True)
class ArrayFlows:
    """One array over a block, per step: amps into the battery, watts into its element, and
    what it could give at the pack voltage (amps) whatever the switches."""

    battery_a: FloatArray
    heat_w: FloatArray
    available_a: FloatArray


def array_flows(
    array: PvArraySpec | None,
    *,
    battery_on: bool,
    heat_ohm: float | None,
    pack_voltage: float,
    irradiance_w_m2: FloatArray,
    cell_temperature_c: FloatArray,
    curve: IvCurve | None = None,
) -> ArrayFlows:
    """`heat_ohm`: the element's resistance while its path conducts and its thermostat is
    closed, else None. `curve`: the array's I-V curve at these steps, when the caller has it
    (made from the irradiance and cell temperature otherwise)."""
    zeros = np.zeros_like(irradiance_w_m2)
    if array is None:
        return ArrayFlows(zeros, zeros, zeros)
    if curve is None:
        curve = iv_curve(array, irradiance_w_m2, cell_temperature_c)
    at_pack = np.maximum(curve.current_at(pack_voltage), 0.0)
    if heat_ohm is None:
        return ArrayFlows(at_pack if battery_on else zeros, zeros, at_pack)
    volts, amps = operating_point_on_resistor(
        array, heat_ohm, irradiance_w_m2, cell_temperature_c, curve
    )
    alone_w: FloatArray = volts * amps
    if not battery_on:
        return ArrayFlows(zeros, alone_w, at_pack)
    element_a = pack_voltage / heat_ohm
    shared = at_pack >= element_a  # the battery clamps the array: the diode conducts
    battery: FloatArray = np.where(shared, at_pack - element_a, 0.0)
    heat: FloatArray = np.where(shared, pack_voltage * element_a, alone_w)
    return ArrayFlows(battery, heat, at_pack)


class WaterTank:
    """The tank's temperature, stepped a block at a time (its time constants are hours)."""

    def __init__(self, spec: WaterTankSpec) -> None:
        self.spec = spec
        self.temperature_c = spec.initial_c
        self.thermostat_closed = spec.initial_c < spec.thermostat_c
        self.heat_in_wh = 0.0
        self.lost_wh = 0.0  # through the insulation (the draws' heat is not counted)
        self.drawn_l = 0.0

    def update_thermostat(self) -> bool:
        """Open at the set temperature, close again below it by the hysteresis."""
        spec = self.spec
        if self.temperature_c >= spec.thermostat_c:
            self.thermostat_closed = False
        elif self.temperature_c <= spec.thermostat_c - spec.thermostat_hysteresis_c:
            self.thermostat_closed = True
        return self.thermostat_closed

    def draw_rate_l_per_s(self, local_hour: float) -> float:
        rate = 0.0
        for start, litres in self.spec.draws:
            if start <= local_hour % 24.0 < start + DRAW_MINUTES / 60.0:
                rate += litres / (DRAW_MINUTES * 60.0)
        return rate

    def step(self, heat_j: float, seconds: float, local_hour: float) -> None:
        """Explicit Euler over one block: heat in, standing loss, the draw's mixing."""
        spec = self.spec
        capacity = spec.volume_l * WATER_J_PER_KG_K
        drawn = min(self.draw_rate_l_per_s(local_hour) * seconds, spec.volume_l)
        loss = spec.loss_w_per_k * (self.temperature_c - spec.room_c) * seconds
        self.temperature_c += (heat_j - loss) / capacity
        # The drawn litres leave hot and come back at the inlet temperature, mixed at once.
        self.temperature_c += drawn / spec.volume_l * (spec.inlet_c - self.temperature_c)
        self.heat_in_wh += heat_j / 3600.0
        self.lost_wh += loss / 3600.0
        self.drawn_l += drawn
