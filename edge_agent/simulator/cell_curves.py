"""Resting OCV-vs-SoC curves of LiFePO4 cells for the simulated pack, from published tables.

Issue 16: the simulator's original curve (`SYNTHESIS`, kept as the default so older runs stay
reproducible) has the same numbers as the agent's estimator table
(`edge_agent/control/lfp_ocv.py`): both are the synthesis in hardware-facts.md, so a simulated
run could never show how the estimator fares on a real cell. The other curves here come from
tables other people published for particular cells, typed in from the sources below; nothing in
this module is derived from the estimator's table, and it never imports the control core.

The published tables are resting ("open circuit") voltages with no charge or discharge branch
given, so they are used as the middle of the hysteresis band (`lfp.CellParameters.hysteresis_v`
splits them into a charge and a discharge branch). Each table is used between its own 0 % and
100 % points; beyond them every curve gets the same steep tails (an over-discharged cell
collapses to 0 V, 2 % below its table's 0 % where that is a "usable" empty above 2.5 V; an
over-charged one climbs past 3.65 V within about 1 % past full) so an
unprotected run stays finite and a protection limit is always reached.

Sources (SoC %, volts):

- `A123`: OSBMS cell-monitor firmware by David Burkitt, table `u16a_lifepo4_soc`, data set
  `LFP_A123` ("Based on data from A123"), 9 points placed at the curve's inflexions:
  https://github.com/DuncanAitken/OSBMS/blob/4ab7adea532887597c62e1d34f163d18ac992d76/BatteryLookup/BatteryLookup.cpp
- `SINOPOLY`: the same file, data set `LFP_SP` ("Based on Thundersky data which became
  SinoPoly"), large prismatic cells of the kind DIY solar packs were built from.
- `GENERIC_11`: the 11-point LiFePO4 table of the Meshtastic firmware, `OCV_ARRAY` for
  `CELL_TYPE_LIFEPO4` (100 % to 0 % in 10 % steps), src/power.h:
  https://github.com/meshtastic/firmware/blob/68c459974367b0e5c4fda0b31114273f2f973003/src/power.h
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from itertools import pairwise

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

# Beyond a table's end points (fractions of SoC past full / below empty, volts).
_OVERCHARGE_SOC = (1.005, 1.01, 1.02, 1.04, 1.10)
_OVERCHARGE_OCV = (3.52, 3.65, 3.85, 4.20, 5.00)
_OVERDISCHARGE_SOC = (-0.15, -0.10, -0.04, -0.02, -0.01)
_OVERDISCHARGE_OCV = (0.0, 0.50, 1.50, 2.00, 2.30)
# A table whose 0 % lies above 2.5 V (a "usable" empty) reaches 2.5 V 2 % later, and its
# collapse below that is shifted by the same 2 %.
_CUTOFF = (-0.02, 2.50)


@dataclass(frozen=True)
class CellCurve:
    """A resting OCV curve: `table` is (SoC fraction, volts) from 0 to 1, strictly increasing."""

    name: str
    source: str  # where the numbers come from (URL and table), for reports and docs
    table: tuple[tuple[float, float], ...]

    def __post_init__(self) -> None:
        socs = [soc for soc, _ in self.table]
        volts = [v for _, v in self.table]
        if socs[0] != 0.0 or socs[-1] != 1.0:
            raise ValueError(f"{self.name}: the table must run from SoC 0 to 1")
        if any(b <= a for a, b in pairwise(socs)) or any(b <= a for a, b in pairwise(volts)):
            raise ValueError(f"{self.name}: SoC and voltage must both increase strictly")
        if not (volts[0] >= _CUTOFF[1] and volts[-1] < _OVERCHARGE_OCV[0]):
            raise ValueError(f"{self.name}: the table must lie within 2.5 .. 3.52 V")

    @cached_property
    def points(self) -> tuple[FloatArray, FloatArray]:
        """SoC and voltage points including the steep tails (for np.interp)."""
        socs = [soc for soc, _ in self.table]
        volts = [v for _, v in self.table]
        low_soc, low_v = list(_OVERDISCHARGE_SOC), list(_OVERDISCHARGE_OCV)
        if volts[0] > _CUTOFF[1]:
            low_soc = [soc + _CUTOFF[0] for soc in low_soc] + [_CUTOFF[0]]
            low_v.append(_CUTOFF[1])
        return (
            np.array(low_soc + socs + list(_OVERCHARGE_SOC), dtype=np.float64),
            np.array(low_v + volts + list(_OVERCHARGE_OCV), dtype=np.float64),
        )

    def ocv(self, soc: FloatArray) -> FloatArray:
        """Resting voltage (middle of the hysteresis band) at each SoC fraction; 0..5 V."""
        socs, volts = self.points
        result: FloatArray = np.asarray(np.interp(soc, socs, volts), dtype=np.float64)
        return result


def _percent(*rows: tuple[float, float]) -> tuple[tuple[float, float], ...]:
    return tuple((soc / 100.0, volts) for soc, volts in rows)


SYNTHESIS = CellCurve(
    "synthesis",
    "docs: hardware-facts.md synthesis (the same numbers as the agent's estimator table; "
    "3.42 V chosen for 100 %)",
    _percent(
        (0, 2.50), (2, 2.90), (5, 3.08), (10, 3.20), (20, 3.24), (30, 3.27), (40, 3.285),
        (50, 3.295), (60, 3.305), (70, 3.315), (80, 3.325), (90, 3.335), (98, 3.35), (100, 3.42),
    ),
)  # fmt: skip

A123 = CellCurve(
    "a123",
    "https://github.com/DuncanAitken/OSBMS/blob/4ab7adea532887597c62e1d34f163d18ac992d76/"
    "BatteryLookup/BatteryLookup.cpp (u16a_lifepo4_soc, DATASET LFP_A123)",
    _percent(
        (0, 2.900), (10, 3.205), (25, 3.268), (40, 3.300), (65, 3.315), (75, 3.340),
        (89, 3.349), (98, 3.390), (100, 3.400),
    ),
)  # fmt: skip

SINOPOLY = CellCurve(
    "sinopoly",
    "https://github.com/DuncanAitken/OSBMS/blob/4ab7adea532887597c62e1d34f163d18ac992d76/"
    "BatteryLookup/BatteryLookup.cpp (u16a_lifepo4_soc, DATASET LFP_SP: Thundersky/SinoPoly)",
    _percent(
        (0, 2.800), (10, 3.184), (25, 3.235), (40, 3.271), (65, 3.294), (75, 3.307),
        (89, 3.324), (98, 3.385), (100, 3.400),
    ),
)  # fmt: skip

GENERIC_11 = CellCurve(
    "generic11",
    "https://github.com/meshtastic/firmware/blob/68c459974367b0e5c4fda0b31114273f2f973003/"
    "src/power.h (OCV_ARRAY for CELL_TYPE_LIFEPO4)",
    _percent(
        (0, 3.000), (10, 3.120), (20, 3.200), (30, 3.230), (40, 3.250), (50, 3.260),
        (60, 3.270), (70, 3.290), (80, 3.320), (90, 3.350), (100, 3.400),
    ),
)  # fmt: skip

CURVES: dict[str, CellCurve] = {c.name: c for c in (SYNTHESIS, A123, SINOPOLY, GENERIC_11)}
# The curves that share no data with the estimator: what issue 16's scenarios run on.
PUBLISHED: tuple[str, ...] = (A123.name, SINOPOLY.name, GENERIC_11.name)


def curve(name: str) -> CellCurve:
    """The curve called `name` (ValueError naming the known ones otherwise)."""
    try:
        return CURVES[name]
    except KeyError:
        raise ValueError(f"unknown cell curve {name!r}; known: {', '.join(CURVES)}") from None
