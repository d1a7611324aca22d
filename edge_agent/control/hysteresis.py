"""Threshold state machines with hysteresis.

Each limit remembers whether it is tripped, so a value wandering inside the band between the
trip and release points keeps the last decision: that is what stops outputs chattering.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Transition:
    """What one update did to a limit."""

    tripped: bool  # became active on this update
    released: bool  # became inactive on this update


_NO_CHANGE = Transition(tripped=False, released=False)


class UpperLimit:
    """Active once the value reaches `trip` (or exceeds it when not inclusive); inactive again
    only when the value falls below `release`."""

    def __init__(
        self, trip: float, release: float, *, inclusive: bool = True, active: bool = False
    ) -> None:
        if release > trip:
            raise ValueError(f"release {release} above trip {trip}")
        self.trip = trip
        self.release = release
        self.inclusive = inclusive
        self.active = active

    def update(self, value: float) -> Transition:
        if not self.active and self._beyond_trip(value):
            self.active = True
            return Transition(tripped=True, released=False)
        if self.active and value < self.release:
            self.active = False
            return Transition(tripped=False, released=True)
        return _NO_CHANGE

    def _beyond_trip(self, value: float) -> bool:
        return value >= self.trip if self.inclusive else value > self.trip


class LowerLimit:
    """Active once the value reaches `trip` from above (or falls below it when not
    inclusive); inactive again only when the value rises above `release`."""

    def __init__(
        self, trip: float, release: float, *, inclusive: bool = True, active: bool = False
    ) -> None:
        if release < trip:
            raise ValueError(f"release {release} below trip {trip}")
        self.trip = trip
        self.release = release
        self.inclusive = inclusive
        self.active = active

    def update(self, value: float) -> Transition:
        if not self.active and self._beyond_trip(value):
            self.active = True
            return Transition(tripped=True, released=False)
        if self.active and value > self.release:
            self.active = False
            return Transition(tripped=False, released=True)
        return _NO_CHANGE

    def _beyond_trip(self, value: float) -> bool:
        return value <= self.trip if self.inclusive else value < self.trip
