"""MQTT clients for tests that record what is published and wait for it, as Home Assistant would
listen: `PahoWatcher` (paho in its own thread, for tests without an event loop of their own or
with a subprocess agent) and `AsyncWatcher` (aiomqtt, in the test's event loop).

Both keep every message they receive (none is lost to a wait) and wait for events, never for a
fixed time: a timeout is a deadline for a broken test, generous for a busy machine.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

import aiomqtt
import paho.mqtt.client as paho
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from tests.helpers.mqtt_broker import MosquittoBroker

WAIT_S = 30.0  # the default deadline of a wait


@dataclasses.dataclass(frozen=True)
class Seen:
    """One message as a watcher received it."""

    topic: str
    payload: bytes
    retain: bool = False
    properties: Any = None
    at: float = 0.0  # time.monotonic() on arrival

    def json(self) -> Any:
        return json.loads(self.payload)

    @property
    def correlation(self) -> bytes | None:
        """The MQTT 5 correlation data, if any."""
        return getattr(self.properties, "CorrelationData", None)


def _matches(seen: Seen, topic: str, fields: dict[str, Any]) -> bool:
    if seen.topic != topic:
        return False
    if not fields:
        return True
    try:
        data = seen.json()
    except ValueError:
        return False
    return isinstance(data, dict) and all(data.get(k) == v for k, v in fields.items())


class PahoWatcher:
    """A paho client in its own thread, subscribed to `topics` (QoS 1)."""

    def __init__(
        self,
        port: int,
        topics: Sequence[str],
        *,
        client_id: str,
        mqtt5: bool = False,
        host: str = "127.0.0.1",
    ) -> None:
        self.messages: list[Seen] = []
        self._read = 0  # messages before this index were consumed by `next` or `drain`
        self._changed = threading.Condition()
        self.client = paho.Client(
            paho.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=paho.MQTTv5 if mqtt5 else paho.MQTTv311,
        )
        self.client.on_message = self._on_message
        self.client.connect(host, port)
        self.client.subscribe([(topic, 1) for topic in topics])
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        seen = Seen(
            message.topic,
            message.payload,
            bool(message.retain),
            getattr(message, "properties", None),
            time.monotonic(),
        )
        with self._changed:
            self.messages.append(seen)
            self._changed.notify_all()

    def _wait(self, find: Callable[[], Seen | None], timeout_s: float, what: str) -> Seen:
        deadline = time.monotonic() + timeout_s
        with self._changed:
            while (found := find()) is None:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError(f"nothing {what} within {timeout_s} s")
                self._changed.wait(remaining)
            return found

    def next(self, topic: str, timeout_s: float = WAIT_S, **fields: Any) -> Seen:
        """The first message on `topic` (with these JSON fields) after the one the previous
        `next` returned; the messages in between are consumed."""

        def find() -> Seen | None:
            for index in range(self._read, len(self.messages)):
                if _matches(self.messages[index], topic, fields):
                    self._read = index + 1
                    return self.messages[index]
            self._read = len(self.messages)
            return None

        return self._wait(find, timeout_s, f"new on {topic} matching {fields}")

    def find(self, topic: str, timeout_s: float = WAIT_S, **fields: Any) -> Seen:
        """The first message ever received on `topic` with these JSON fields (consumes none)."""

        def find() -> Seen | None:
            return next((m for m in self.messages if _matches(m, topic, fields)), None)

        return self._wait(find, timeout_s, f"on {topic} matching {fields}")

    def drain(self) -> list[Seen]:
        """The messages not consumed yet, consumed now."""
        with self._changed:
            unread = self.messages[self._read :]
            self._read = len(self.messages)
            return unread

    def wait_count(self, topic: str, count: int, timeout_s: float = WAIT_S) -> list[Seen]:
        """Until `count` messages on `topic` were received (consumed or not)."""

        def find() -> Seen | None:
            on_topic = [m for m in self.messages if m.topic == topic]
            return on_topic[-1] if len(on_topic) >= count else None

        self._wait(find, timeout_s, f"({count} messages) on {topic}")
        with self._changed:
            return [m for m in self.messages if m.topic == topic]

    def publish(
        self,
        topic: str,
        payload: dict[str, Any] | bytes,
        *,
        response_topic: str | None = None,
        correlation: bytes | None = None,
    ) -> None:
        properties = None
        if correlation is not None:
            properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
            properties.ResponseTopic = response_topic
            properties.CorrelationData = correlation
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        self.client.publish(topic, data, qos=1, properties=properties).wait_for_publish(5)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class AsyncWatcher:
    """An aiomqtt client subscribed to `topics` (QoS 1) in the test's event loop. `on` and the
    waits take topics relative to `root` (whole topics when it is empty)."""

    def __init__(
        self,
        broker: MosquittoBroker,
        topics: Sequence[str],
        *,
        root: str = "",
        **client_args: Any,
    ) -> None:
        self._broker = broker
        self._topics = list(topics)
        self._root = root
        self._client_args = client_args
        self.messages: list[Seen] = []
        self._changed = asyncio.Event()
        self.client: aiomqtt.Client | None = None

    def _topic(self, topic: str) -> str:
        return f"{self._root}/{topic}" if self._root else topic

    async def run(self, ready: asyncio.Event) -> None:
        """Records until cancelled; `ready` is set once subscribed."""
        async with aiomqtt.Client(
            self._broker.host, self._broker.port, **self._client_args
        ) as client:
            self.client = client
            for topic in self._topics:
                await client.subscribe(topic, qos=1)
            ready.set()
            async for message in client.messages:
                payload = message.payload
                assert isinstance(payload, bytes)
                self.messages.append(
                    Seen(
                        message.topic.value,
                        payload,
                        bool(message.retain),
                        message.properties,
                        time.monotonic(),
                    )
                )
                self._changed.set()

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AsyncWatcher]:
        """Records from when it is subscribed until the block ends."""
        ready = asyncio.Event()
        task = asyncio.ensure_future(self.run(ready))
        waiting = asyncio.ensure_future(ready.wait())
        await asyncio.wait({task, waiting}, timeout=WAIT_S, return_when=asyncio.FIRST_COMPLETED)
        waiting.cancel()
        if task.done():
            task.result()  # the connection failed: say why
        assert ready.is_set(), f"not subscribed within {WAIT_S} s"
        try:
            yield self
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
                await task

    def on(self, topic: str) -> list[Seen]:
        topic = self._topic(topic)
        return [m for m in self.messages if m.topic == topic]

    async def wait_for(
        self, predicate: Callable[[AsyncWatcher], bool], within_s: float = WAIT_S, what: str = ""
    ) -> None:
        """Until `predicate(self)` holds, checked on every message (and every 0.2 s)."""
        deadline = time.monotonic() + within_s
        while not predicate(self):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                topics = [(m.topic, m.payload[:60]) for m in self.messages[-15:]]
                raise AssertionError(f"timed out waiting for {what}; last: {topics}")
            self._changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), min(remaining, 0.2))

    async def wait_count(self, topic: str, count: int, within_s: float = WAIT_S) -> list[Seen]:
        """Until `count` messages arrived on `topic`; returns them all."""
        await self.wait_for(
            lambda watcher: len(watcher.on(topic)) >= count,
            within_s,
            f"{count} on {self._topic(topic)}",
        )
        return self.on(topic)

    async def publish(self, topic: str, payload: bytes, **kwargs: Any) -> None:
        assert self.client is not None
        await self.client.publish(topic, payload, qos=1, **kwargs)
