"""LiFePO4 cell physics: the resting OCV curve and a one-RC-branch cell model.

Everything works on numpy arrays (or plain floats) so the pack can step many cells over many
physics steps at once. State of charge is a fraction (1.0 = full); it may leave [0, 1] when a
cell is pushed past full or empty, and the OCV curve is extended steeply there so an
unprotected cell shoots past the protection limits as a real one does.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from typing import cast, overload

import numpy as np
from numpy.typing import NDArray

from edge_agent.simulator.cell_curves import SYNTHESIS

FloatArray = NDArray[np.float64]

# Resting OCV at 25 C of the default curve (hardware-facts.md, with 3.42 V chosen for 100 %) and
# its steep tails: see `cell_curves` for the published curves a box can use instead.
OCV_SOC_POINTS, OCV_VOLT_POINTS = SYNTHESIS.points
# The published table alone, for tests and documentation.
OCV_TABLE: tuple[tuple[float, float], ...] = SYNTHESIS.table


def floats(values: FloatArray) -> list[float]:
    """A 1-D array's elements as Python floats: what float() of each gives, in one call."""
    return cast(list[float], values.tolist())


@overload
def open_circuit_voltage(soc: float) -> float: ...
@overload
def open_circuit_voltage(soc: FloatArray) -> FloatArray: ...
def open_circuit_voltage(soc: float | FloatArray) -> float | FloatArray:
    """Resting cell voltage for a state of charge (fraction); 0..5 V, flat beyond."""
    result = np.interp(soc, OCV_SOC_POINTS, OCV_VOLT_POINTS)
    if isinstance(soc, np.ndarray):
        return result
    return float(result)


@overload
def soc_from_open_circuit_voltage(volts: float) -> float: ...
@overload
def soc_from_open_circuit_voltage(volts: FloatArray) -> FloatArray: ...
def soc_from_open_circuit_voltage(volts: float | FloatArray) -> float | FloatArray:
    """Inverse of `open_circuit_voltage` (strictly increasing between its end points)."""
    result = np.interp(volts, OCV_VOLT_POINTS, OCV_SOC_POINTS)
    if isinstance(volts, np.ndarray):
        return result
    return float(result)


@dataclass(frozen=True, slots=True)
class CellParameters:
    """The dynamic part of an LFP cell, scaled by capacity (C-rate) so it fits any cell size.

    Terminal voltage = OCV(SoC) + I * R_ohmic + polarisation (R_ohmic comes from the pack, which
    owns the busbars), with polarisation a
    first-order lag towards `polarisation_target(I)`. The target is an asinh (Butler-Volmer
    like) curve rather than a resistor: about 25 mV at C/20 and 70 mV at C/2, so a slow charge
    sits ~28 mV above OCV (facts file) without a fast one being absurd.
    """

    polarisation_scale_v: float = 0.0195
    polarisation_knee_c_rate: float = 0.030  # C-rate where the asinh bends from linear to log
    polarisation_tau_s: float = 1200.0  # 20 min: relaxed to within a few mV after 90 min
    charge_efficiency: float = 0.995  # coulombic efficiency applied to charge going in
    # The real-cell effects below are off by default (the idealised cell every older run used);
    # `REAL_CELL` turns them on with sourced values (issue 16).
    hysteresis_v: float = 0.0  # gap between the charge and the discharge OCV branch
    hysteresis_soc: float = 0.03  # throughput that moves a cell most of the way across
    resistance_activation_k: float = 0.0  # Ea / k of the Arrhenius resistance factor
    capacity_vs_temperature: tuple[tuple[float, float], ...] = ((25.0, 1.0),)  # C, fraction

    def resistance_factor(self, temperature_c: float) -> float:
        """Resistance at `temperature_c` relative to 25 C (Arrhenius)."""
        kelvin = max(temperature_c, -40.0) + 273.15
        return math.exp(self.resistance_activation_k * (1.0 / kelvin - 1.0 / 298.15))

    def capacity_factor(self, temperature_c: float) -> float:
        """Usable capacity at `temperature_c` relative to 25 C (1.0 at and above 25 C)."""
        if len(self.capacity_vs_temperature) == 1:  # the idealised cell's: one flat value
            return float(self.capacity_vs_temperature[0][1])
        temps, factors = _table_columns(self.capacity_vs_temperature)
        return float(np.interp(temperature_c, temps, factors))


@functools.cache
def _table_columns(
    table: tuple[tuple[float, float], ...],
) -> tuple[FloatArray, FloatArray]:
    """A (x, y) table as np.interp's two arrays, made once per table (the box's truth asks
    for the capacity factor after every sample)."""
    xs = np.array([x for x, _ in table], dtype=np.float64)
    ys = np.array([y for _, y in table], dtype=np.float64)
    xs.flags.writeable = False
    ys.flags.writeable = False
    return xs, ys


# A real LFP cell (issue 16):
# - OCV hysteresis 20 mV, inside the 5-25 mV that ACCURE reports for LFP plateaus after long
#   rests (https://www.accure.net/blogs/battery-hysteresis-effect, "What Is OCV Hysteresis");
#   the cell moves from one branch to the other as charge flows the other way, most of the way
#   within `hysteresis_soc` of throughput (Plett's one-state hysteresis model).
# - Resistance (ohmic and polarisation) rising in the cold like exp(Ea/k (1/T - 1/T25)) with
#   Ea/k = 1346 K, LFP's 0.116 eV (https://iestbattery.com/activation-energy-arrhenius-plot-
#   conductivity-battery/, "Key Takeaways"): 1.4x at 5 C, 2.2x at -20 C.
# - Usable capacity against temperature, lost at the empty end (a cold cell reaches its
#   cut-off earlier). The shape follows the 0.3 C test of
#   https://lithink.com/blogs/news/in-depth-analysis-temperature-behavior-of-lifepo4-batteries
#   (sample 2: 80 % at 0 C, 66 % at -10 C, 44 % at -20 C) with the loss halved, because a
#   solar pack discharges at C/20..C/5 (an assumption, not a measurement).
REAL_CELL = CellParameters(
    hysteresis_v=0.020,
    resistance_activation_k=1346.0,
    capacity_vs_temperature=(
        (-20.0, 0.72), (-10.0, 0.83), (0.0, 0.90), (10.0, 0.96), (25.0, 1.0),
    ),
)  # fmt: skip
REAL_OCV_SPREAD_V = 0.003  # +- per cell: cells of one batch still differ by a few mV at rest


def terminal_voltage(
    soc: FloatArray, current_a: FloatArray, polarisation_v: FloatArray, resistance_ohm: FloatArray
) -> FloatArray:
    """Cell terminal voltage; current positive = charging (raises the voltage)."""
    result: FloatArray = open_circuit_voltage(soc) + current_a * resistance_ohm + polarisation_v
    return result


def polarisation_target(
    current_a: FloatArray, capacity_ah: FloatArray | float, params: CellParameters
) -> FloatArray:
    """Steady-state polarisation voltage for a constant current (sign follows the current)."""
    c_rate = current_a / capacity_ah
    result: FloatArray = np.asarray(
        params.polarisation_scale_v * np.arcsinh(c_rate / params.polarisation_knee_c_rate),
        dtype=np.float64,
    )
    return result


def relax_polarisation(
    initial_v: FloatArray, target_v: FloatArray, dt_s: float, tau_s: float
) -> FloatArray:
    """First-order lag over consecutive steps of `dt_s`: exact for a target held per step.

    `target_v` has shape (steps, cells); returns the polarisation after every step. Uses the
    closed form v[k] = a^k (v0 + sum_j a^-(j+1) (1 - a) u[j]) with a = exp(-dt / tau),
    vectorised as a cumulative sum.
    """
    decay = math.exp(-dt_s / tau_s)
    if target_v.shape[0] == 1:  # the common per-sample call: skip the cumulative machinery
        single: FloatArray = (decay * initial_v + (1.0 - decay) * target_v[0])[None, :]
        return single
    # Chunks keep a^-k below e^10, far from overflow and from losing precision.
    chunk = max(1, int(10.0 * tau_s / dt_s))
    if target_v.shape[0] <= chunk:  # a physics block: one chunk
        return _relax_chunk(initial_v, target_v, decay)
    pieces: list[FloatArray] = []
    start_v = initial_v
    for first in range(0, target_v.shape[0], chunk):
        piece = _relax_chunk(start_v, target_v[first : first + chunk], decay)
        pieces.append(piece)
        start_v = piece[-1]
    if len(pieces) == 1:
        return pieces[0]
    return np.concatenate(pieces, axis=0)


def _relax_chunk(initial_v: FloatArray, target_v: FloatArray, decay: float) -> FloatArray:
    powers, gains = _relax_factors(target_v.shape[0], decay)
    weighted = (target_v * gains).cumsum(axis=0)
    result: FloatArray = powers * (initial_v[None, :] + weighted)
    return result


@functools.lru_cache(maxsize=64)
def _relax_factors(steps: int, decay: float) -> tuple[FloatArray, FloatArray]:
    """a^k and (1 - a) / a^k for k = 1..steps, as columns: the same few block lengths come
    back every block, so they are worked out once."""
    powers = decay ** np.arange(1, steps + 1, dtype=np.float64)
    gains: FloatArray = np.asarray(((1.0 - decay) / powers)[:, None], dtype=np.float64)
    column = powers[:, None]
    column.flags.writeable = False
    gains.flags.writeable = False
    return column, gains


def hysteresis_state(
    initial: FloatArray,
    stored_current_a: FloatArray,
    dt_s: float,
    capacity_ah: FloatArray,
    params: CellParameters,
) -> FloatArray:
    """Hysteresis state after every step, -1 (discharge branch) .. +1 (charge branch).

    h moves towards sign(I) by exp(-|dQ| / (hysteresis_soc x capacity)) per step:
    h[k] = a[k] h[k-1] + (1 - a[k]) sign(I[k]), solved in closed form with cumulative sums
    (`stored_current_a` has shape (steps, cells)).
    """
    throughput = np.abs(stored_current_a) * (dt_s / 3600.0) / (capacity_ah * params.hysteresis_soc)
    target = np.sign(stored_current_a)
    decay = np.exp(-throughput)
    total = throughput.cumsum(axis=0)
    if float(np.maximum.reduce(total[-1])) < 50.0:  # total[-1].max(), without its wrapper
        weighted = ((1.0 - decay) * target * np.exp(total)).cumsum(axis=0)
        result: FloatArray = np.exp(-total) * (initial[None, :] + weighted)
        # np.clip's own bounds, without its wrapper's cost (this runs every physics block).
        clipped: FloatArray = np.minimum(np.maximum(result, -1.0), 1.0)
        return clipped
    states = np.empty_like(stored_current_a)  # a block moving many capacities: step by step
    state = initial.copy()
    for k in range(stored_current_a.shape[0]):
        state = decay[k] * state + (1.0 - decay[k]) * target[k]
        states[k] = state
    return states
