"""The agent's MQTT link: the connection, and the messages through it. Built on aiomqtt
(paho-mqtt underneath); the only module of this package that touches the network.

What is published and when is the outbox's (`outbox.py`), what a message is and where its
answer goes the router's (`router.py`), what answers a request the handlers' it is given
(`handlers.py`). This module connects, reconnects with capped, jittered exponential backoff,
sends what the outbox says is due and hands each request to its handler.

The control loop never waits on MQTT: it hands each report to `MqttLink.offer_report`, which
only stores it and queues its events. `MqttLink.run` does all network work in its own task,
survives any broker fault and delivers queued events once the broker is back. Events leave the
queue only after the broker acknowledged them (QoS 1), so an outage mid-publish repeats an
event rather than losing it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable
from typing import Any

import aiomqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.control.model import ControlReport
from edge_agent.mqtt import limits, router
from edge_agent.mqtt.ha_discovery import birth_topic
from edge_agent.mqtt.handlers import HistoryHandler, NoHistory, RemoteHandler
from edge_agent.mqtt.limits import LogBudget, RequestGate
from edge_agent.mqtt.outbox import OFFLINE, DiscoveryFactory, Message, Outbox, PayloadFactory
from edge_agent.mqtt.payloads import LinkStats
from edge_agent.mqtt.policy import PublishPolicy
from edge_agent.mqtt.router import RequestRouter, ResponseTarget, Route
from edge_agent.mqtt.topics import Topics

_RECANCEL_S = 0.1  # how long a cancelled session task gets before it is cancelled again
_LOGGER = logging.getLogger(__name__)

QOS = 1
# CONNACK codes that mean "your credentials are wrong" (MQTT 3.1.1: 4, 5; MQTT 5: 0x86, 0x87).
_AUTH_CODES = frozenset({4, 5, 0x86, 0x87})


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
        tank_temperature: str | None = None,
    ) -> None:
        """`announce` and `config_payload` build the retained payloads (called at each connect
        and after an accepted config/set); `publish_settings`, when given, is read after each
        accepted config/set so a remote change of the `publish` section takes effect.
        `discovery` builds the Home Assistant discovery message; it is published only while
        `settings.ha_discovery` is on. `remote` answers `config/set` and commands (None: a
        source the agent does not control, neither is subscribed); `history` answers
        `history/get`, without it (no data log) every such request is rejected.
        `tank_temperature`: the input that reads the heater tank, see `Outbox`. `wall_clock`
        paces publishing (real seconds); `agent_clock` (default: the wall clock) is the
        controller's time, on which requests are decided and results stamped: a simulated box
        runs on its own."""
        self.settings = settings
        self.topics = topics
        self._remote = remote
        self._now = wall_clock
        self._agent_now = agent_clock or wall_clock
        self._history: HistoryHandler = history or NoHistory()
        discovery = discovery if settings.ha_discovery else None
        self._outbox = Outbox(
            topics,
            announce,
            config_payload,
            event_queue_size=settings.event_queue_size,
            policy=policy,
            publish_settings=publish_settings,
            discovery=discovery,
            tank_temperature=tank_temperature,
        )
        # Home Assistant's birth message asks for discovery again (only while it is on).
        self._birth_topic = (
            birth_topic(settings.ha_discovery_prefix) if discovery is not None else None
        )
        self._router = RequestRouter(
            topics, remote=remote is not None, birth_topic=self._birth_topic
        )
        self._wake = asyncio.Event()
        self._backoff = Backoff(settings.backoff_initial_s, settings.backoff_max_s)
        self._outage_logged = False
        self._outage_started: float | None = None
        self.requests = RequestGate()  # rate limits and counts incoming requests
        self._log_budget = LogBudget()
        self._monotonic = time.monotonic
        self.connected = False
        # Subscribed to its requests: a request sent before this is lost (a clean session).
        self.serving = False
        self.connections = 0  # successful connects since start
        self.failed_attempts = 0  # connects that failed since start
        self.messages_published = 0
        self.bytes_published = 0  # payload bytes

    # -- the control loop's side ----------------------------------------------------------------

    def offer_report(self, report: ControlReport) -> None:
        """Keep the latest report for the state and queue its events. Never blocks or raises."""
        try:
            self._outbox.offer(report)
            self._wake.set()
        except Exception:  # never let a publishing problem reach protection
            _LOGGER.exception("Could not queue a report for MQTT")

    @property
    def queued_events(self) -> int:
        return self._outbox.queued_events

    @property
    def dropped_events(self) -> int:
        """Events lost to a full queue since start."""
        return self._outbox.dropped_events

    @property
    def link_stats(self) -> LinkStats:
        return LinkStats(self.requests.received, dict(self.requests.dropped))

    def request_kind(self, topic: str) -> str:
        return self._router.kind(topic)

    # -- the connection -------------------------------------------------------------------------

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
            self._router.new_session()
            await self._send(client, self._outbox.retained(online=True))
            # history/get even without remote control or a data log: the client is told why.
            requests = [(self.topics.history_get, QOS)]
            if self._remote is not None:
                requests += [(self.topics.config_set, QOS), (self.topics.command_wildcard, QOS)]
            await client.subscribe(requests)
            if self._birth_topic is not None:
                # Home Assistant says "online" here after a restart: discovery again then,
                # in case it lost the retained message (a broker without persistence).
                await client.subscribe(self._birth_topic, QOS)
            self.serving = True
            self._outbox.new_session()
            self._wake.set()
            await self._serve(client, stop)
            # Stopping: say goodbye explicitly, a clean disconnect does not fire the will.
            with contextlib.suppress(aiomqtt.MqttError, asyncio.TimeoutError):
                await self._publish(client, self._outbox.offline(), ack_timeout_s=2)

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

    # -- publishing -----------------------------------------------------------------------------

    async def _publish_loop(self, client: aiomqtt.Client) -> None:
        while True:
            # Also look again after a while without news (`Outbox.recheck_s`).
            # asyncio.timeout, not wait_for: see _cancel_all.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self._outbox.recheck_s()):
                    await self._wake.wait()
            self._wake.clear()
            if self._outbox.discovery_due:
                await self._send(client, self._outbox.discovery())
            await self._flush_events(client)
            await self._maybe_publish_state(client)

    async def _flush_events(self, client: aiomqtt.Client) -> None:
        dropped = self._outbox.take_dropped()
        if dropped:
            _LOGGER.warning("MQTT event queue was full: dropped the %d oldest events", dropped)
        while (pending := self._outbox.next_event()) is not None:
            event, message = pending
            await self._publish(client, message)
            self._outbox.event_sent(event)  # only after the broker's acknowledgement

    async def _maybe_publish_state(self, client: aiomqtt.Client) -> None:
        now = self._now()
        report = self._outbox.state_due(now)
        if report is None:
            return
        await self._publish(client, self._outbox.state(report, self.link_stats))
        self._outbox.state_sent(report, now)

    async def _send(self, client: aiomqtt.Client, messages: Iterable[Message]) -> None:
        for message in messages:
            await self._publish(client, message)

    async def _publish(
        self,
        client: aiomqtt.Client,
        message: Message,
        *,
        properties: Properties | None = None,
        ack_timeout_s: float | None = None,
    ) -> None:
        await client.publish(
            message.topic,
            message.payload,
            qos=QOS,
            retain=message.retain,
            properties=properties,
            timeout=ack_timeout_s,
        )
        self.messages_published += 1
        self.bytes_published += len(message.payload)

    # -- requests -------------------------------------------------------------------------------

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
        route = self._router.route(topic)
        if route is None:
            return
        payload = router.payload_bytes(message.payload)
        if route.kind == limits.BIRTH:
            if self._router.home_assistant_online(payload, retain=message.retain):
                _LOGGER.info("Home Assistant came online: publishing discovery again")
                await self._send(client, self._outbox.discovery())
            return
        if route.kind == limits.OTHER:
            self._log("unknown topic", logging.DEBUG, "Ignoring a message on %s", topic)
            return
        now = self._agent_now()
        response = router.response_target(message.properties)
        refusal = self._router.refusal(route, payload, retain=message.retain, response=response)
        if refusal is not None:
            if refusal:
                if message.retain:
                    self._log(
                        "retained", logging.WARNING, "Refusing a retained request on %s", topic
                    )
                await self._publish(
                    client, Message(route.result_topic, router.refused(route, refusal, now))
                )
            return
        if route.kind == limits.HISTORY_GET:
            answer = await self._history.answer(payload)  # reads on a worker thread
            await self._reply(
                client, route, response, router.history_answer(answer, self._agent_now())
            )
            return
        remote = self._remote
        assert remote is not None  # the router serves no other request without it
        try:
            if route.kind == limits.CONFIG_SET:
                # The overlay's fsync runs on a thread; answered once saved and applied.
                result = await remote.handle_config_set_async(payload, self._agent_now)
            else:
                result = remote.handle_command(route.command, payload, now)
        except Exception:  # a bug in one handler must not take the link down
            self._log("handler failed", logging.ERROR, "Handling the request on %s failed", topic)
            return
        await self._reply(client, route, response, router.remote_answer(result, now))
        if result.accepted and result.changed:
            await self._config_changed(client)

    async def _reply(
        self, client: aiomqtt.Client, route: Route, response: ResponseTarget, body: bytes
    ) -> None:
        """On the documented result topic, and on the request's MQTT 5 response topic."""
        result_topic, *response_topics = self._router.reply_topics(route, response)
        await self._publish(client, Message(result_topic, body))
        for topic in response_topics:
            properties = None
            if response.correlation is not None:
                properties = Properties(PacketTypes.PUBLISH)  # type: ignore[no-untyped-call]
                properties.CorrelationData = response.correlation
            await self._publish(client, Message(topic, body), properties=properties)

    async def _config_changed(self, client: aiomqtt.Client) -> None:
        """An accepted config/set: new retained config and announce (output types may have
        changed), and the new publishing policy."""
        self._outbox.settings_changed()
        await self._send(client, self._outbox.retained(online=False))
        self._wake.set()  # thresholds may have changed what the state says

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
        self.failed_attempts += 1
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
