"""A series LiFePO4 pack: per-cell capacity, charge, resistance, self-discharge and balancing.

The pack is stepped in blocks: the caller gives the pack current for every physics step of the
block (it is exogenous to the cells) and which cells the cell monitor is bleeding; the pack
returns the cell voltages at every step, so no excursion between samples goes unnoticed.

Pack SoC (what an agent's SoC should be compared against) is the *usable* state of charge:

    remaining_ah = min over cells of (cell SoC * cell capacity)      charge until the first cell
                                                                      is empty
    headroom_ah  = min over cells of ((1 - cell SoC) * capacity)     charge until the first cell
                                                                      is full
    soc          = remaining_ah / (remaining_ah + headroom_ah)

A cell's resting voltage is its curve's OCV (`PackSpec.curve`, see `cell_curves`) at its SoC,
plus half the hysteresis band times its hysteresis state (-1 discharge .. +1 charge branch),
plus a small per-cell offset (cells from one batch still differ by a few mV). Temperature does
not move it: OCV is thermodynamic (LiFePO4's entropic coefficient is a fraction of a mV per K).

What the cold takes is kinetic: resistance and polarisation rise (`CellParameters`), so under
load a cold cell sags to LVD with more charge still in it. `usable_*` say how much, following a
datasheet-style capacity-against-temperature table (`CellParameters.capacity_factor`, the
charge lost at the empty end); `soc_fraction` does not (as battery monitors report SoC, the
charge held over the capacity: it does not jump when the sun warms the box).

It is 100 % when the first cell is full (where an agent syncs at end of charge) and 0 % when the
first cell is empty (its low anchor); with balanced equal cells it equals the cell SoC, and in
general it is remaining_ah over the capacity the pack can actually cycle.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from edge_agent.simulator.cell_curves import SYNTHESIS, CellCurve
from edge_agent.simulator.lfp import (
    CellParameters,
    FloatArray,
    floats,
    hysteresis_state,
    polarisation_target,
    relax_polarisation,
)

REFERENCE_TEMPERATURE_C = 25.0

_SECONDS_PER_MONTH = 30.0 * 86400.0
MIN_CELLS, MAX_CELLS = 3, 8


@dataclass(frozen=True, slots=True)
class PackSpec:
    """A pack of identical-nominal cells in series; spreads are +- fractions, drawn per cell."""

    cell_count: int = 8
    capacity_ah: float = 100.0
    capacity_spread: float = 0.02
    initial_soc: float = 0.5  # fraction
    soc_spread: float = 0.02  # fraction of SoC, +-
    pack_resistance_ohm: float = 0.005  # DC, cells and busbars; split over the cells
    resistance_spread: float = 0.10
    self_discharge_per_month: float = 0.02  # the worst cell; others draw 25..100 % of it
    balance_resistor_ohm: float = 24.0
    cell: CellParameters = field(default_factory=CellParameters)
    curve: CellCurve = SYNTHESIS
    ocv_offset_spread_v: float = 0.0  # +- per cell, drawn once (lfp.REAL_OCV_SPREAD_V)
    # A top-balanced pack (the state a balancer keeps a pack in): every cell lacks the same
    # charge to full, so they reach the top together; soc_spread is then not drawn on.
    top_balanced: bool = False

    def __post_init__(self) -> None:
        if not MIN_CELLS <= self.cell_count <= MAX_CELLS:
            raise ValueError(f"cell_count must be {MIN_CELLS}..{MAX_CELLS}")
        if self.capacity_ah <= 0 or self.pack_resistance_ohm < 0:
            raise ValueError("capacity must be positive and resistance not negative")
        if not 0.0 <= self.self_discharge_per_month <= 0.03:
            raise ValueError("self-discharge must be 0..3 %/month for LFP")


@dataclass(frozen=True, slots=True)
class PackCharge:
    """The pack's charge figures at one moment (see `Pack`'s properties of the same names)."""

    soc_fraction: float
    remaining_ah: float
    capacity_ah: float
    usable_soc_fraction: float
    usable_capacity_ah: float


class Pack:
    """Mutable pack state; `step_block` is the only thing that moves it forward."""

    def __init__(self, spec: PackSpec, rng: np.random.Generator) -> None:
        self.spec = spec
        n = spec.cell_count
        self.capacities_ah: FloatArray = spec.capacity_ah * (
            1.0 + rng.uniform(-spec.capacity_spread, spec.capacity_spread, n)
        )
        self.resistances_ohm: FloatArray = (spec.pack_resistance_ohm / n) * (
            1.0 + rng.uniform(-spec.resistance_spread, spec.resistance_spread, n)
        )
        monthly = spec.self_discharge_per_month * rng.uniform(0.25, 1.0, n)
        # A constant leak: monthly fraction of capacity spread over a month, in amps.
        self.self_discharge_a: FloatArray = np.asarray(
            monthly * self.capacities_ah * 3600.0 / _SECONDS_PER_MONTH, dtype=np.float64
        )
        self.soc: FloatArray = spec.initial_soc + rng.uniform(-spec.soc_spread, spec.soc_spread, n)
        if spec.top_balanced:
            missing_ah = (1.0 - spec.initial_soc) * spec.capacity_ah
            self.soc = np.clip(1.0 - missing_ah / self.capacities_ah, 0.0, 1.0)
        # Drawn after the older draws, so a seed still gives the same cells as before.
        self.ocv_offsets_v: FloatArray = rng.uniform(
            -spec.ocv_offset_spread_v, spec.ocv_offset_spread_v, n
        )
        self.hysteresis: FloatArray = np.zeros(n)  # -1 discharge .. +1 charge branch
        self.temperature_c = REFERENCE_TEMPERATURE_C
        self.polarisation_v: FloatArray = np.zeros(n)
        self.cell_currents_a: FloatArray = np.zeros(n)
        self.cell_voltages: FloatArray = self._terminal_voltages(
            self.soc[None, :], self.cell_currents_a[None, :], self.polarisation_v[None, :],
            self.hysteresis[None, :], self.temperature_c,
        )[0]  # fmt: skip
        self.max_cell_voltage_seen = float(self.cell_voltages.max())
        self.min_cell_voltage_seen = float(self.cell_voltages.min())
        self.bled_ah: FloatArray = np.zeros(n)  # charge each cell lost to its balance resistor

    @property
    def cell_count(self) -> int:
        return self.spec.cell_count

    @property
    def pack_voltage(self) -> float:
        return float(np.add.reduce(self.cell_voltages, axis=None))

    @property
    def open_circuit_voltages(self) -> FloatArray:
        """Each cell's resting voltage now: curve, hysteresis branch, offset."""
        result: FloatArray = self._ocv(self.soc[None, :], self.hysteresis[None, :])[0]
        return result

    @property
    def rest_voltage(self) -> float:
        """The pack voltage without its resistive drop: OCV plus polarisation of every cell."""
        return float((self.open_circuit_voltages + self.polarisation_v).sum())

    @property
    def cold_loss(self) -> float:
        """Fraction of each cell's capacity it cannot deliver at the present temperature."""
        return 1.0 - self.spec.cell.capacity_factor(self.temperature_c)

    @property
    def remaining_ah(self) -> float:
        """Charge the pack holds before its first cell is empty."""
        return max(0.0, float(np.minimum.reduce(self.soc * self.capacities_ah, axis=None)))

    @property
    def headroom_ah(self) -> float:
        """Charge the pack can take before its first cell is full."""
        return max(0.0, float(np.minimum.reduce((1.0 - self.soc) * self.capacities_ah, axis=None)))

    @property
    def capacity_ah(self) -> float:
        """The charge the pack can cycle between its first empty and its first full cell."""
        return self.remaining_ah + self.headroom_ah

    @property
    def soc_fraction(self) -> float:
        """Pack SoC (see the module docstring), 0..1."""
        return _fraction(self.remaining_ah, self.headroom_ah)

    @property
    def usable_remaining_ah(self) -> float:
        """Charge the pack can deliver at its temperature before its first cell is empty."""
        usable = (self.soc - self.cold_loss) * self.capacities_ah
        return max(0.0, float(np.minimum.reduce(usable, axis=None)))

    @property
    def usable_capacity_ah(self) -> float:
        return self.usable_remaining_ah + self.headroom_ah

    @property
    def usable_soc_fraction(self) -> float:
        """Like `soc_fraction`, of what the pack can deliver at its temperature."""
        return _fraction(self.usable_remaining_ah, self.headroom_ah)

    def charge_figures(self) -> PackCharge:
        """`soc_fraction`, `remaining_ah`, `capacity_ah` and their `usable_` twins at once, from
        one reading of each minimum (the box's truth takes them after every sample)."""
        # On Python floats: the same products and minima as the properties' numpy arrays
        # (IEEE arithmetic either way), without a dozen calls on 3..8-element arrays.
        cold_loss = self.cold_loss
        remaining = headroom = usable_remaining = math.inf
        for soc, capacity in zip(floats(self.soc), floats(self.capacities_ah), strict=True):
            remaining = min(remaining, soc * capacity)
            headroom = min(headroom, (1.0 - soc) * capacity)
            usable_remaining = min(usable_remaining, (soc - cold_loss) * capacity)
        remaining, headroom = max(0.0, remaining), max(0.0, headroom)
        usable_remaining = max(0.0, usable_remaining)
        return PackCharge(
            soc_fraction=_fraction(remaining, headroom),
            remaining_ah=remaining,
            capacity_ah=remaining + headroom,
            usable_soc_fraction=_fraction(usable_remaining, headroom),
            usable_capacity_ah=usable_remaining + headroom,
        )

    def reset_extremes(self) -> None:
        self.max_cell_voltage_seen = float(self.cell_voltages.max())
        self.min_cell_voltage_seen = float(self.cell_voltages.min())

    def bleed_currents(self, balancing: FloatArray) -> FloatArray:
        """Balance-resistor current per cell (amps) for a 0/1 mask, at the present voltages."""
        result: FloatArray = np.asarray(
            balancing * self.cell_voltages / self.spec.balance_resistor_ohm, dtype=np.float64
        )
        return result

    def _ocv(self, soc: FloatArray, hysteresis: FloatArray) -> FloatArray:
        """Resting voltages for (steps, cells) arrays of SoC and hysteresis state (at any
        temperature: see the module docstring)."""
        result: FloatArray = (
            self.spec.curve.ocv(soc)
            + hysteresis * (0.5 * self.spec.cell.hysteresis_v)
            + self.ocv_offsets_v[None, :]
        )
        return result

    def _terminal_voltages(
        self,
        soc: FloatArray,
        cell_current_a: FloatArray,
        polarisation_v: FloatArray,
        hysteresis: FloatArray,
        temperature_c: float,
    ) -> FloatArray:
        """OCV + I x R + polarisation (current positive = charging raises the voltage)."""
        resistance = self.resistances_ohm[None, :] * self.spec.cell.resistance_factor(temperature_c)
        result: FloatArray = (
            self._ocv(soc, hysteresis) + cell_current_a * resistance + polarisation_v
        )
        return result

    def step_block(
        self,
        pack_current_a: FloatArray,
        dt_s: float,
        balancing: FloatArray,
        temperature_c: float = REFERENCE_TEMPERATURE_C,
    ) -> FloatArray:
        """Move `len(pack_current_a)` steps of `dt_s` forward; returns the pack voltage at the
        end of every step.

        pack_current_a: current into the pack's terminals per step (positive = charging).
        balancing: 0/1 per cell, held for the block; a bleeding cell loses V/R through its
        resistor (evaluated at the block's start voltage: it moves by millivolts in a block).
        temperature_c: the cells' temperature, held for the block (resistance, usable capacity).
        """
        self.temperature_c = temperature_c
        params = self.spec.cell
        # No cell bleeding (most blocks): the leak is the self-discharge alone, exactly what
        # adding zero bleed currents gives, without the arrays.
        bleeding = bool(np.logical_or.reduce(balancing, axis=None))
        leak = (
            self.bleed_currents(balancing) + self.self_discharge_a
            if bleeding
            else (self.self_discharge_a)
        )
        cell_current = pack_current_a[:, None] - leak[None, :]
        stored_current = np.where(cell_current > 0.0, cell_current * params.charge_efficiency,
                                  cell_current)  # fmt: skip
        soc = self.soc[None, :] + stored_current.cumsum(axis=0) * (
            dt_s / 3600.0 / self.capacities_ah[None, :]
        )
        # The cold raises polarisation like the ohmic resistance (the same Arrhenius factor).
        target = polarisation_target(cell_current, self.capacities_ah[None, :], params)
        target = target * params.resistance_factor(temperature_c)
        polarisation = relax_polarisation(
            self.polarisation_v, target, dt_s, params.polarisation_tau_s
        )
        hysteresis = hysteresis_state(
            self.hysteresis, stored_current, dt_s, self.capacities_ah, params
        )
        voltages = self._terminal_voltages(
            soc, cell_current, polarisation, hysteresis, temperature_c
        )
        self.soc = soc[-1].copy()
        self.hysteresis = hysteresis[-1].copy()
        self.polarisation_v = polarisation[-1].copy()
        self.cell_currents_a = cell_current[-1].copy()
        self.cell_voltages = voltages[-1].copy()
        if bleeding:
            self.bled_ah += (leak - self.self_discharge_a) * (len(pack_current_a) * dt_s / 3600.0)
        # The ufuncs' reductions themselves: what .max(), .min() and .sum() call, without
        # their wrappers (this runs every physics block).
        highest = float(np.maximum.reduce(voltages, axis=None))
        lowest = float(np.minimum.reduce(voltages, axis=None))
        self.max_cell_voltage_seen = max(self.max_cell_voltage_seen, highest)
        self.min_cell_voltage_seen = min(self.min_cell_voltage_seen, lowest)
        pack_voltages: FloatArray = np.add.reduce(voltages, axis=1)
        return pack_voltages


def _fraction(remaining_ah: float, headroom_ah: float) -> float:
    total = remaining_ah + headroom_ah
    if total <= 0.0:
        # Cells are so far apart that one is full while another is empty.
        return 0.0 if remaining_ah <= 0.0 else 1.0
    return remaining_ah / total
