"""Resting open-circuit voltage of a LiFePO4 cell at 25 C (hardware-facts synthesis).

Kept here, pure, because the control core may not import the simulator. Between about 12 %
and 97 % the curve moves roughly 1 mV per % SoC, so a voltage says little there: callers use
`soc_from_ocv` only where `is_steep` is true.
"""

from __future__ import annotations

import bisect

# (SoC %, volts). 100 % is given as 3.40-3.45 V; the lower end is used so a pack relaxing to
# 3.40 V after a full charge reads as full rather than as a little less.
OCV_TABLE: tuple[tuple[float, float], ...] = (
    (0.0, 2.50),
    (2.0, 2.90),
    (5.0, 3.08),
    (10.0, 3.20),
    (20.0, 3.24),
    (30.0, 3.27),
    (40.0, 3.285),
    (50.0, 3.295),
    (60.0, 3.305),
    (70.0, 3.315),
    (80.0, 3.325),
    (90.0, 3.335),
    (98.0, 3.35),
    (100.0, 3.40),
)

STEEP_BELOW_SOC = 12.0
STEEP_ABOVE_SOC = 97.0

_SOCS = tuple(soc for soc, _ in OCV_TABLE)
_VOLTS = tuple(volts for _, volts in OCV_TABLE)


def ocv_from_soc(soc_percent: float) -> float:
    """Resting cell voltage at a SoC, linear between table points, clamped to the table."""
    return interpolate(soc_percent, _SOCS, _VOLTS)


def soc_from_ocv(cell_voltage: float) -> float:
    """SoC (percent) of a rested cell at this voltage, clamped to 0..100."""
    return interpolate(cell_voltage, _VOLTS, _SOCS)


def is_steep(soc_percent: float) -> bool:
    """Whether the OCV curve is steep enough at this SoC for a voltage reading to be useful."""
    return soc_percent < STEEP_BELOW_SOC or soc_percent > STEEP_ABOVE_SOC


def interpolate(x: float, xs: tuple[float, ...], ys: tuple[float, ...]) -> float:
    """y at x, linear between points of increasing xs, clamped to the ends."""
    if x <= xs[0]:
        return ys[0]
    if x >= xs[-1]:
        return ys[-1]
    upper = bisect.bisect_right(xs, x)
    x0, x1 = xs[upper - 1], xs[upper]
    y0, y1 = ys[upper - 1], ys[upper]
    return y0 + (y1 - y0) * (x - x0) / (x1 - x0)
