"""What load shedding and surplus loads share, decided without Home Assistant: a household load
a manager switches on and off, the part of its settings both kinds have, what is remembered of
it (and its round trip through the store), one switching, one decision, and the checks both
settings forms make.

Pure, like the decision modules built on it (`load_shedding.py`, `surplus_loads.py`); the Home
Assistant side of both is `loads_manager.py`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from enum import StrEnum
from typing import Any, ClassVar, Final, Generic, Self, TypeVar

SOC_MIN: Final = 0.0
SOC_MAX: Final = 100.0
PRIORITY_MIN: Final = 1
PRIORITY_MAX: Final = 100
# Longer minimum times are a configuration mistake, not a wish: a load held off for a week.
MIN_TIME_MAX_S: Final = 24 * 3600.0

StatusT = TypeVar("StatusT", bound=StrEnum)
ReasonT = TypeVar("ReasonT", bound=StrEnum)
ActionT = TypeVar("ActionT")
RuntimeT = TypeVar("RuntimeT")


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchedLoad:
    """One load as the user configured it: the part every kind has. The subentry id is the
    load id; a higher priority stays on longer (and comes on first)."""

    load_id: str
    entity_id: str
    priority: int
    min_off_s: float = 0.0
    min_on_s: float = 0.0


def priority_errors(priority: float) -> dict[str, str]:
    """Form field -> error key for the priority (empty when usable)."""
    if not PRIORITY_MIN <= priority <= PRIORITY_MAX or priority != int(priority):
        return {"priority": "invalid_priority"}
    return {}


def min_time_errors(*, min_off_s: float, min_on_s: float) -> dict[str, str]:
    """Form field -> error key for the minimum off and on times (empty when usable)."""
    return {
        key: "invalid_min_time"
        for key, seconds in (("min_off_time", min_off_s), ("min_on_time", min_on_s))
        if not 0 <= seconds <= MIN_TIME_MAX_S
    }


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchedRuntime(Generic[StatusT, ReasonT]):
    """What a manager remembers about one load; persisted across restarts.

    `observed_on` is the load's last seen on/off state and `changed_at` when it last changed (or
    was switched by us): the minimum on time counts from there. `switched_at` is when the
    manager last switched it. A kind sets `status`'s default and `REASON`, and may add fields:
    only times (seconds, None while unset), so the store's round trip serves them all.
    """

    REASON: ClassVar[type[StrEnum]]

    status: StatusT
    reason: ReasonT | None = None
    observed_on: bool | None = None
    changed_at: float | None = None
    switched_at: float | None = None

    def as_dict(self) -> dict[str, Any]:
        return {item.name: _plain(getattr(self, item.name)) for item in fields(self)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Stored runtime; anything unreadable falls back to a fresh state (never a switch)."""
        defaults = {item.name: item.default for item in fields(cls)}
        fresh_status: Any = defaults["status"]
        try:
            reason = data.get("reason")
            values: dict[str, Any] = {
                "status": type(fresh_status)(data.get("status", fresh_status)),
                "reason": None if reason is None else cls.REASON(reason),
                "observed_on": _optional_bool(data.get("observed_on")),
            }
            values |= {
                name: _optional_float(data.get(name)) for name in defaults if name not in values
            }
            return cls(**values)
        except (ValueError, TypeError):
            return cls(status=fresh_status)


def _plain(value: Any) -> Any:
    return value.value if isinstance(value, StrEnum) else value


def _optional_bool(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


def _optional_float(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchConditions:
    """The inputs of one decision every kind has: the time, the kind's master switch, whether
    the agent is available, SoC, and `loads_on`: load id -> on/off, None while unknown or
    unavailable."""

    now: float
    enabled: bool
    available: bool
    soc: float | None
    loads_on: Mapping[str, bool | None] = field(default_factory=dict)

    @property
    def data_ok(self) -> bool:
        return self.available and self.soc is not None


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchAction(Generic[ReasonT]):
    """Switch one load; `turn_on` False means off."""

    load_id: str
    entity_id: str
    turn_on: bool
    reason: ReasonT


@dataclass(frozen=True, kw_only=True, slots=True)
class SwitchDecision(Generic[ActionT, RuntimeT]):
    """The switching to do now, in order, every load's new runtime, and when to decide again
    if nothing else happens."""

    actions: tuple[ActionT, ...]
    runtime: dict[str, RuntimeT]
    next_check: float | None
