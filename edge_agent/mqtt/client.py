"""The agent's MQTT link: publishes status, announce, config, state and events; answers
`config/set`, `cmd/<name>` and `history/get` requests through the handlers it is given
(`handlers.py`). Built on aiomqtt (paho-mqtt underneath); the only module of this package that
touches the network.

The control loop never waits on MQTT: it hands each report to `MqttLink.offer_report`, which
only stores it and queues its events. `MqttLink.run` does all network work in its own task,
survives any broker fault (reconnecting with capped, jittered exponential backoff) and delivers
queued events once the broker is back. Events are removed from the queue only after the broker
acknowledged them (QoS 1), so an outage mid-publish repeats an event rather than losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections import deque
from collections.abc import Callable, Iterable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.control.model import ControlEvent, ControlReport, temperatures
from edge_agent.mqtt import limits
from edge_agent.mqtt.ha_discovery import birth_topic
from edge_agent.mqtt.handlers import HistoryHandler, NoHistory, RemoteHandler, RemoteResult
from edge_agent.mqtt.limits import LogBudget, RequestGate
from edge_agent.mqtt.payloads import (
    LinkStats,
    encode,
    event_payload,
    history_result_payload,
    result_payload,
    state_payload,
)
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.mqtt.topics import Topics

_MIN_RECHECK_S = 0.05
_RECANCEL_S = 0.1  # how long a cancelled session task gets before it is cancelled again
_LOGGER = logging.getLogger(__name__)

QOS = 1
ONLINE = b"online"
OFFLINE = b"offline"
# CONNACK codes that mean "your credentials are wrong" (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87).
_AUTH_CODES = frozenset({4, 5, 0x86, 0x87})

PayloadFactory = Callable[[], dict[str, Any]]
# Native Home Assistant discovery: (topic, payload), see edge_agent.mqtt.ha_discovery.
# Given the temperature inputs the box has read so far (an unfitted xT2 gets no entity).
DiscoveryFactory = Callable[[frozenset[str]], tuple[str, dict[str, Any]]]


class Backoff:
    """Capped exponential delays with jitter: each delay is drawn from [d/2, d] where d doubles
    from `initial_s` up to `max_s`. The jitter keeps a fleet of agents from reconnecting in
    lockstep after a broker restart."""

    def __init__(
        self, initial_s: float, max_s: float, rng: Callable[[], float] = random.random
    ) -> None:
        self._initial = initial_s
        self._max = max_s
        self._rng = rng
        self._attempt = 0

    def next_delay(self) -> float:
        ceiling = min(self._max, self._initial * 2.0 ** min(self._attempt, 30))
        self._attempt += 1
        return ceiling * (0.5 + 0.5 * self._rng())

    def reset(self) -> None:
        self._attempt = 0


def describe_error(error: BaseException) -> str:
    """One line an installer can act on."""
    if isinstance(error, aiomqtt.MqttCodeError) and _code(error.rc) in _AUTH_CODES:
        return f"not authorised: check username/password ({error})"
    text = str(error)
    if "Disconnected" in text or isinstance(error, _SessionEndedError):
        cause = error.__cause__
        return f"connection lost ({cause or text})"
    if "CERTIFICATE_VERIFY_FAILED" in text or isinstance(error, ssl.SSLCertVerificationError):
        return (
            f"TLS certificate check failed: {text} (check ca_file; tls_insecure disables the "
            "check, for testing only)"
        )
    if isinstance(error, ssl.SSLError) or "SSL" in text:
        return f"TLS error: {text}"
    if "Connection refused" in text or "Errno 111" in text:
        return f"broker refuses connections (not running or wrong port?): {text}"
    if "timed out" in text:
        return f"broker did not answer in time: {text}"
    return text or type(error).__name__


def _code(rc: object) -> int | None:
    value = getattr(rc, "value", rc)
    return value if isinstance(value, int) else None


class _SessionEndedError(Exception):
    """The connection ended while the link was still supposed to run."""


class MqttLink:
    """One agent's connection to its broker. Create it in the event loop that runs the agent;
    call `offer_report` from that loop's thread (the control loop's `on_report` hook)."""

    def __init__(
        self,
        settings: MqttSettings,
        topics: Topics,
        announce: PayloadFactory,
        config_payload: PayloadFactory,
        remote: RemoteHandler | None,
        *,
        policy: PublishPolicy | None = None,
        publish_settings: Callable[[], PublishSettings] | None = None,
        wall_clock: Callable[[], float] = time.time,
        agent_clock: Callable[[], float] | None = None,
        discovery: DiscoveryFactory | None = None,
        history: HistoryHandler | None = None,
    ) -> None:
        """`announce` and `config_payload` build the retained payloads (called at each connect
        and after an accepted config/set); `publish_settings`, when given, is read after each
        accepted config/set so a remote change of the `publish` section takes effect.
        `discovery` builds the Home Assistant discovery message; it is published only while
        `settings.ha_discovery` is on. `remote` answers `config/set` and commands (None: a
        source the agent does not control, neither is subscribed); `history` answers
        `history/get`, without it (no data log) every such request is rejected. `wall_clock`
        paces publishing (real seconds); `agent_clock` (default: the wall clock) is the
        controller's time, on which requests are decided and results stamped: a simulated box
        runs on its own."""
        self.settings = settings
        self.topics = topics
        self._announce = announce
        self._config_payload = config_payload
        self._remote = remote
        self._policy = policy or PublishPolicy()
        self._publish_settings = publish_settings
        self._now = wall_clock
        self._agent_now = agent_clock or wall_clock
        self._discovery = discovery if settings.ha_discovery else None
        # Discovery waits for the first report, so it already knows which inputs read, and
        # goes out again when an input reads for the first time (a sensor plugged in later).
        self._temperatures_read: set[str] = set()
        self._discovery_due = False
        self._history: HistoryHandler = history or NoHistory()
        self._birth_topic = birth_topic(settings.ha_discovery_prefix)
        self._events: deque[ControlEvent] = deque(maxlen=settings.event_queue_size)
        self._latest: ControlReport | None = None
        self._wake = asyncio.Event()
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self._outage_logged = False
        self._outage_started: float | None = None
        self._dropped_since_log = 0
        self.dropped_events = 0  # events lost to a full queue since start
        self.requests = RequestGate()  # rate limits and counts incoming requests
        self._log_budget = LogBudget()
        self._monotonic = time.monotonic
        self._retained_answered: set[str] = set()  # per session: answer a retained one once
        self.connected = False
        # Subscribed to its requests: a request sent before this is lost (a clean session).
        self.serving = False
        self.connections = 0  # successful connects since start
        self.messages_published = 0
        self.bytes_published = 0  # payload bytes

    # -- the control loop's side ----------------------------------------------------------------

    def offer_report(self, report: ControlReport) -> None:
        """Keep the latest report for the state and queue its events. Never blocks or raises."""
        try:
            self._latest = report
            read = {
                name
                for name, value in temperatures(report.measurement).items()
                if value is not None
            }
            if not read <= self._temperatures_read:
                self._temperatures_read |= read
                self._discovery_due = True
            for event in report.events:
                if len(self._events) == self._events.maxlen:
                    self.dropped_events += 1
                    self._dropped_since_log += 1
                self._events.append(event)  # a full deque drops its oldest
            self._wake.set()
        except Exception:  # never let a publishing problem reach protection
            _LOGGER.exception("Could not queue a report for MQTT")

    @property
    def queued_events(self) -> int:
        return len(self._events)

    # -- the link's own task --------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Connect, publish and answer until `stop` is set; only cancellation escapes."""
        try:
            await self._run(stop)
        finally:
            self._history.close()

    async def _run(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            try:
                await self._session(stop)
            except asyncio.CancelledError:
                raise
            except Exception as err:  # every broker or network fault: log once, retry
                self._note_outage(err)
            finally:
                self.connected = False
                self.serving = False
            if stop.is_set():
                break
            await _wait(stop, self._backoff.next_delay())

    async def _session(self, stop: asyncio.Event) -> None:
        async with self._client() as client:
            self._note_connected()
            self._retained_answered.clear()
            await self._publish_retained(client, online=True)
            # history/get even without remote control or a data log: the client is told why.
            requests = [(self.topics.history_get, QOS)]
            if self._remote is not None:
                requests += [(self.topics.config_set, QOS), (self.topics.command_wildcard, QOS)]
            await client.subscribe(requests)
            if self._discovery is not None:
                # Home Assistant says "online" here after a restart: discovery again then,
                # in case it lost the retained message (a broker without persistence).
                await client.subscribe(self._birth_topic, QOS)
            self.serving = True
            self._policy.reset()  # a fresh connection gets a full state at once
            self._wake.set()
            await self._serve(client, stop)
            # Stopping: say goodbye explicitly, a clean disconnect does not fire the will.
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                await self._publish(
                    client, self.topics.status, OFFLINE, retain=True, ack_timeout_s=2
                )

    def _client(self) -> aiomqtt.Client:
        s = self.settings
        return aiomqtt.Client(
            s.host,
            s.port,
            username=s.username,
            password=s.password,
            identifier=s.effective_client_id,
            protocol=(
                aiomqtt.ProtocolVersion.V5 if s.protocol == 5 else aiomqtt.ProtocolVersion.V311
            ),
            will=aiomqtt.Will(self.topics.status, OFFLINE, qos=QOS, retain=True),
            queue_type=self._gated_queue_type(),
            max_queued_incoming_messages=s.incoming_queue_size,
            keepalive=s.keepalive_s,
            timeout=s.operation_timeout_s,
            tls_context=self._tls_context() if s.tls else None,
            logger=_LOGGER.getChild("paho"),
        )

    def _gated_queue_type(self) -> type[asyncio.Queue[aiomqtt.Message]]:
        """aiomqtt hands every incoming message to its queue's put_nowait (in the event loop):
        here a request over its kind's rate, or one more than the bounded queue holds, is
        dropped and counted before it takes any memory or time."""
        link = self

        class GatedQueue(asyncio.Queue[aiomqtt.Message]):
            def put_nowait(self, item: aiomqtt.Message) -> None:
                kind = link.request_kind(item.topic.value)
                if not link.requests.admit(kind, link._monotonic()):
                    return
                if self.full():
                    link.requests.count_dropped(limits.QUEUE_FULL)
                    return
                super().put_nowait(item)

        return GatedQueue

    def request_kind(self, topic: str) -> str:
        if topic == self.topics.config_set:
            return limits.CONFIG_SET
        if topic == self.topics.history_get:
            return limits.HISTORY_GET
        if self.topics.parse_command_topic(topic) is not None:
            return limits.COMMAND
        if self._discovery is not None and topic == self._birth_topic:
            return limits.BIRTH
        return limits.OTHER

    @property
    def link_stats(self) -> LinkStats:
        return LinkStats(self.requests.received, dict(self.requests.dropped))

    def _tls_context(self) -> ssl.SSLContext:
        s = self.settings
        context = ssl.create_default_context(cafile=str(s.ca_file) if s.ca_file else None)
        if s.cert_file is not None and s.key_file is not None:
            context.load_cert_chain(str(s.cert_file), str(s.key_file))
        if s.tls_insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        return context

    async def _serve(self, client: aiomqtt.Client, stop: asyncio.Event) -> None:
        """Receive requests and publish state/events until stop or the connection breaks."""
        tasks = [
            asyncio.ensure_future(self._receive(client)),
            asyncio.ensure_future(self._publish_loop(client)),
            asyncio.ensure_future(stop.wait()),
        ]
        try:
            done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
        finally:
            await _cancel_all(tasks)
        for task in done:
            error = task.exception()
            if error is not None:
                raise error
        if not stop.is_set():
            raise _SessionEndedError("connection closed")

    async def _publish_retained(self, client: aiomqtt.Client, *, online: bool) -> None:
        if online:
            await self._publish(client, self.topics.status, ONLINE, retain=True)
        await self._publish(client, self.topics.announce, encode(self._announce()), retain=True)
        # Also after a config change: an output type change adds or removes entities.
        await self._publish_discovery(client)
        await self._publish(client, self.topics.config, encode(self._config_payload()), retain=True)

    async def _publish_discovery(self, client: aiomqtt.Client) -> None:
        if self._discovery is None:
            return
        if self._latest is None:  # nothing read yet: wait for the first report
            self._discovery_due = True
            return
        self._discovery_due = False
        topic, payload = self._discovery(frozenset(self._temperatures_read))
        await self._publish(client, topic, encode(payload), retain=True)

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            # Also look again after min_interval_s without news: a change held back by the
            # rate limit goes out then, even if the control loop has gone quiet.
            # asyncio.timeout, not wait_for: see _cancel_all.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._recheck_s()):
                    await self._wake.wait()
            self._wake.clear()
            if self._discovery_due:
                await self._publish_discovery(client)
            await self._flush_events(client)
            await self._maybe_publish_state(client)

    def _recheck_s(self) -> float:
        # A floor, so that min_interval_s: 0 (publish every change) cannot make this loop spin.
        return max(_MIN_RECHECK_S, self._policy.settings.min_interval_s)

    async def _flush_events(self, client: aiomqtt.Client) -> None:
        if self._dropped_since_log:
            _LOGGER.warning(
                "MQTT event queue was full: dropped the %d oldest events", self._dropped_since_log
            )
            self._dropped_since_log = 0
        while self._events:
            event = self._events[0]
            await self._publish(client, self.topics.event, encode(event_payload(event)))
            # Only after the broker's acknowledgement; the queue may have moved meanwhile.
            if self._events and self._events[0] is event:
                self._events.popleft()

    async def _maybe_publish_state(self, client: aiomqtt.Client) -> None:
        report = self._latest
        if report is None:
            return
        now = self._now()
        if not self._policy.due(report, now):
            return
        # Retained: a client that subscribes later gets the latest state at once.
        state = state_payload(report, self.link_stats)
        await self._publish(client, self.topics.state, encode(state), retain=True)
        self._policy.mark_published(report, now)

    async def _receive(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                await self._handle(client, message)
            except (aiomqtt.MqttError, asyncio.CancelledError):
                raise  # the connection: the session ends and reconnects
            except Exception:  # a bug with one request must not end the session
                topic = message.topic.value
                self._log("handler failed", logging.ERROR, "Answering on %s failed", topic)

    async def _handle(self, client: aiomqtt.Client, message: aiomqtt.Message) -> None:
        topic = message.topic.value
        if self._discovery is not None and topic == self._birth_topic:
            await self._home_assistant_status(client, message)
            return
        if topic != self.topics.history_get and self._remote is None:
            return
        result_topic, command = self._result_topic(topic)
        if result_topic is None:
            self._log("unknown topic", logging.DEBUG, "Ignoring a message on %s", topic)
            return
        now = self._agent_now()
        payload = _payload_bytes(message.payload)
        refusal = self._refusal(message, topic, payload)
        if refusal is not None:
            if refusal:
                body = encode(result_payload(command, None, (refusal,), now))
                await self._publish(client, result_topic, body)
            return
        if topic == self.topics.history_get:
            await self._answer_history(client, message, payload)
            return
        remote = self._remote
        assert remote is not None  # checked above
        try:
            if topic == self.topics.config_set:
                # The overlay's fsync runs on a thread; answered once saved and applied.
                result = await remote.handle_config_set_async(payload, self._agent_now)
            else:
                result = remote.handle_command(command, payload, now)
        except Exception:  # a bug in one handler must not take the link down
            self._log("handler failed", logging.ERROR, "Handling the request on %s failed", topic)
            return
        await self._answer(client, message, result_topic, result, now)
        if result.accepted and result.changed:
            await self._config_changed(client)

    def _result_topic(self, topic: str) -> tuple[str | None, str]:
        """Where a request on `topic` is answered, and its command name for the result."""
        if topic == self.topics.history_get:
            return self.topics.history_result, "history/get"
        if topic == self.topics.config_set:
            return self.topics.config_result, "config/set"
        name = self.topics.parse_command_topic(topic)
        if name is None:
            return None, ""
        return self.topics.command_result(name), name

    def _refusal(
        self, message: aiomqtt.Message, topic: str, payload: bytes
    ) -> tuple[str, str] | tuple[()] | None:
        """A request refused before it is read: (field, reason) to answer with, () to drop
        silently, None to go on."""
        if message.retain:
            # A retained request would be replayed at every reconnect (set_soc again and
            # again): never executed. Answered once per connection; an empty retained message
            # is the clearing of one.
            if not payload or topic in self._retained_answered:
                return ()
            self._retained_answered.add(topic)
            self._log("retained", logging.WARNING, "Refusing a retained request on %s", topic)
            return (
                "payload",
                "a retained request is never executed (it would repeat at every reconnect): "
                "publish requests without the retain flag, and clear this one with an empty "
                "retained message",
            )
        response_topic, _ = _response_target(message)
        if response_topic is not None:
            problem = self.topics.response_topic_problem(response_topic)
            if problem is not None:
                return ("response_topic", f"{problem}; the request was not executed")
        return None

    async def _answer_history(
        self, client: aiomqtt.Client, message: aiomqtt.Message, payload: bytes
    ) -> None:
        result = await self._history.answer(payload)  # reads on a worker thread
        body = encode(
            history_result_payload(
                result.request_id, result.errors, self._agent_now(), page=result.page
            )
        )
        await self._reply(client, message, self.topics.history_result, body)

    async def _home_assistant_status(
        self, client: aiomqtt.Client, message: aiomqtt.Message
    ) -> None:
        # A retained "online" is old news: discovery went out moments ago at connect.
        if message.retain or _payload_bytes(message.payload).strip() != ONLINE:
            return
        _LOGGER.info("Home Assistant came online: publishing discovery again")
        await self._publish_discovery(client)

    async def _answer(
        self,
        client: aiomqtt.Client,
        message: aiomqtt.Message,
        result_topic: str,
        result: RemoteResult,
        now: float,
    ) -> None:
        body = encode(
            result_payload(
                result.command,
                result.request_id,
                result.errors,
                now,
                result.config_revision,
                changed=result.changed,
            )
        )
        await self._reply(client, message, result_topic, body)

    async def _reply(
        self, client: aiomqtt.Client, message: aiomqtt.Message, result_topic: str, body: bytes
    ) -> None:
        """On the documented result topic, and on the request's MQTT 5 response topic."""
        await self._publish(client, result_topic, body)
        response_topic, correlation = _response_target(message)
        # _refusal checked it: only below <root>/reply/, never a topic that means something
        if response_topic is not None and self.topics.response_topic_problem(response_topic):
            return
        if response_topic is not None and response_topic != result_topic:
            properties = None
            if correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = correlation
            await self._publish(client, response_topic, body, properties=properties)

    async def _config_changed(self, client: aiomqtt.Client) -> None:
        """An accepted config/set: new retained config and announce (output types may have
        changed), and the new publishing policy."""
        if self._publish_settings is not None:
            self._policy.settings = self._publish_settings()
        await self._publish_retained(client, online=False)
        self._wake.set()  # thresholds may have changed what the state says

    async def _publish(
        self,
        client: aiomqtt.Client,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
        ack_timeout_s: float | None = None,
    ) -> None:
        await client.publish(
            topic, payload, qos=QOS, retain=retain, properties=properties, timeout=ack_timeout_s
        )
        self.messages_published += 1
        self.bytes_published += len(payload)

    # -- logging ----------------------------------------------------------------------------------

    def _log(self, kind: str, level: int, message: str, *args: object) -> None:
        """A line about something a client sent: at most a few per kind per minute, whatever
        the rate (tracebacks only for internal errors, and budgeted too)."""
        allowed, suppressed = self._log_budget.allow(kind, self._monotonic())
        if suppressed:
            _LOGGER.warning("%d more '%s' lines suppressed in the last minute", suppressed, kind)
        if allowed:
            _LOGGER.log(level, message, *args, exc_info=level >= logging.ERROR)

    def _note_connected(self) -> None:
        self.connected = True
        self.connections += 1
        self._backoff.reset()
        s = self.settings
        if self._outage_started is not None:
            _LOGGER.warning(
                "MQTT connected again to %s:%d after %.0f s",
                s.host,
                s.port,
                time.monotonic() - self._outage_started,
            )
        else:
            _LOGGER.info("MQTT connected to %s:%d as %s", s.host, s.port, s.effective_client_id)
        self._outage_logged = False
        self._outage_started = None

    def _note_outage(self, error: BaseException) -> None:
        """One clear line per outage; the retries of the same outage go to debug."""
        if self._outage_started is None:
            self._outage_started = time.monotonic()
        s = self.settings
        if self._outage_logged:
            _LOGGER.debug("MQTT still unavailable: %s", describe_error(error))
            return
        self._outage_logged = True
        _LOGGER.error(
            "MQTT broker %s:%d unavailable: %s; retrying with backoff up to %g s "
            "(protection continues)",
            s.host,
            s.port,
            describe_error(error),
            s.backoff_max_s,
        )


def _payload_bytes(payload: object) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


def _response_target(message: aiomqtt.Message) -> tuple[str | None, bytes | None]:
    """The MQTT 5 response topic and correlation data of a request, if it carried them."""
    properties = message.properties
    if properties is None:
        return None, None
    topic = getattr(properties, "ResponseTopic", None)
    correlation = getattr(properties, "CorrelationData", None)
    if not isinstance(topic, str) or not topic or any(c in topic for c in "+#"):
        return None, None
    return topic, correlation if isinstance(correlation, bytes) else None


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):  # not wait_for: see _cancel_all
            await stop.wait()


async def _cancel_all(tasks: Iterable[asyncio.Future[Any]]) -> None:
    """Cancel the tasks and wait until every one has ended.

    On Python 3.11, asyncio.wait_for swallows a cancel that arrives just as the future it
    waits for completes (CPython gh-86296, fixed in 3.12): the task carries on as if never
    cancelled. A stop set before the session served hit this every time in the publish loop
    (hence asyncio.timeout there); aiomqtt still waits for acknowledgements with wait_for, so
    cancel again until each task has ended.
    """
    pending = set(tasks)
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=_RECANCEL_S)


__all__ = ["Backoff", "MqttLink", "describe_error"]
