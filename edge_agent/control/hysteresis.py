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
        if not self.active and self.beyond_trip(value):
            self.active = True
            return Transition(tripped=True, released=False)
        if self.active and value < self.release:
            self.active = False
            return Transition(tripped=False, released=True)
        return _NO_CHANGE

    def beyond_trip(self, value: float) -> bool:
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
        if not self.active and self.beyond_trip(value):
            self.active = True
            return Transition(tripped=True, released=False)
        if self.active and value > self.release:
            self.active = False
            return Transition(tripped=False, released=True)
        return _NO_CHANGE

    def beyond_trip(self, value: float) -> bool:
        return value <= self.trip if self.inclusive else value < self.trip


class DelayedLimit:
    """A limit that trips only once its condition has held for `delay_s`, as the ISL94203's
    OV/UV delay timers do: a load step that sags a cell for a moment must not cut the loads.
    A real crossing trips at the first sample at least `delay_s` after the first sample that
    saw it. Releasing is not delayed.

    `pending_since` (the first sample of the present crossing) is part of the persisted state:
    rebuilding the controller (a settings change) or a restart must not restart the count, or a
    stream of remote requests could hold a trip off for ever.
    """

    def __init__(
        self, limit: UpperLimit | LowerLimit, delay_s: float, pending_since: float | None = None
    ) -> None:
        if not delay_s >= 0.0:
            raise ValueError(f"delay {delay_s} is negative")
        self.limit = limit
        self.delay_s = delay_s
        self.pending_since = None if limit.active else pending_since

    @property
    def active(self) -> bool:
        return self.limit.active

    def update(self, value: float, now: float) -> Transition:
        limit = self.limit
        if limit.active or not limit.beyond_trip(value):
            self.pending_since = None
            return limit.update(value)
        if self.pending_since is None or now < self.pending_since:
            self.pending_since = now  # a clock that stepped back starts the count again
        if now - self.pending_since < self.delay_s:
            return _NO_CHANGE
        self.pending_since = None
        return limit.update(value)

    def expire(self, now: float) -> Transition:
        """Without a new value (the measurement failed): a crossing seen and never seen to
        end trips once its delay has run, rather than waiting for the next good sample."""
        since = self.pending_since
        if since is None or self.limit.active or now - since < self.delay_s:
            return _NO_CHANGE
        self.pending_since = None
        self.limit.active = True
        return Transition(tripped=True, released=False)
