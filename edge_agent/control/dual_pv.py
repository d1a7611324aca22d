"""Dual-PV staging (SBMS0 output type 6 with the type 1 outputs).

Level 1: primary (type 1) source alone; level 2: the ~2x secondary (type 6) alone; level 3:
both. Levels only move to a neighbour. Stepping up waits `min_level_hold_s` on the current
level (the new level's current needs time to show); stepping down on over-current is
immediate, one level per sample.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.control.settings import DualPvSettings

MIN_LEVEL = 1
MAX_LEVEL = 3


@dataclass(frozen=True, slots=True)
class LevelChange:
    previous: int
    new: int


class DualPvStager:
    def __init__(
        self,
        settings: DualPvSettings,
        level: int,
        level_since: float,
        charging_was_allowed: bool = False,
    ) -> None:
        if not MIN_LEVEL <= level <= MAX_LEVEL:
            raise ValueError(f"dual-PV level {level} outside 1..3")
        self.settings = settings
        self.level = level
        self.level_since = level_since
        self.charging_was_allowed = charging_was_allowed

    def update(
        self, now: float, battery_current: float, charging_allowed: bool
    ) -> LevelChange | None:
        """Feed one good sample; returns the level change it caused, if any."""
        if not charging_allowed:
            # Both sources are off: the current says nothing about the level, so keep it.
            self.charging_was_allowed = False
            return None
        if not self.charging_was_allowed:
            # Charging just resumed: this sample was taken with the sources off.
            self.charging_was_allowed = True
            self.level_since = now
            return None
        return self._step(now, max(0.0, battery_current))

    def restart_at_lowest(self, now: float) -> LevelChange | None:
        """Back to level 1 (smallest source), e.g. after an HVD release."""
        return self._move_to(MIN_LEVEL, now)

    def _step(self, now: float, charge_current: float) -> LevelChange | None:
        imax = self.settings.imax
        if charge_current > self.settings.down_fraction * imax and self.level > MIN_LEVEL:
            return self._move_to(self.level - 1, now)
        if now - self.level_since < self.settings.min_level_hold_s:
            return None
        if self.level == 1 and charge_current < self.settings.up_to_l2_fraction * imax:
            return self._move_to(2, now)
        if self.level == 2 and charge_current < self.settings.up_to_l3_fraction * imax:
            return self._move_to(3, now)
        return None

    def _move_to(self, level: int, now: float) -> LevelChange | None:
        if level == self.level:
            return None
        change = LevelChange(previous=self.level, new=level)
        self.level = level
        self.level_since = now
        return change
