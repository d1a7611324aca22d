"""The `publish` config section: how often and on what changes the agent publishes state.

Kept apart from the policy itself so that the configuration loader can use it without
importing the payload builders (which import the configuration).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

_MAX_INTERVAL_S = 3600.0  # Home Assistant marks a sensor unavailable long before this anyway


@dataclass(frozen=True, slots=True)
class PublishSettings:
    """The `publish` config section. A delta of 0 publishes on any change."""

    interval_s: float = 30.0  # a full state at least this often
    min_interval_s: float = 1.0  # and never more often than this
    soc_delta: float = 0.5  # percent
    voltage_delta: float = 0.05  # pack volts
    current_delta: float = 0.5  # amps (battery, PV, load), or the relative delta if larger
    current_relative_delta: float = 0.05  # fraction of the last published value
    cell_delta: float = 0.01  # volts, any cell
    temperature_delta: float = 0.5  # degrees Celsius, any sensor

    @classmethod
    def every_sample(cls) -> PublishSettings:
        """Publish every report: no deadbands, no rate limit (tests and latency benchmarks)."""
        return cls(
            interval_s=0.001,
            min_interval_s=0.0,
            soc_delta=0.0,
            voltage_delta=0.0,
            current_delta=0.0,
            current_relative_delta=0.0,
            cell_delta=0.0,
            temperature_delta=0.0,
        )


def validate_publish_settings(settings: PublishSettings) -> list[str]:
    """Problems as "publish.key: rule" lines, like `edge_agent.config` (empty = valid)."""
    problems: list[str] = []
    for item in fields(settings):
        value = getattr(settings, item.name)
        if isinstance(value, bool) or not isinstance(value, int | float):
            problems.append(f"publish.{item.name}: must be a number (got {value!r})")
        elif not math.isfinite(value) or value < 0:
            problems.append(f"publish.{item.name}: must be a finite number >= 0 (got {value!r})")
    if problems:
        return problems
    if not 0 < settings.interval_s <= _MAX_INTERVAL_S:
        problems.append(
            f"publish.interval_s: must be above 0 and at most {_MAX_INTERVAL_S:g} "
            f"(got {settings.interval_s:g})"
        )
    if settings.min_interval_s > settings.interval_s:
        problems.append(
            "publish.min_interval_s: must not exceed publish.interval_s "
            f"(got {settings.min_interval_s:g} > {settings.interval_s:g})"
        )
    if settings.current_relative_delta > 1:
        problems.append(
            "publish.current_relative_delta: must be between 0 and 1 "
            f"(got {settings.current_relative_delta:g})"
        )
    return problems
