"""LiFePO4 cell physics: the resting OCV curve and a one-RC-branch cell model.

Everything works on numpy arrays (or plain floats) so the pack can step many cells over many
physics steps at once. State of charge is a fraction (1.0 = full); it may leave [0, 1] when a
cell is pushed past full or empty, and the OCV curve is extended steeply there so an
unprotected cell shoots past the protection limits as a real one does.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import overload

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Resting OCV at 25 C (hardware-facts.md), with 3.42 V chosen for 100 %.
_TABLE_SOC = (0.0, 0.02, 0.05, 0.10, 0.20, 0.30, 0.40, 0.50, 0.60, 0.70, 0.80, 0.90, 0.98, 1.0)
_TABLE_OCV = (
    2.50, 2.90, 3.08, 3.20, 3.24, 3.27, 3.285, 3.295, 3.305, 3.315, 3.325, 3.335, 3.35, 3.42,
)  # fmt: skip

# Beyond the table: an overcharged cell reaches 3.65 V within ~1 % past full and keeps rising;
# an over-discharged cell collapses below 2.5 V. The curve is flat beyond its end points (0 V
# and 5 V: a destroyed cell) so an unprotected run stays finite.
_OVERCHARGE_SOC = (1.005, 1.01, 1.02, 1.04, 1.10)
_OVERCHARGE_OCV = (3.52, 3.65, 3.85, 4.20, 5.00)
_OVERDISCHARGE_SOC = (-0.15, -0.10, -0.04, -0.02, -0.01)
_OVERDISCHARGE_OCV = (0.0, 0.50, 1.50, 2.00, 2.30)

OCV_SOC_POINTS: FloatArray = np.array(
    _OVERDISCHARGE_SOC + _TABLE_SOC + _OVERCHARGE_SOC, dtype=np.float64
)
OCV_VOLT_POINTS: FloatArray = np.array(
    _OVERDISCHARGE_OCV + _TABLE_OCV + _OVERCHARGE_OCV, dtype=np.float64
)
# The published table alone, for tests and documentation.
OCV_TABLE: tuple[tuple[float, float], ...] = tuple(zip(_TABLE_SOC, _TABLE_OCV, strict=True))


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
    powers = decay ** np.arange(1, target_v.shape[0] + 1, dtype=np.float64)
    weighted = np.cumsum(target_v * ((1.0 - decay) / powers)[:, None], axis=0)
    result: FloatArray = powers[:, None] * (initial_v[None, :] + weighted)
    return result
