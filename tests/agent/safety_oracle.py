"""The tests' own account of when a limit must have tripped, written apart from the control
core's: a condition counts from the first good sample that shows it until a good sample that
does not (a failed sample neither starts nor ends it), as a trip delay is specified."""

from __future__ import annotations


class Streak:
    """Since when a limit's condition has held, over good samples."""

    def __init__(self) -> None:
        self.since: float | None = None

    def update(self, beyond: bool, now: float) -> None:
        if not beyond:
            self.since = None
        elif self.since is None:
            self.since = now

    def held(self, now: float, delay: float) -> bool:
        """The condition has held for at least `delay` seconds: the limit must have tripped."""
        return self.since is not None and now - self.since >= delay
