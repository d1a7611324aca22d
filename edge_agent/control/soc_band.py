"""How sure the SoC estimate is: one sigma in SoC points, and the published 95 % band.

Since the last anchor (a full sync, or a reading that moved the estimate), the count's error grows
from independent sources, each systematic within itself (so each grows linearly) and combined
as a root sum of squares:

* the anchor's own uncertainty;
* the residual current-sense offset, over the hours since the anchor;
* the capacity's uncertainty and the shunt's gain error, over the distance counted from the
  anchor's SoC (a capacity error c shows as c times the SoC points counted);
* the charge efficiency's uncertainty, over the charge put in since the anchor.

At an anchor the estimate and the reading are combined by their uncertainties (a scalar Kalman
update), so a good reading moves the estimate most of the way and a poor one a little. The
published band then narrows only to the better of the two, not below it (`floor`): a
resting-voltage reading's error repeats from one rest to the next (the same curve against the
same cells, the same hysteresis branch after the same kind of discharge, the same cell offsets),
so readings do not average it away, and a band that shrank with every LVD night would end up
narrower than that error. The weighting keeps the Kalman sigma, which does shrink: a second
reading of the same kind brings no news about that error, so it should move the estimate less.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

GAIN_SIGMA = 0.005  # of the counted charge: a shunt's tolerance with its monitor's gain error
EFFICIENCY_SIGMA = 0.002  # of the charge put in: coulombic efficiency 99.3-99.7 %
BAND_SIGMAS = 1.96  # the published band is about 95 %
MAX_HALF_WIDTH = 50.0

FULL_SYNC_SIGMA = 0.5  # an end of charge at tail current, or HVD: within a point of full
OPERATOR_FULL_SIGMA = 1.0
OPERATOR_SET_SIGMA = 5.0  # a person's value; how sure they were is not known
UNKNOWN_SIGMA = 25.0  # a new install: anywhere


@dataclass(frozen=True, slots=True)
class BandInputs:
    anchor_sigma: float  # SoC points
    hours_since_anchor: float
    offset_sigma_a: float
    capacity_ah: float
    capacity_sigma_ah: float
    points_from_anchor: float  # |SoC now - SoC at the anchor|
    charge_in_since_anchor_ah: float


def sigma(inputs: BandInputs) -> float:
    capacity = inputs.capacity_ah
    offset_part = 100.0 * inputs.offset_sigma_a * inputs.hours_since_anchor / capacity
    scale_part = inputs.points_from_anchor * math.hypot(
        inputs.capacity_sigma_ah / capacity, GAIN_SIGMA
    )
    efficiency_part = 100.0 * EFFICIENCY_SIGMA * inputs.charge_in_since_anchor_ah / capacity
    return math.sqrt(inputs.anchor_sigma**2 + offset_part**2 + scale_part**2 + efficiency_part**2)


def half_width(one_sigma: float) -> float:
    """The published uncertainty: half the width of the ~95 % band, SoC points."""
    return min(MAX_HALF_WIDTH, BAND_SIGMAS * one_sigma)


@dataclass(frozen=True, slots=True)
class Combined:
    soc: float
    sigma: float


def combine(
    estimate: float, estimate_sigma: float, reading: float, reading_sigma: float
) -> Combined:
    """Inverse-variance weighting of the count and a reading."""
    estimate_var, reading_var = estimate_sigma**2, reading_sigma**2
    weight = estimate_var / (estimate_var + reading_var)
    return Combined(
        soc=estimate + weight * (reading - estimate),
        sigma=math.sqrt(estimate_var * reading_var / (estimate_var + reading_var)),
    )


def floor(published_sigma: float, reading_sigma: float) -> float:
    """What the published band may narrow to at a reading: the better of the two (see the
    module docstring: a reading's error repeats, so readings do not average it away)."""
    return min(published_sigma, reading_sigma)
