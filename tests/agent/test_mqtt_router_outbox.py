"""The link's pure halves, without a broker: the router (what a message is, what refuses it,
where its answer goes) and the outbox (what is published, in which order, what is dropped)."""

from __future__ import annotations

import dataclasses
import json

from edge_agent.control.model import (
    ControlEvent,
    ControlReport,
    EnergyCounters,
    EventKind,
    Measurement,
)
from edge_agent.mqtt import limits
from edge_agent.mqtt.outbox import OFFLINE, ONLINE, Outbox
from edge_agent.mqtt.payloads import LinkStats
from edge_agent.mqtt.router import RequestRouter, ResponseTarget, Route, response_target
from edge_agent.mqtt.topics import Topics

TOPICS = Topics("sbms", "box")
BIRTH = "homeassistant/status"


def _router(*, remote: bool = True) -> RequestRouter:
    return RequestRouter(TOPICS, remote=remote, birth_topic=BIRTH)


def test_each_subscribed_topic_has_its_kind_and_result_topic() -> None:
    router = _router()
    assert router.route(TOPICS.config_set) == Route(
        limits.CONFIG_SET, TOPICS.config_result, "config/set"
    )
    assert router.route(TOPICS.history_get) == Route(
        limits.HISTORY_GET, TOPICS.history_result, "history/get"
    )
    assert router.route(TOPICS.command("set_soc")) == Route(
        limits.COMMAND, TOPICS.command_result("set_soc"), "set_soc"
    )
    assert router.route(BIRTH) == Route(limits.BIRTH)
    assert router.route("sbms/box/state") == Route(limits.OTHER)


def test_without_remote_control_only_history_and_birth_are_served() -> None:
    router = _router(remote=False)
    assert router.route(TOPICS.config_set) is None
    assert router.route(TOPICS.command("force_off")) is None
    assert router.route("sbms/box/state") is None
    assert router.route(TOPICS.history_get) is not None
    assert router.route(BIRTH) == Route(limits.BIRTH)
    # The rate gate still knows what a request is, served or not.
    assert router.kind(TOPICS.config_set) == limits.CONFIG_SET


def test_a_retained_request_is_refused_once_per_session_and_its_clearing_silently() -> None:
    router = _router()
    route = router.route(TOPICS.config_set)
    assert route is not None
    none = ResponseTarget()
    refusal = router.refusal(route, b"{}", retain=True, response=none)
    assert refusal is not None
    assert refusal[:1] == ("payload",)
    assert router.refusal(route, b"{}", retain=True, response=none) == ()
    assert router.refusal(route, b"", retain=True, response=none) == ()
    router.new_session()
    assert router.refusal(route, b"{}", retain=True, response=none) == refusal
    assert router.refusal(route, b"{}", retain=False, response=none) is None


def test_the_answer_goes_to_an_allowed_response_topic_too() -> None:
    router = _router()
    route = router.route(TOPICS.history_get)
    assert route is not None
    reply = ResponseTarget(f"{TOPICS.reply_prefix}a", b"c1")
    assert router.reply_topics(route, reply) == [TOPICS.history_result, reply.topic]
    assert router.reply_topics(route, ResponseTarget(TOPICS.history_result)) == [
        TOPICS.history_result
    ]
    state = ResponseTarget(TOPICS.state)
    refusal = router.refusal(route, b"{}", retain=False, response=state)
    assert refusal is not None
    assert refusal[:1] == ("response_topic",)
    assert router.reply_topics(route, state) == [TOPICS.history_result]


def test_response_target_ignores_wildcards_and_foreign_correlation() -> None:
    class Properties:
        ResponseTopic = "sbms/box/reply/+"
        CorrelationData = b"x"

    assert response_target(Properties()) == ResponseTarget()
    Properties.ResponseTopic = "sbms/box/reply/a"
    Properties.CorrelationData = "text"  # type: ignore[assignment]
    assert response_target(Properties()) == ResponseTarget("sbms/box/reply/a", None)
    assert response_target(None) == ResponseTarget()


def test_home_assistant_online_asks_for_discovery_unless_retained() -> None:
    assert RequestRouter.home_assistant_online(b"online\n", retain=False)
    assert not RequestRouter.home_assistant_online(b"online", retain=True)
    assert not RequestRouter.home_assistant_online(b"offline", retain=False)


def _report(timestamp: float, *events: ControlEvent) -> ControlReport:
    return ControlReport(
        timestamp=timestamp,
        outputs={"extio3": True},
        soc=50.0,
        remaining_ah=50.0,
        capacity_ah=100.0,
        time_to_full_s=None,
        time_to_empty_s=None,
        charge_allowed=True,
        load_allowed=True,
        faults=frozenset(),
        interlocks=frozenset(),
        dual_pv_level=None,
        counters=EnergyCounters(),
        events=events,
        measurement=None,
    )


def _outbox(*, discovery: bool = True, queue: int = 2) -> Outbox:
    return Outbox(
        TOPICS,
        lambda: {"a": 1},
        lambda: {"c": 1},
        event_queue_size=queue,
        discovery=(
            (lambda read: ("homeassistant/device/x/config", {"read": sorted(read)}))
            if discovery
            else None
        ),
    )


def test_the_retained_set_in_order_with_and_without_discovery() -> None:
    outbox = _outbox()
    # Before the first report discovery is held (it must know which inputs read): due.
    assert [m.topic for m in outbox.retained(online=True)] == [
        TOPICS.status,
        TOPICS.announce,
        TOPICS.config,
    ]
    assert outbox.discovery_due
    outbox.offer(_report(1.0))
    topics = [m.topic for m in outbox.retained(online=True)]
    assert not outbox.discovery_due
    assert topics == [
        TOPICS.status,
        TOPICS.announce,
        "homeassistant/device/x/config",
        TOPICS.config,
    ]
    after_change = _outbox(discovery=False).retained(online=False)
    assert [m.topic for m in after_change] == [TOPICS.announce, TOPICS.config]
    assert all(m.retain for m in after_change)
    outbox = _outbox()
    assert outbox.retained(online=True)[0].payload == ONLINE
    assert (outbox.offline().topic, outbox.offline().payload) == (TOPICS.status, OFFLINE)


def test_a_full_queue_drops_its_oldest_and_an_event_leaves_only_when_sent() -> None:
    outbox = _outbox(queue=2)
    events = [ControlEvent(EventKind.LVD_TRIP, float(t)) for t in range(3)]
    outbox.offer(_report(0.0, *events))
    assert (outbox.queued_events, outbox.dropped_events, outbox.take_dropped()) == (2, 1, 1)
    assert outbox.take_dropped() == 0
    pending = outbox.next_event()
    assert pending is not None
    event, message = pending
    assert event is events[1]
    assert (message.topic, message.retain) == (TOPICS.event, False)
    assert outbox.next_event() == pending  # not sent yet: still first
    outbox.event_sent(events[0])  # no longer in the queue: nothing leaves
    assert outbox.queued_events == 2
    outbox.event_sent(event)
    assert outbox.queued_events == 1


def test_the_state_is_due_once_per_report_until_the_policy_says_again() -> None:
    outbox = _outbox()
    assert outbox.state_due(0.0) is None  # no report yet
    report = _report(0.0)
    outbox.offer(report)
    assert outbox.state_due(0.0) is report
    message = outbox.state(report, LinkStats(3, {}))
    assert (message.topic, message.retain) == (TOPICS.state, True)
    assert json.loads(message.payload)["link_stats"]["requests_received"] == 3
    outbox.state_sent(report, 0.0)
    assert outbox.state_due(0.5) is None
    outbox.new_session()  # a fresh connection gets a full state at once
    assert outbox.state_due(0.5) is report


def test_discovery_is_due_again_when_a_temperature_input_reads_for_the_first_time() -> None:
    outbox = _outbox()
    outbox.offer(_report(1.0))
    assert json.loads(outbox.discovery()[0].payload) == {"read": []}
    measured = Measurement(
        timestamp=2.0,
        cell_voltages=(3.3, 3.3, 3.3, 3.3),
        battery_current=0.0,
        charge_delta_ah=0.0,
        pv_current=0.0,
        internal_temperature=25.0,
        external_temperatures=(20.0, None),
    )
    outbox.offer(dataclasses.replace(_report(2.0), measurement=measured))
    assert outbox.discovery_due
    assert json.loads(outbox.discovery()[0].payload) == {"read": ["battery", "internal"]}
    outbox.offer(dataclasses.replace(_report(3.0), measurement=measured))
    assert not outbox.discovery_due  # the same inputs: nothing new to announce
