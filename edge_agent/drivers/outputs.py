"""The common interface of EXTIO output banks (GPIO lines, I2C expanders).

States are logical: True = the output conducts (optocoupler LED on). Each bank maps that to a
pin level through its polarity. A released bank leaves every line in the safe OFF state, so an
agent that stops or crashes disconnects rather than leaving a charge source switched on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class OutputBank(Protocol):
    names: tuple[str, ...]

    def apply(self, states: Mapping[str, bool]) -> None:
        """Set every given output, in as few bus writes as possible."""
        ...

    def release(self) -> None:
        """Return every line to the safe OFF state."""
        ...


def check_known(names: tuple[str, ...], states: Mapping[str, bool], bank: str) -> None:
    """Refuse unknown output names: a typo must not silently leave an output as it was."""
    unknown = sorted(set(states) - set(names))
    if unknown:
        raise KeyError(f"{bank} has no output(s) {', '.join(unknown)}; outputs: {', '.join(names)}")
