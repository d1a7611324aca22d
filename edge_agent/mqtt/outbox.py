"""What the link publishes and when (pure: no socket, no clock; time is passed in).

The control loop hands each report to `Outbox.offer`, which keeps the latest one for the state
and queues its events in a bounded queue (the oldest dropped and counted). The link's task asks
what is due: the retained set at each connect and after an accepted change (status, announce,
Home Assistant discovery, config), the queued events in order, and the state when the
publishing policy says it is worth sending. An event leaves the queue only once the link says
it was sent (acknowledged by the broker), so an outage mid-publish repeats it, never loses it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from edge_agent.config.link import PublishSettings
from edge_agent.control.model import ControlEvent, ControlReport, temperatures
from edge_agent.mqtt.payloads import LinkStats, encode, event_payload, state_payload
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.mqtt.topics import Topics

ONLINE = b"online"
OFFLINE = b"offline"
_MIN_RECHECK_S = 0.05

PayloadFactory = Callable[[], dict[str, Any]]
# Native Home Assistant discovery: (topic, payload), see edge_agent.mqtt.ha_discovery.
# Given the temperature inputs the box has read so far (an unfitted xT2 gets no entity).
DiscoveryFactory = Callable[[frozenset[str]], tuple[str, dict[str, Any]]]


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    payload: bytes
    retain: bool = False


class Outbox:
    """The link's messages waiting for the broker. Call `offer` from the control loop's thread
    and the rest from the link's task (the same event loop)."""

    def __init__(
        self,
        topics: Topics,
        announce: PayloadFactory,
        config_payload: PayloadFactory,
        *,
        event_queue_size: int,
        policy: PublishPolicy | None = None,
        publish_settings: Callable[[], PublishSettings] | None = None,
        discovery: DiscoveryFactory | None = None,
        tank_temperature: str | None = None,
    ) -> None:
        """`announce`, `config_payload` and `discovery` (None: discovery is off) build the
        retained payloads when they are published; `publish_settings`, when given, is read
        again after each accepted change (`settings_changed`). `tank_temperature`: the input
        that reads the heater tank (file-only, so fixed for the link's life)."""
        self._topics = topics
        self._announce = announce
        self._config_payload = config_payload
        self._discovery = discovery
        self._tank_temperature = tank_temperature
        self._policy = policy or PublishPolicy()
        self._publish_settings = publish_settings
        self._events: deque[ControlEvent] = deque(maxlen=event_queue_size)
        self._latest: ControlReport | None = None
        # Discovery waits for the first report, so it already knows which inputs read, and
        # goes out again when an input reads for the first time (a sensor plugged in later).
        self._temperatures_read: set[str] = set()
        self._discovery_due = False
        self._dropped_since_log = 0
        self.dropped_events = 0  # events lost to a full queue since start

    def offer(self, report: ControlReport) -> None:
        """Keep the report for the state and queue its events (a full queue drops its oldest)."""
        self._latest = report
        read = {
            name for name, value in temperatures(report.measurement).items() if value is not None
        }
        if not read <= self._temperatures_read:
            self._temperatures_read |= read
            self._discovery_due = True
        for event in report.events:
            if len(self._events) == self._events.maxlen:
                self.dropped_events += 1
                self._dropped_since_log += 1
            self._events.append(event)

    @property
    def queued_events(self) -> int:
        return len(self._events)

    def take_dropped(self) -> int:
        """Events dropped since the previous call (for one log line, not one per event)."""
        dropped, self._dropped_since_log = self._dropped_since_log, 0
        return dropped

    # -- retained messages ----------------------------------------------------------------------

    def retained(self, *, online: bool) -> list[Message]:
        """At connect (`online`: with the status) and after an accepted change: the announce,
        discovery (an output type change adds or removes entities) and the config."""
        status = [Message(self._topics.status, ONLINE, retain=True)] if online else []
        return [
            *status,
            Message(self._topics.announce, encode(self._announce()), retain=True),
            *self.discovery(),
            Message(self._topics.config, encode(self._config_payload()), retain=True),
        ]

    def discovery(self) -> list[Message]:
        """Home Assistant's discovery message, when discovery is on and a report has come
        (until then it is due, and goes out with the first report)."""
        if self._discovery is None:
            return []
        if self._latest is None:
            self._discovery_due = True
            return []
        self._discovery_due = False
        topic, payload = self._discovery(frozenset(self._temperatures_read))
        return [Message(topic, encode(payload), retain=True)]

    @property
    def discovery_due(self) -> bool:
        """Discovery waits to go out: held for the first report, or an input read anew."""
        return self._discovery_due

    def offline(self) -> Message:
        """The status a clean stop leaves (a clean disconnect does not fire the will)."""
        return Message(self._topics.status, OFFLINE, retain=True)

    # -- events and state ------------------------------------------------------------------------

    def next_event(self) -> tuple[ControlEvent, Message] | None:
        """The oldest queued event; it stays queued until `event_sent`."""
        if not self._events:
            return None
        event = self._events[0]
        return event, Message(self._topics.event, encode(event_payload(event)))

    def event_sent(self, event: ControlEvent) -> None:
        # The queue may have moved meanwhile (dropped its oldest): only the same event leaves.
        if self._events and self._events[0] is event:
            self._events.popleft()

    def state_due(self, now: float) -> ControlReport | None:
        """The latest report when the policy says its state is due; `state_sent` once the
        state went out."""
        report = self._latest
        if report is None or not self._policy.due(report, now):
            return None
        return report

    def state(self, report: ControlReport, stats: LinkStats) -> Message:
        """Retained: a client that subscribes later gets the latest state at once."""
        return Message(
            self._topics.state,
            encode(state_payload(report, stats, tank_temperature=self._tank_temperature)),
            retain=True,
        )

    def state_sent(self, report: ControlReport, now: float) -> None:
        self._policy.mark_published(report, now)

    def recheck_s(self) -> float:
        """How long the link may wait for news before asking again: a change held back by the
        rate limit goes out then, even if the control loop has gone quiet. A floor, so that
        `min_interval_s: 0` (publish every change) cannot make the link spin."""
        return max(_MIN_RECHECK_S, self._policy.settings.min_interval_s)

    def new_session(self) -> None:
        """A fresh connection gets a full state at once."""
        self._policy.reset()

    def settings_changed(self) -> None:
        """An accepted change: the publishing policy follows a new `publish` section."""
        if self._publish_settings is not None:
            self._policy.settings = self._publish_settings()
