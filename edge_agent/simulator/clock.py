"""Simulated time: waiting moves the simulated box forward, optionally faster than real time."""

from __future__ import annotations

import asyncio

from edge_agent.simulator.box import SimulatedBox


class SimulatedClock:
    """A clock whose `sleep_until` advances the box's physics; `speed` x real time."""

    def __init__(self, box: SimulatedBox, speed: float = 1.0) -> None:
        if speed <= 0:
            raise ValueError("speed must be positive")
        self._box = box
        self._speed = speed

    def now(self) -> float:
        return self._box.now

    async def sleep_until(self, deadline: float) -> None:
        step = deadline - self._box.now
        if step <= 0:
            await asyncio.sleep(0)
            return
        self._box.advance(step)
        await asyncio.sleep(step / self._speed)
