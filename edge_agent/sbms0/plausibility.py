"""Cross-frame plausibility: a frame judged against the last accepted one. Pure (the caller
passes the time; no I/O, no clock).

The checksum is a plain sum of character values, so two errors that cancel (one cell +300 mV,
another -300 mV; or +1 on a cell's high character and -1 on its low one, +90 mV) pass it, and
so do the range checks. What such a frame cannot fake is physics between two frames:

- Cells in series carry the same current, so from one frame to the next they all move
  together: by the change of current times their resistance, plus the slow drift of their
  open-circuit voltage. A cell that moves apart from the median of its neighbours by more
  than noise, drift and the resistance difference of two cells times the current swing allow
  is damaged. A load step moves every cell the same way, so only the cells' resistance
  difference times the step remains. Should the cells show a step one frame before the
  current does, only the noise and drift allowances cover it (70 mV at 1 s: a 300 A step with
  cells 0.23 mOhm apart); a pack that unequal loses that one frame (counted), and the next
  frame, which carries the step's current, is accepted.
- Temperatures follow heat capacities: a board or a battery sensor does not move 9 C (one
  high character) in a second.
- The SBMS counts SoC from current: it moves slowly, except the jump to 100 % at the end of
  charge.

A stock frame carries no pack voltage (only cells), so there is no pack-versus-cells check;
nor is the pack's common movement bounded by the current's change, because the SBMS need not
sample cells and current at the same instant: an inverter starting may show in the cells one
frame before it shows in the current.

The history is only a guide while it is fresh: the first frame, a frame after a gap of more
than MAX_GAP_S, or a clock going backwards starts a new history unjudged. After
MAX_CONSECUTIVE_DROPS drops in a row the next frame is taken as the new reference anyway
(re-anchored, and counted): a change that persists is real, or the reference was wrong.
"""

from __future__ import annotations

import enum
import statistics
from dataclasses import dataclass

from edge_agent.sbms0.frame import CELL_INPUTS, SbmsFrame

# The SBMS makes one frame a second: two frames that arrive together (a serial read that held
# two lines, a page polled twice) were still measured about a second apart, or are the same.
MIN_ELAPSED_S = 1.0
# Beyond this the drift allowances below exceed anything the check could catch (20 mV/s for a
# cell: 600 mV in 30 s), so an older reference is not a guide any more.
MAX_GAP_S = 30.0
# A damaged line fails the checksum far more often than it passes it (every single damaged
# character fails it), so three checksum-valid frames in a row that disagree with the
# reference mean the reference is wrong or the change is real. At 1 s (serial) or 2 s (HTTP)
# a frame, three drops hold the reading for less than the default stale_after_s of 10 s.
MAX_CONSECUTIVE_DROPS = 3

# A cell against its neighbours, between two frames:
# - noise: two readings of the ISL94203's 12-bit cell ADC (1.17 mV a count, a few counts of
#   noise each) and the balancing current (up to 200 mA) switching in a sense lead: tens of
#   counts at most. 50 mV.
CELL_NOISE_MV = 50.0
# - drift: the steepest part of the LFP open-circuit curve is the empty knee, about 200 mV
#   per % SoC (2.90 V at 2 %, 2.50 V at 0 %, docs/hardware-facts); at 3C, more than LFP banks
#   are rated for continuously, that is 0.083 %/s, so a weak cell can run ahead of the others
#   by 17 mV/s: 20 mV/s.
CELL_DRIFT_MV_PER_S = 20.0
# - current: series cells differ in resistance (cell, busbar, sense lead). Large LFP cells are
#   0.2-0.5 mOhm DC, a pack with busbars about 5 mOhm for 8S; a weak cell or a poor busbar may
#   add 1 mOhm. 2 mOhm between two cells covers it twice: 2 mV per ampere of current swing.
CELL_SPREAD_MV_PER_A = 2.0

# Temperatures: the SBMS's board sensor and a battery thermistor have thermal masses that take
# minutes; 1 C/s is far beyond either, and 2 C covers the 0.1 C steps and sensor noise. One
# high character of the field is 9.1 C.
TEMPERATURE_NOISE_C = 2.0
TEMPERATURE_RATE_C_PER_S = 1.0

# SoC is the SBMS's coulomb count: 10C (100 % in six minutes, ten times what an LFP bank is
# rated for continuously, to cover a capacity set too small in the SBMS) is 0.28 %/s; 2 %
# covers the integer steps. The end-of-charge sync sets 100 % at once (SBMS0 manual 11.1).
SOC_NOISE_PERCENT = 2.0
SOC_RATE_PERCENT_PER_S = 10 * 100 / 3600
SOC_FULL = 100


class Verdict(enum.Enum):
    ACCEPTED = "accepted"  # plausible against the reference; it becomes the reference
    ANCHORED = "anchored"  # no usable reference (first frame, gap, clock back): taken unjudged
    REANCHORED = "reanchored"  # implausible, but after MAX_CONSECUTIVE_DROPS drops: taken
    DROPPED = "dropped"  # implausible: not to be published


@dataclass(frozen=True, slots=True)
class Judgement:
    verdict: Verdict
    reason: str | None = None  # why the frame disagrees with the reference (dropped, re-anchored)

    @property
    def accepted(self) -> bool:
        return self.verdict is not Verdict.DROPPED


@dataclass(frozen=True, slots=True)
class _Reference:
    frame: SbmsFrame
    at: float
    earlier_ma: int | None  # battery current of the accepted frame before it, same history


class CrossFrameCheck:
    """Judges each decoded frame against the last accepted one (`judge(frame, now)`)."""

    def __init__(
        self,
        cell_count: int,
        *,
        max_drops: int = MAX_CONSECUTIVE_DROPS,
        max_gap_s: float = MAX_GAP_S,
    ) -> None:
        self._inputs = CELL_INPUTS[cell_count]
        self._max_drops = max_drops
        self._max_gap_s = max_gap_s
        self._reference: _Reference | None = None
        self._drops = 0

    def judge(self, frame: SbmsFrame, now: float) -> Judgement:
        """`now`: when the frame arrived, in seconds on any clock that counts forwards."""
        reference = self._reference
        if reference is None or not 0.0 <= now - reference.at <= self._max_gap_s:
            self._take(frame, now, earlier_ma=None)
            return Judgement(Verdict.ANCHORED)
        problem = implausible_change(
            reference.frame,
            frame,
            inputs=self._inputs,
            elapsed_s=max(now - reference.at, MIN_ELAPSED_S),
            swing_a=current_swing_a(frame, reference.frame, reference.earlier_ma),
        )
        if problem is None:
            self._take(frame, now, earlier_ma=reference.frame.battery_ma)
            return Judgement(Verdict.ACCEPTED)
        if self._drops >= self._max_drops:
            # The dropped frames' currents are not trusted: the new history starts here.
            self._take(frame, now, earlier_ma=None)
            return Judgement(Verdict.REANCHORED, problem)
        self._drops += 1
        return Judgement(Verdict.DROPPED, problem)

    def _take(self, frame: SbmsFrame, now: float, *, earlier_ma: int | None) -> None:
        self._reference = _Reference(frame, now, earlier_ma)
        self._drops = 0


def current_swing_a(frame: SbmsFrame, reference: SbmsFrame, earlier_ma: int | None) -> float:
    """How far the battery current moved over this frame, the reference and the one before it.

    The frame before the reference counts too: when the SBMS shows a step in the current one
    frame before the cells follow, the cells' step comes with an unchanged current."""
    currents = [frame.battery_ma, reference.battery_ma]
    if earlier_ma is not None:
        currents.append(earlier_ma)
    return (max(currents) - min(currents)) / 1000


def implausible_change(
    before: SbmsFrame,
    after: SbmsFrame,
    *,
    inputs: tuple[int, ...],
    elapsed_s: float,
    swing_a: float,
) -> str | None:
    """Why `after` cannot follow `before` by `elapsed_s`, or None when it can."""
    return (
        cell_apart(before, after, inputs=inputs, elapsed_s=elapsed_s, swing_a=swing_a)
        or temperature_jump(before, after, elapsed_s=elapsed_s)
        or soc_jump(before, after, elapsed_s=elapsed_s)
    )


def cell_apart(
    before: SbmsFrame,
    after: SbmsFrame,
    *,
    inputs: tuple[int, ...],
    elapsed_s: float,
    swing_a: float,
) -> str | None:
    """A cell that moved apart from its neighbours further than series cells can."""
    changes = [after.cells_mv[index] - before.cells_mv[index] for index in inputs]
    common = statistics.median(changes)
    allowed = CELL_NOISE_MV + CELL_DRIFT_MV_PER_S * elapsed_s + CELL_SPREAD_MV_PER_A * swing_a
    for index, change in zip(inputs, changes, strict=True):
        if abs(change - common) > allowed:
            return (
                f"cell input {index + 1} moved {change:+d} mV while the cells moved {common:+g} mV"
                f" (median) in {elapsed_s:g} s at a {swing_a:g} A current swing: more than"
                f" {allowed:.0f} mV apart"
            )
    return None


def temperature_jump(before: SbmsFrame, after: SbmsFrame, *, elapsed_s: float) -> str | None:
    allowed = TEMPERATURE_NOISE_C + TEMPERATURE_RATE_C_PER_S * elapsed_s
    pairs = {
        "internal": (before.internal_temperature_c, after.internal_temperature_c),
        "external": (before.external_temperature_c, after.external_temperature_c),
    }
    for name, (old, new) in pairs.items():
        if old is not None and new is not None and abs(new - old) > allowed:
            return (
                f"{name} temperature went from {old:.1f} to {new:.1f} C in {elapsed_s:g} s"
                f" (at most {allowed:.1f} C)"
            )
    return None


def soc_jump(before: SbmsFrame, after: SbmsFrame, *, elapsed_s: float) -> str | None:
    if after.soc == SOC_FULL:
        return None  # the end-of-charge sync
    allowed = SOC_NOISE_PERCENT + SOC_RATE_PERCENT_PER_S * elapsed_s
    if abs(after.soc - before.soc) > allowed:
        return (
            f"SoC went from {before.soc} to {after.soc} % in {elapsed_s:g} s"
            f" (at most {allowed:.1f} %)"
        )
    return None
