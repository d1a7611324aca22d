"""PV energy per array on a dual-PV box (issue 20): the one PV shunt sees every array
together, so each interval's PV energy is given to the arrays whose battery path conducted
through it (the decision taken at the interval's start, as for the diversion counters).

- One array conducted: all of the interval's PV energy is that array's (measured).
- Several conducted (dual-PV level 3): split in proportion to each array's configured size
  (`diversion.arrays[].rated_current_a`) when every one of them has one; otherwise to the
  current each last gave while it charged alone (smoothed over `ALONE_TIME_CONSTANT_S`);
  otherwise in equal parts. Both arrays see the same sky, so their size is the split; the
  current alone is its stand-in, off by how much the sun moved since.
- None conducted: the energy (a shunt offset, another source on the PV shunt) is nobody's.
  The arrays' counters therefore add up to at most `pv_wh`'s growth since they started.

Pure: time comes with each interval. Counters never go backwards (the same rule as
`counters.py`: a negative, NaN or infinite increment is dropped).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from edge_agent.control.extio import charges
from edge_agent.control.settings import ArraySettings, OutputSettings, OutputType

ALONE_TIME_CONSTANT_S = 600.0
# An interval longer than this (an outage) teaches nothing about an array's current.
_MAX_LEARNING_INTERVAL_S = 600.0
_PV_SOURCE_TYPES = (OutputType.HVD, OutputType.DUAL_PV)


@dataclass(frozen=True, slots=True)
class PvArrayState:
    """What survives a restart: each array's Wh, its smoothed current alone (amps), and the
    arrays the last decision left conducting (the next interval is theirs)."""

    energy_wh: Mapping[str, float] = field(default_factory=dict)
    alone_a: Mapping[str, float] = field(default_factory=dict)
    conducting: tuple[str, ...] = ()


def pv_arrays(outputs: Sequence[OutputSettings]) -> tuple[str, ...]:
    """The arrays counted: on a box with a dual-PV (type 6) output, every charge-wired output
    of type 1 or 6 (the primary and the secondary arrays' DSSR20s). Empty elsewhere."""
    if not any(o.type is OutputType.DUAL_PV for o in outputs):
        return ()
    return tuple(o.name for o in outputs if charges(o) and o.type in _PV_SOURCE_TYPES)


class PvArrayCounter:
    def __init__(
        self,
        arrays: Sequence[str],
        sizes: Sequence[ArraySettings] = (),
        state: PvArrayState | None = None,
    ) -> None:
        state = state or PvArrayState()
        self.arrays = tuple(arrays)
        self._sizes = {
            a.output: a.rated_current_a
            for a in sizes
            if a.output in self.arrays and a.rated_current_a is not None
        }
        # An array of the configuration starts at 0; one no longer configured is dropped.
        self.energy_wh = {name: float(state.energy_wh.get(name, 0.0)) for name in self.arrays}
        self.alone_a = {name: v for name, v in state.alone_a.items() if name in self.arrays}
        self.conducting = tuple(name for name in state.conducting if name in self.arrays)

    @property
    def state(self) -> PvArrayState:
        return PvArrayState(dict(self.energy_wh), dict(self.alone_a), self.conducting)

    def note_decision(self, outputs: Mapping[str, bool]) -> None:
        """The outputs just decided: what conducts through the next interval."""
        self.conducting = tuple(name for name in self.arrays if outputs.get(name, False))

    def add_interval(
        self,
        pv_wh: float,
        conducted: Mapping[str, bool] | None = None,
        *,
        pv_current_a: float | None = None,
        interval_s: float | None = None,
    ) -> Mapping[str, float]:
        """Give one interval's PV energy to the arrays that conducted through it; learn each
        lone array's current. `conducted`: what conducted through the interval (default: the
        last `note_decision`). Returns the totals."""
        if conducted is None:
            on = list(self.conducting)
        else:
            on = [name for name in self.arrays if conducted.get(name, False)]
        if (
            len(on) == 1
            and pv_current_a is not None
            and math.isfinite(pv_current_a)
            and interval_s is not None
            and 0.0 < interval_s <= _MAX_LEARNING_INTERVAL_S
        ):
            self._learn(on[0], max(0.0, pv_current_a), interval_s)
        if not on or not math.isfinite(pv_wh) or pv_wh <= 0.0:
            return self.energy_wh
        weights = self._weights(on)
        total = sum(weights.values())
        for name in on:
            share = pv_wh * weights[name] / total
            grown = self.energy_wh[name] + share
            if math.isfinite(grown) and share > 0.0:
                self.energy_wh[name] = grown
        return self.energy_wh

    def _learn(self, name: str, current_a: float, interval_s: float) -> None:
        previous = self.alone_a.get(name)
        if previous is None:
            self.alone_a[name] = current_a
            return
        weight = 1.0 - math.exp(-interval_s / ALONE_TIME_CONSTANT_S)
        self.alone_a[name] = previous + weight * (current_a - previous)

    def _weights(self, on: Sequence[str]) -> dict[str, float]:
        if len(on) == 1:
            return {on[0]: 1.0}
        for known in (self._sizes, self.alone_a):
            weights = {name: known.get(name) for name in on}
            if all(w is not None and w > 0.0 for w in weights.values()):
                return {name: float(w) for name, w in weights.items() if w is not None}
        return dict.fromkeys(on, 1.0)
