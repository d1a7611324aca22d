"""Where time comes from. The loop only asks a clock; a simulated box supplies its own."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """UNIX seconds."""

    async def sleep_until(self, deadline: float) -> None:
        """Return once `now()` has reached `deadline`."""


class WallClock:
    """Real time for a battery box, never going backwards.

    A Raspberry Pi has no RTC: it boots with a stale time and NTP steps it later, sometimes
    backwards. The control core treats time going backwards as a measurement fault, so this
    clock follows the wall clock forwards and, after a backward step, keeps counting with the
    monotonic clock until the wall clock catches up.
    """

    def __init__(self) -> None:
        self._last = time.time()
        self._last_monotonic = time.monotonic()

    def now(self) -> float:
        monotonic = time.monotonic()
        self._last = max(time.time(), self._last + (monotonic - self._last_monotonic))
        self._last_monotonic = monotonic
        return self._last

    async def sleep_until(self, deadline: float) -> None:
        await asyncio.sleep(max(0.0, deadline - self.now()))
