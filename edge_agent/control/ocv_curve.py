"""The resting-voltage curve the SoC estimator reads, and how far a reading on it can be trusted.

Two kinds of curve:

* the built-in synthesis (`lfp_ocv.OCV_TABLE`), which is not the user's cell. Published LiFePO4
  curves agree at the top and disagree at the bottom: at 3.00 V they give 0 to 5.2 % and at
  3.20 V 10 to 20 % (docs/soc.md has the table). So the built-in curve is read only at its very
  ends, with the measured disagreement as part of the reading's uncertainty;
* a curve configured from the cell's datasheet (`battery.ocv_curve`), read wherever it is steep
  enough for a voltage to say something (its own slope decides).

A reading's uncertainty (one sigma, SoC points) = the voltage's uncertainty (what is not known
of the OCV hysteresis once the branch the cell rests on is taken out, cell-to-cell offsets)
divided by the curve's local slope, plus the curve's own uncertainty where it is the built-in one.
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass
from itertools import pairwise

from edge_agent.control.lfp_ocv import OCV_TABLE, interpolate

# OCV hysteresis: a rested LiFePO4 cell sits on its charge or its discharge branch, 5-25 mV
# apart (ACCURE: LFP plateaus after long rests), depending on which way charge last flowed; a
# published table gives neither branch, so it is read as the middle. Which branch is known
# (`branch`: -1 after a discharge, +1 after a charge, between while crossing); how far apart
# they are is not: half of 5-25 mV is 2.5-12.5 mV, read as its middle with the spread's sigma.
# (A generic11 pack, whose empty end climbs only 12 mV a point, read 1.1 points low at every
# rest after LVD while the table was taken as the discharge branch's voltage.)
HYSTERESIS_HALF_GAP_V = 0.0075
HYSTERESIS_HALF_GAP_SIGMA_V = 0.0029  # a uniform 2.5-12.5 mV
# The rest of a rested cell's voltage against its curve: cells of a batch differ by a few mV,
# the lowest of several is a little low for that alone, and the reading is one noisy sample.
CELL_VOLTAGE_SIGMA_V = 0.003

# Built-in curve: where published curves agree well enough to read it, and how well (SoC points,
# one sigma). Measured against three published tables (docs/soc.md): at and below 3.10 V they
# differ from the synthesis by at most 3.7 points; above 3.38 V by at most 3.1.
BUILTIN_BOTTOM_MAX_SOC = 6.0
BUILTIN_TOP_MIN_SOC = 98.5
BUILTIN_CURVE_SIGMA_PCT = 2.0

# Configured curve: readable where it climbs at least this much per SoC point; the datasheet and
# the cell on the bench still differ a little.
MIN_SLOPE_V_PER_PCT = 0.002
CONFIGURED_CURVE_SIGMA_PCT = 0.5

MIN_POINTS = 4
VOLTS_RANGE = (2.0, 3.65)  # a LiFePO4 curve lies within the chemistry's envelope


@dataclass(frozen=True, slots=True)
class OcvReading:
    soc: float  # percent
    sigma: float  # one sigma, SoC points


@dataclass(frozen=True, slots=True)
class OcvCurve:
    """(SoC %, volts) from 0 to 100 %, both strictly increasing."""

    points: tuple[tuple[float, float], ...]
    configured: bool  # from the user's datasheet; False: the built-in synthesis

    def __post_init__(self) -> None:
        problem = curve_problem(self.points)
        if problem is not None:
            raise ValueError(problem)

    def soc(self, volts: float) -> float:
        """SoC (percent) of a rested cell at this voltage, clamped to 0..100."""
        return interpolate(
            volts, tuple(v for _, v in self.points), tuple(s for s, _ in self.points)
        )

    def volts(self, soc_percent: float) -> float:
        return interpolate(
            soc_percent, tuple(s for s, _ in self.points), tuple(v for _, v in self.points)
        )

    def slope(self, soc_percent: float) -> float:
        """Volts per SoC point of the segment holding this SoC."""
        socs = [s for s, _ in self.points]
        upper = min(len(socs) - 1, max(1, bisect.bisect_right(socs, soc_percent)))
        (s0, v0), (s1, v1) = self.points[upper - 1], self.points[upper]
        return (v1 - v0) / (s1 - s0)

    def reading(
        self, volts: float, extra_volts_sigma: float = 0.0, branch: float = 0.0
    ) -> OcvReading | None:
        """What a resting voltage says about SoC, or None where this curve cannot tell.

        branch: the hysteresis branch the cell rests on (-1 discharge .. +1 charge, 0 not
        known); its expected offset from the table is taken out, the rest counts as sigma."""
        branch = min(1.0, max(-1.0, branch))
        known = abs(branch)
        volts -= branch * HYSTERESIS_HALF_GAP_V
        hysteresis_sigma = known * HYSTERESIS_HALF_GAP_SIGMA_V + (1.0 - known) * (
            HYSTERESIS_HALF_GAP_V
        )
        volts_sigma = math.hypot(CELL_VOLTAGE_SIGMA_V, hysteresis_sigma) + extra_volts_sigma
        soc = self.soc(volts)
        if self.configured:
            slope = self.slope(soc)
            if slope < MIN_SLOPE_V_PER_PCT:
                return None
            curve_sigma = CONFIGURED_CURVE_SIGMA_PCT
        else:
            if BUILTIN_BOTTOM_MAX_SOC < soc < BUILTIN_TOP_MIN_SOC:
                return None
            slope = self.slope(soc)
            curve_sigma = BUILTIN_CURVE_SIGMA_PCT
        sigma = curve_sigma + volts_sigma / slope
        return OcvReading(soc, sigma)


def curve_problem(points: tuple[tuple[float, float], ...]) -> str | None:
    """What is wrong with a curve table, in words, or None."""
    if len(points) < MIN_POINTS:
        return f"needs at least {MIN_POINTS} [soc, volts] points, got {len(points)}"
    socs = [s for s, _ in points]
    volts = [v for _, v in points]
    if socs[0] != 0.0 or socs[-1] != 100.0:
        return f"must run from SoC 0 to 100 %, runs from {socs[0]:g} to {socs[-1]:g}"
    low, high = VOLTS_RANGE
    if not all(low <= v <= high for v in volts):
        return (
            f"voltages must lie within {low:g}..{high:g} V for LiFePO4, "
            f"got {min(volts):g}..{max(volts):g} V"
        )
    for (s0, v0), (s1, v1) in pairwise(points):
        if s1 <= s0:
            return f"SoC must increase: {s1:g} % follows {s0:g} %"
        if v1 <= v0:
            return f"voltage must increase with SoC: {v1:g} V at {s1:g} % follows {v0:g} V"
    return None


BUILTIN_CURVE = OcvCurve(OCV_TABLE, configured=False)
