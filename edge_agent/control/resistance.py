"""The weakest cell's effective discharge resistance, learned online from load steps.

Every time the loads go off (an evening, a cloud on a charge-free day, LVD itself) the current
steps from a discharge to a rest. The voltage the lowest cell climbs back by, once it has
relaxed (`rest_time_s`), over the current it stopped carrying, is the resistance that matters
for reading a loaded cell: ohmic drop *and* the polarisation that a 10-30 s step would miss (in
LiFePO4 the polarisation at C/20 is several times the ohmic drop).

Polarisation is not linear in current (it bends like asinh), so a resistance is kept per current
band (powers of two of amps) and read only near the current it was learned at. A correction is
trusted when a band within a factor of two of the current has been learned at least twice.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

MIN_STEP_FRACTION = 0.02  # of capacity, amps: a smaller step says too little
MAX_DROP_V = 0.25  # a bigger recovery is not a resistance (a sensor glitch, a cell swap)
BLEND = 0.5  # a new learning of a band moves it halfway
MAX_BANDS = 8
MIN_LEARNINGS = 2
TRUST_RATIO = 2.0  # a band is read for currents within this factor of its own


@dataclass(frozen=True, slots=True)
class ResistanceBand:
    current_a: float  # |discharge current| it was learned at (latest blend)
    ohm: float
    learnings: int


@dataclass(frozen=True, slots=True)
class StepWatch:
    """A discharge that stopped: what the cell read under load, waiting for it to relax."""

    current_a: float  # negative: the discharge current before the step
    min_cell_v: float
    rest_since: float


@dataclass(frozen=True, slots=True)
class ResistanceState:
    bands: tuple[ResistanceBand, ...] = ()
    watch: StepWatch | None = None
    last_current_a: float | None = None
    last_min_cell_v: float | None = None


NO_RESISTANCE = ResistanceState()


def observe(
    state: ResistanceState,
    *,
    now: float,
    current_a: float,
    min_cell_v: float,
    rest_current_a: float,
    rest_time_s: float,
    capacity_ah: float,
    gap: bool,
) -> ResistanceState:
    """One good sample: start watching a step to rest, or finish one and learn from it."""
    resting = abs(current_a) < rest_current_a
    watch = state.watch
    if not resting or gap:
        watch = None
    elif watch is None:
        watch = _step_into_rest(state, now, rest_current_a, capacity_ah)
    elif now - watch.rest_since >= rest_time_s:
        state = _learn(state, watch, min_cell_v)
        watch = None
    return replace(state, watch=watch, last_current_a=current_a, last_min_cell_v=min_cell_v)


def correction_ohm(state: ResistanceState, current_a: float) -> float | None:
    """The resistance to read a cell under this discharge current with, or None if untrusted."""
    magnitude = abs(current_a)
    if magnitude <= 0.0:
        return 0.0
    candidates = [
        band
        for band in state.bands
        if band.learnings >= MIN_LEARNINGS
        and 1.0 / TRUST_RATIO <= band.current_a / magnitude <= TRUST_RATIO
    ]
    if not candidates:
        return None
    nearest = min(candidates, key=lambda band: abs(math.log(band.current_a / magnitude)))
    return nearest.ohm


def _step_into_rest(
    state: ResistanceState, now: float, rest_current_a: float, capacity_ah: float
) -> StepWatch | None:
    before, volts = state.last_current_a, state.last_min_cell_v
    if before is None or volts is None:
        return None
    step = max(MIN_STEP_FRACTION * capacity_ah, 2.0 * rest_current_a)
    if before > -step:
        return None
    return StepWatch(current_a=before, min_cell_v=volts, rest_since=now)


def _learn(state: ResistanceState, watch: StepWatch, relaxed_v: float) -> ResistanceState:
    drop = relaxed_v - watch.min_cell_v
    if not 0.0 < drop <= MAX_DROP_V:
        return state
    magnitude = -watch.current_a
    ohm = drop / magnitude
    key = _band_key(magnitude)
    bands = list(state.bands)
    for index, band in enumerate(bands):
        if _band_key(band.current_a) == key:
            bands[index] = ResistanceBand(
                current_a=band.current_a + BLEND * (magnitude - band.current_a),
                ohm=band.ohm + BLEND * (ohm - band.ohm),
                learnings=band.learnings + 1,
            )
            break
    else:
        bands.append(ResistanceBand(magnitude, ohm, 1))
        bands = sorted(bands, key=lambda band: band.current_a)[-MAX_BANDS:]
    return replace(state, bands=tuple(bands))


def _band_key(current_a: float) -> int:
    return math.floor(math.log2(current_a))
