"""Where an incoming message goes and where its answer goes (pure: no socket, no clock).

The link subscribes to `history/get`, with remote control to `config/set` and `cmd/<name>`, and
while discovery is on to Home Assistant's birth topic. For each message `RequestRouter` says
what it is (its kind, also for the rate gate in `limits.py`), whether it is refused before it
is read (a retained request, a response topic outside `<root>/reply/`), what the answer says
and on which topics it goes: the documented result topic, and the request's MQTT 5 response
topic when it carried a valid one.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.mqtt import limits
from edge_agent.mqtt.ha_discovery import ONLINE
from edge_agent.mqtt.handlers import HistoryResult, RemoteResult
from edge_agent.mqtt.payloads import encode, history_result_payload, result_payload
from edge_agent.mqtt.requests import CONFIG_SET, HISTORY_GET
from edge_agent.mqtt.topics import Topics

Refusal = tuple[str, str]  # (field, reason), as in a result's errors

_RETAINED = (
    "payload",
    "a retained request is never executed (it would repeat at every reconnect): publish "
    "requests without the retain flag, and clear this one with an empty retained message",
)


@dataclass(frozen=True, slots=True)
class Route:
    """What a message is: `kind` is one of `limits`' kinds; a request is answered on
    `result_topic`, naming `command` in the result."""

    kind: str
    result_topic: str = ""
    command: str = ""


@dataclass(frozen=True, slots=True)
class ResponseTarget:
    """A request's MQTT 5 response topic and correlation data (None: it carried none)."""

    topic: str | None = None
    correlation: bytes | None = None


class RequestRouter:
    def __init__(self, topics: Topics, *, remote: bool, birth_topic: str | None) -> None:
        """`remote`: config/set and commands are served; `birth_topic`: Home Assistant's birth
        messages are heard (None: discovery is off)."""
        self._topics = topics
        self._remote = remote
        self._birth_topic = birth_topic
        self._retained_answered: set[str] = set()  # per session: answer a retained one once

    def new_session(self) -> None:
        self._retained_answered.clear()

    def kind(self, topic: str) -> str:
        """The request's kind for the rate gate, whether or not this link serves it."""
        return self._classify(topic).kind

    def route(self, topic: str) -> Route | None:
        """What a message on `topic` is (kind `OTHER`: an unknown topic); None for a request
        this link does not serve (a source the agent does not control): dropped silently."""
        route = self._classify(topic)
        if not self._remote and route.kind not in (limits.HISTORY_GET, limits.BIRTH):
            return None
        return route

    def _classify(self, topic: str) -> Route:
        topics = self._topics
        if topic == topics.config_set:
            return Route(limits.CONFIG_SET, topics.config_result, CONFIG_SET)
        if topic == topics.history_get:
            return Route(limits.HISTORY_GET, topics.history_result, HISTORY_GET)
        name = topics.parse_command_topic(topic)
        if name is not None:
            return Route(limits.COMMAND, topics.command_result(name), name)
        if self._birth_topic is not None and topic == self._birth_topic:
            return Route(limits.BIRTH)
        return Route(limits.OTHER)

    @staticmethod
    def home_assistant_online(payload: bytes, *, retain: bool) -> bool:
        """A birth message that asks for discovery again: a retained "online" is old news
        (discovery went out moments ago at connect)."""
        return not retain and payload.strip() == ONLINE.encode()

    def refusal(
        self, route: Route, payload: bytes, *, retain: bool, response: ResponseTarget
    ) -> Refusal | tuple[()] | None:
        """A request refused before it is read: (field, reason) to answer with, () to drop
        silently, None to go on."""
        if retain:
            # A retained request would be replayed at every reconnect (set_soc again and
            # again): never executed. Answered once per connection; an empty retained message
            # is the clearing of one.
            if not payload or route.result_topic in self._retained_answered:
                return ()
            self._retained_answered.add(route.result_topic)
            return _RETAINED
        if response.topic is not None:
            problem = self._topics.response_topic_problem(response.topic)
            if problem is not None:
                return ("response_topic", f"{problem}; the request was not executed")
        return None

    def reply_topics(self, route: Route, response: ResponseTarget) -> list[str]:
        """The documented result topic, then the response topic when it is another one that
        is allowed (only below <root>/reply/, never a topic that means something)."""
        topic = response.topic
        if (
            topic is None
            or topic == route.result_topic
            or self._topics.response_topic_problem(topic) is not None
        ):
            return [route.result_topic]
        return [route.result_topic, topic]


def refused(route: Route, refusal: Refusal, now: float) -> bytes:
    return encode(result_payload(route.command, None, (refusal,), now))


def remote_answer(result: RemoteResult, now: float) -> bytes:
    return encode(
        result_payload(
            result.command,
            result.request_id,
            result.errors,
            now,
            result.config_revision,
            changed=result.changed,
        )
    )


def history_answer(result: HistoryResult, now: float) -> bytes:
    return encode(history_result_payload(result.request_id, result.errors, now, page=result.page))


def payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


def response_target(properties: object | None) -> ResponseTarget:
    """The MQTT 5 response topic and correlation data of a request, if it carried them."""
    if properties is None:
        return ResponseTarget()
    topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    if not isinstance(topic, str) or not topic or any(c in topic for c in "+#"):
        return ResponseTarget()
    return ResponseTarget(topic, correlation if isinstance(correlation, bytes) else None)
