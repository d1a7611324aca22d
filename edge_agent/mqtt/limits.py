"""Bounds on what arrives over MQTT (pure: time is passed in).

A broker user may send requests as fast as the network allows. Before a request is queued it
must pass its kind's token bucket: `config/set`, commands, `history/get` and Home Assistant's
birth message each get a sustained rate and a burst (`REQUEST_LIMITS`, documented in
docs/protocol.md). Requests over the rate are dropped unanswered and counted: answering a
flood would only double it. The queue behind the gate is bounded too (`MqttSettings.
incoming_queue_size`), so memory stays bounded at any rate, and the control loop, which
never waits on MQTT, keeps its period.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

CONFIG_SET = "config_set"
COMMAND = "command"
HISTORY_GET = "history_get"
BIRTH = "birth"
OTHER = "other"  # a topic the agent did not subscribe to: never queued
QUEUE_FULL = "queue_full"


@dataclass(frozen=True, slots=True)
class RateLimit:
    """`per_second` sustained, `burst` at once after a quiet spell."""

    per_second: float
    burst: float


# Home Assistant sends a config/set or a command when a user acts, and history/get one page
# at a time, each right after the previous answer (a back-fill pages as fast as the round trip
# allows: tens per second on a LAN): these leave every legitimate use unthrottled. config/set
# stays low for the SD card's sake: each accepted change is written and synced.
REQUEST_LIMITS: Mapping[str, RateLimit] = {
    CONFIG_SET: RateLimit(per_second=2.0, burst=10.0),
    COMMAND: RateLimit(per_second=5.0, burst=20.0),
    HISTORY_GET: RateLimit(per_second=50.0, burst=100.0),
    BIRTH: RateLimit(per_second=0.5, burst=6.0),  # "offline" and "online" at each restart
}


@dataclass(slots=True)
class TokenBucket:
    limit: RateLimit
    tokens: float = -1.0  # full at the first take
    updated: float = 0.0

    def take(self, now: float) -> bool:
        if self.tokens < 0:
            self.tokens, self.updated = self.limit.burst, now
        elapsed = max(0.0, now - self.updated)  # a clock that steps back refills nothing
        self.tokens = min(self.limit.burst, self.tokens + elapsed * self.limit.per_second)
        self.updated = now
        if self.tokens < 1.0:
            return False
        self.tokens -= 1.0
        return True


@dataclass(slots=True)
class RequestGate:
    """Admits requests by kind; counts what it admitted and what it dropped."""

    limits: Mapping[str, RateLimit] = field(default_factory=lambda: REQUEST_LIMITS)
    received: int = 0
    dropped: dict[str, int] = field(default_factory=dict)
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def admit(self, kind: str, now: float) -> bool:
        limit = self.limits.get(kind)
        if limit is None:
            self.count_dropped(kind)
            return False
        bucket = self._buckets.get(kind)
        if bucket is None:
            bucket = self._buckets[kind] = TokenBucket(limit)
        if not bucket.take(now):
            self.count_dropped(kind)
            return False
        self.received += 1
        return True

    def count_dropped(self, kind: str) -> None:
        self.dropped[kind] = self.dropped.get(kind, 0) + 1

    @property
    def dropped_total(self) -> int:
        return sum(self.dropped.values())


@dataclass(slots=True)
class LogBudget:
    """At most `per_minute` log lines per kind of problem per minute; the rest are counted and
    reported in one line when the next minute's first line is allowed."""

    per_minute: int = 5
    _windows: dict[str, tuple[float, int, int]] = field(default_factory=dict)

    def allow(self, kind: str, now: float) -> tuple[bool, int]:
        """(log this one?, lines suppressed in the window that just ended)."""
        start, used, suppressed = self._windows.get(kind, (now, 0, 0))
        ended_suppressed = 0
        if now - start >= 60.0 or now < start:
            ended_suppressed = suppressed
            start, used, suppressed = now, 0, 0
        if used < self.per_minute:
            self._windows[kind] = (start, used + 1, suppressed)
            return True, ended_suppressed
        self._windows[kind] = (start, used, suppressed + 1)
        return False, ended_suppressed
