"""Bounds on what arrives over MQTT (edge_agent.mqtt.limits, pure) and on what the agent
answers (capped errors): whatever the request rate or size, memory, answers and log lines stay
bounded, and legitimate use is never throttled."""

from __future__ import annotations

import json

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.mqtt import limits
from edge_agent.mqtt.limits import LogBudget, RateLimit, RequestGate, TokenBucket
from edge_agent.mqtt.payloads import MAX_ERRORS, encode, result_payload
from edge_agent.mqtt.topics import Topics


def test_a_bucket_allows_its_burst_then_its_rate() -> None:
    bucket = TokenBucket(RateLimit(per_second=2.0, burst=5.0))
    assert [bucket.take(100.0) for _ in range(7)] == [True] * 5 + [False] * 2
    assert bucket.take(100.4) is False  # 0.8 tokens
    assert bucket.take(100.5) is True  # 1.0 token
    assert bucket.take(1000.0)
    assert sum(bucket.take(1000.0) for _ in range(10)) == 4


def test_a_clock_that_steps_back_refills_nothing() -> None:
    bucket = TokenBucket(RateLimit(per_second=1.0, burst=1.0))
    assert bucket.take(50.0)
    assert not bucket.take(10.0)
    assert not bucket.take(10.5)


def test_the_gate_counts_by_kind_and_drops_unknown_kinds() -> None:
    gate = RequestGate()
    admitted = sum(gate.admit(limits.CONFIG_SET, 0.0) for _ in range(100))
    assert admitted == limits.REQUEST_LIMITS[limits.CONFIG_SET].burst
    assert gate.dropped == {limits.CONFIG_SET: 100 - admitted}
    assert not gate.admit(limits.OTHER, 0.0)
    assert gate.dropped[limits.OTHER] == 1
    assert gate.received == admitted
    assert gate.dropped_total == 100 - admitted + 1


def test_home_assistant_paging_through_history_is_never_throttled() -> None:
    """The back-fill asks a page, waits for it, asks the next: on a LAN a round trip takes
    20 ms or more, a month of pages is 180 requests."""
    gate = RequestGate()
    assert all(gate.admit(limits.HISTORY_GET, index * 0.02) for index in range(600))


@given(st.lists(st.floats(min_value=0, max_value=1e6, allow_nan=False), max_size=300))
def test_at_any_arrival_pattern_the_admitted_rate_is_bounded(times: list[float]) -> None:
    gate = RequestGate()
    limit = limits.REQUEST_LIMITS[limits.COMMAND]
    times = sorted(times)
    admitted = [t for t in times if gate.admit(limits.COMMAND, t)]
    span = (times[-1] - times[0]) if times else 0.0
    assert len(admitted) <= limit.burst + span * limit.per_second + 1e-9


def test_the_log_budget_allows_a_few_lines_a_minute_and_counts_the_rest() -> None:
    budget = LogBudget(per_minute=3)
    decisions = [budget.allow("retained", 10.0 + i * 0.1)[0] for i in range(50)]
    assert decisions == [True] * 3 + [False] * 47
    assert budget.allow("other kind", 11.0) == (True, 0)
    assert budget.allow("retained", 75.0) == (True, 47)  # next minute: the count of the last


def test_an_answer_stays_small_whatever_the_request() -> None:
    errors = [(f"config.k{index}", "unknown key " + "x" * 1000) for index in range(500)]
    payload = result_payload("config/set", "r", errors, 1.0)
    assert len(payload["errors"]) == MAX_ERRORS + 1
    assert payload["errors"][-1] == {
        "field": "payload",
        "reason": f"and {500 - MAX_ERRORS} more problems not listed",
    }
    assert all(len(error["reason"]) <= 400 for error in payload["errors"])
    assert len(encode(payload)) < 10_000
    assert json.loads(encode(payload))["status"] == "rejected"


def test_response_topics_only_below_the_agents_reply_tree() -> None:
    topics = Topics("sbms", "box1")
    assert topics.response_topic_problem("sbms/box1/reply/ha/42") is None
    for refused in (
        "sbms/box1/state",
        "sbms/box1/status",
        "sbms/box1/announce",
        "sbms/box1/config",
        "sbms/box1/event",
        "sbms/box1/config/result",
        "homeassistant/device/box1/config",
        "sbms/box2/reply/x",
        "sbms/box1/reply/",
        "sbms/box1/reply//x",
        "sbms/box1/replyx",
        "sbms/box1/reply/+",
    ):
        problem = topics.response_topic_problem(refused)
        assert problem is not None, refused
        assert "sbms/box1/reply/" in problem


def test_an_answer_echoing_a_lone_surrogate_is_still_json() -> None:
    """JSON may carry "\\ud800", which has no UTF-8 form: encoding the answer that names it
    raised, and the exception ended the MQTT session (the request got no answer)."""
    body = encode(result_payload("config/set", None, [("config.outputs.\ud800", "x")], 1.0))
    assert json.loads(body)["errors"][0]["field"] == "config.outputs.\ud800"
    assert body.decode("ascii")
