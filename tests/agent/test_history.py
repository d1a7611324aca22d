"""The MQTT back-fill, agent side: `history/get` parsing, paging over a real data log, and a
round trip through a real mosquitto with `sbms-agent --simulate`."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from jsonschema import Draft202012Validator

from edge_agent.config import StorageSettings
from edge_agent.mqtt.handlers import NO_LOG_REASON, HistoryResult, NoHistory
from edge_agent.mqtt.payloads import encode, history_result_payload
from edge_agent.mqtt.requests import (
    DEFAULT_LIMIT,
    MAX_LIMIT,
    MAX_PAYLOAD_BYTES,
    MAX_SPAN_S,
    RejectedError,
    parse_history_request,
)
from edge_agent.runtime.history import HistoryReader
from edge_agent.simulator.box import JUNE_1_2026_UTC
from edge_agent.storage.data_log import COUNTER_NAMES, DataLogStore, Record, Stat, record_to_dict
from tests.helpers.mqtt import PahoWatcher
from tests.helpers.mqtt_broker import MosquittoBroker

SCHEMAS = Path(__file__).parents[2] / "docs" / "schemas"
AGENT_ID = "history-box"
ROOT = f"sbms/{AGENT_ID}"
T0 = int(JUNE_1_2026_UTC) - 2 * 86400  # two days before the simulated box starts
PAGE_BUDGET_BYTES = 128 * 1024


def _record(start: int, index: int = 0) -> Record:
    """A full 8S record: every value present, so its size is the realistic worst."""
    level = 50.0 + index % 40
    return Record(
        start=start,
        end=start + 120,
        samples=120,
        missing=index % 3,
        **{
            name: Stat(level + 0.12, level - 1.34, level + 1.56)
            for name in ("soc", "pack_voltage", "battery_current", "battery_power")
        },
        pv_current=Stat(12.34, 0.0, 25.67),
        pv_power=Stat(321.5, 0.0, 667.0),
        load_current=Stat(3.21, 1.0, 9.87),
        load_power=Stat(84.0, 26.0, 257.0),
        cell_min=3.281,
        cell_max=3.318,
        cell_delta=0.021,
        cells=tuple(3.301 + i / 1000 for i in range(8)),
        internal_temperature=31.2,
        external_temperatures=(18.5, 21.3),
        outputs={"extio3": True, "extio4": False, "extio5": True, "extio6": False},
        outputs_on=frozenset({"extio3", "extio4", "extio5"}),
        dual_pv_level=2,
        counters=dict.fromkeys(COUNTER_NAMES, 12345.678 + index),
        faults=frozenset({"over_temperature"}),
        interlocks=frozenset({"hvd", "max_soc"}),
        monitor_flags=frozenset({"CELLF", "DCHING"}),
    )


def _fill(path: Path, starts: list[int]) -> list[dict[str, Any]]:
    """Write records at these starts; what the log gives back, as dicts (its resolution)."""
    with DataLogStore(path, interval_s=120) as store:
        store.append_many(_record(start, i) for i, start in enumerate(starts))
        return [record_to_dict(r) for r in store.records(starts[0], starts[-1] + 1, len(starts))]


def _ask(reader: HistoryReader, request: dict[str, Any]) -> HistoryResult:
    return asyncio.run(reader.answer(json.dumps(request).encode()))


def _fields(payload: bytes) -> set[str]:
    try:
        parse_history_request(payload)
    except RejectedError as rejected:
        return {field for field, _ in rejected.errors}
    return set()


# -- parsing -------------------------------------------------------------------------------


def test_a_minimal_request_gets_the_default_limit() -> None:
    request = parse_history_request(b'{"from": 1780000000, "to": 1780086400.5}')
    assert (request.request_id, request.start, request.end) == (None, 1780000000, 1780086400.5)
    assert request.limit == DEFAULT_LIMIT


def test_a_whole_number_float_limit_is_an_integer_as_in_json_schema() -> None:
    request = parse_history_request(b'{"request_id": "ha:1", "from": 1, "to": 2, "limit": 7.0}')
    assert (request.request_id, request.limit) == ("ha:1", 7)


@pytest.mark.parametrize(
    ("payload", "fields"),
    [
        ({"to": 2}, {"from"}),
        ({"from": 1, "to": 2, "since": 0}, {"since"}),
        ({"from": "1", "to": 2}, {"from"}),
        ({"from": True, "to": 2}, {"from"}),
        ({"from": -1, "to": 2}, {"from"}),
        ({"from": 1, "to": 2e10}, {"to"}),
        ({"from": 5, "to": 5}, {"to"}),
        ({"from": 5, "to": 4}, {"to"}),
        ({"from": 0, "to": MAX_SPAN_S + 1}, {"to"}),
        ({"from": 1, "to": 2, "limit": 0}, {"limit"}),
        ({"from": 1, "to": 2, "limit": MAX_LIMIT + 1}, {"limit"}),
        ({"from": 1, "to": 2, "limit": 1.5}, {"limit"}),
        ({"from": 1, "to": 2, "limit": True}, {"limit"}),
        ({"from": 1, "to": 2, "limit": "10"}, {"limit"}),
        ({"from": None, "to": [], "limit": 0}, {"from", "to", "limit"}),  # all named at once
        ({"request_id": "has space", "from": 1, "to": 2}, {"request_id"}),
        ([1, 2], {"payload"}),
    ],
)
def test_bad_requests_are_rejected_naming_the_field(payload: Any, fields: set[str]) -> None:
    assert _fields(json.dumps(payload).encode()) == fields


@pytest.mark.parametrize(
    "payload",
    [b"", b"\xff", b"{", b'{"from": 1, "from": 2, "to": 3}', b" " * (MAX_PAYLOAD_BYTES + 1)],
)
def test_payloads_that_are_not_a_json_object_are_rejected(payload: bytes) -> None:
    assert _fields(payload) == {"payload"}


def test_the_span_may_be_exactly_400_days() -> None:
    assert parse_history_request(json.dumps({"from": 0, "to": MAX_SPAN_S}).encode()).end == (
        MAX_SPAN_S
    )


@cache
def _request_schema() -> Draft202012Validator:
    return Draft202012Validator(json.loads((SCHEMAS / "history_get.schema.json").read_text()))


_VALUES = (
    st.integers(min_value=-10, max_value=2 * 10**10)
    | st.floats(min_value=-10, max_value=2e10, allow_nan=False)
    | st.sampled_from([0, 1, 100, 120, 121, 1780000000, 1780000000 + MAX_SPAN_S, 1e10, 2**60])
    | st.booleans()
    | st.none()
    | st.sampled_from(["", "r1", "has space", "x" * 65, "100"])
    | st.lists(st.integers(), max_size=2)
)
_KEYS = st.sampled_from(["from", "to", "limit", "request_id", "extra"])
_FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(document=st.dictionaries(_KEYS, _VALUES, max_size=5))
def test_fuzz_the_agent_accepts_exactly_what_the_schema_and_the_range_rules_allow(
    document: dict[str, Any],
) -> None:
    payload = json.dumps(document).encode()
    fields = _fields(payload)
    schema_ok = not list(_request_schema().iter_errors(document))
    range_ok = schema_ok and 0 < document["to"] - document["from"] <= MAX_SPAN_S
    assert (not fields) == range_ok, (document, fields)
    assert fields <= {"payload", "request_id", "from", "to", "limit", "extra"}


@_FUZZ
@given(payload=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_never_escape_as_an_exception(payload: bytes) -> None:
    result = asyncio.run(HistoryReader(None, 120).answer(payload))
    assert not result.accepted
    assert result.page is None
    assert all("internal error" not in reason for _, reason in result.errors)


# -- paging over a real data log -------------------------------------------------------------


@pytest.fixture
def filled(tmp_path: Path) -> tuple[Path, list[dict[str, Any]]]:
    # 2-minute records with a two-hour hole (the agent was off) after the first 150.
    starts = [T0 + 120 * i for i in range(150)] + [T0 + 120 * i for i in range(210, 310)]
    path = tmp_path / "log.db"
    return path, _fill(path, starts)


def test_paging_until_next_from_is_null_returns_every_record_once_in_order(
    filled: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, expected = filled
    reader = HistoryReader(path, 120)
    end = T0 + 400 * 120
    received: list[dict[str, Any]] = []
    start: int | None = T0 - 3600
    pages = 0
    while start is not None:
        result = _ask(reader, {"from": start, "to": end, "limit": 37})
        assert result.page is not None, result.errors
        assert len(result.page.records) <= 37
        received += result.page.records
        start = result.page.next_from
        pages += 1
    reader.close()
    assert received == expected
    assert len(received) == 250
    assert pages == 7  # ceil(250 / 37)


def test_a_page_covers_from_inclusive_to_exclusive(
    filled: tuple[Path, list[dict[str, Any]]],
) -> None:
    path, _ = filled
    reader = HistoryReader(path, 120)
    result = _ask(reader, {"from": T0 + 120, "to": T0 + 5 * 120, "request_id": "r-7"})
    reader.close()
    assert result.request_id == "r-7"
    assert result.page is not None
    assert [r["start"] for r in result.page.records] == [T0 + 120 * i for i in range(1, 5)]
    assert result.page.next_from is None
    assert result.page.interval_s == 120


def test_next_from_jumps_over_a_hole_in_the_log(filled: tuple[Path, list[dict[str, Any]]]) -> None:
    path, _ = filled
    reader = HistoryReader(path, 120)
    result = _ask(reader, {"from": T0 + 149 * 120, "to": T0 + 400 * 120, "limit": 1})
    empty = _ask(reader, {"from": T0 + 150 * 120, "to": T0 + 210 * 120})
    reader.close()
    assert result.page is not None
    assert result.page.next_from == T0 + 210 * 120  # the first record after the hole
    assert empty.page is not None
    assert (empty.page.records, empty.page.next_from) == ((), None)


def test_a_full_page_of_8s_records_stays_under_128_kib(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    _fill(path, [T0 + 120 * i for i in range(MAX_LIMIT + 1)])
    reader = HistoryReader(path, 120)
    result = _ask(
        reader, {"request_id": "x" * 64, "from": T0, "to": T0 + 86400, "limit": MAX_LIMIT}
    )
    reader.close()
    assert result.page is not None
    assert len(result.page.records) == MAX_LIMIT
    body = encode(history_result_payload(result.request_id, (), 1.0e9, page=result.page))
    assert len(body) < PAGE_BUDGET_BYTES


def test_the_log_is_read_on_a_worker_thread(
    filled: tuple[Path, list[dict[str, Any]]], monkeypatch: pytest.MonkeyPatch
) -> None:
    path, _ = filled
    readers: list[int] = []
    original = DataLogStore.records

    def spy(self: DataLogStore, start: float, end: float, limit: int = 1000) -> list[Record]:
        readers.append(threading.get_ident())
        return original(self, start, end, limit)

    monkeypatch.setattr(DataLogStore, "records", spy)
    reader = HistoryReader(path, 120)
    result = _ask(reader, {"from": T0, "to": T0 + 600})
    reader.close()
    assert result.accepted
    assert readers
    assert threading.get_ident() not in readers


def test_no_data_log_is_rejected_with_the_history_field() -> None:
    result = _ask(HistoryReader(None, 120), {"request_id": "a", "from": 1, "to": 2})
    assert result.request_id == "a"
    assert result.errors == (("history", NO_LOG_REASON),)


@pytest.mark.parametrize(
    "request_",
    [{"request_id": "a", "from": 1, "to": 2}, {"request_id": "b", "from": "x"}, {"to": 1}],
)
def test_the_links_default_without_a_log_answers_like_a_reader_without_one(
    request_: dict[str, Any],
) -> None:
    """`mqtt.handlers.NoHistory` (a link given no history handler): the request's own problems
    first, then the missing log, exactly as the runtime's reader without a file."""
    payload = json.dumps(request_).encode()
    expected = asyncio.run(HistoryReader(None, 120).answer(payload))
    assert asyncio.run(NoHistory().answer(payload)) == expected
    assert expected.errors


def test_an_unreadable_log_is_rejected_and_read_again_once_repaired(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    reader = HistoryReader(path, 120)
    missing = _ask(reader, {"from": T0, "to": T0 + 600})
    path.write_bytes(b"this is not a database" * 100)
    broken = _ask(reader, {"from": T0, "to": T0 + 600})
    path.unlink()
    _fill(path, [T0, T0 + 120])
    repaired = _ask(reader, {"from": T0, "to": T0 + 600})
    reader.close()
    for result in (missing, broken):
        assert [field for field, _ in result.errors] == ["history"], result.errors
    assert repaired.page is not None
    assert len(repaired.page.records) == 2


# -- a real broker and `sbms-agent --simulate` ------------------------------------------------


def _client(port: int) -> PahoWatcher:
    """A paho MQTT 5 client that keeps every message it gets (none is lost to a wait)."""
    return PahoWatcher(
        port, [f"{ROOT}/#", f"{ROOT}/reply/history"], client_id="history-client", mqtt5=True
    )


def _ask_over_mqtt(
    client: PahoWatcher, request: dict[str, Any], *, correlation: bytes | None = None
) -> None:
    client.publish(
        f"{ROOT}/history/get",
        request,
        response_topic=f"{ROOT}/reply/history",
        correlation=correlation,
    )


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


def _start_agent(broker: MosquittoBroker, state: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "edge_agent", "--simulate", "--speed", "20", "--quiet"]
    command += ["--agent-id", AGENT_ID, "--mqtt-host", broker.host]
    command += ["--mqtt-port", str(broker.port), "--state", str(state), "--log-level", "WARNING"]
    return subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


@pytest.mark.usefixtures("allow_sockets")
def test_a_client_pages_through_the_simulated_agents_log_over_mqtt(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    state = tmp_path / "state.db"
    # Written before the agent starts: two days before the simulated box's clock, so the
    # records the running agent adds itself stay out of the range asked for.
    expected = _fill(
        StorageSettings(state_path=state).data_log_file, [T0 + 120 * i for i in range(250)]
    )
    result_schema = Draft202012Validator(
        json.loads((SCHEMAS / "history_result.schema.json").read_text())
    )
    client = _client(broker.port)
    agent = _start_agent(broker, state)
    try:
        announce = client.find(f"{ROOT}/announce").json()
        assert announce["capabilities"]["history"] is True
        client.find(f"{ROOT}/state")  # sent after the agent subscribed to its requests
        received: list[dict[str, Any]] = []
        start: int | None = T0
        page = 0
        while start is not None:
            page += 1
            request = {"request_id": f"page-{page}", "from": start, "to": JUNE_1_2026_UTC}
            _ask_over_mqtt(client, request, correlation=f"c{page}".encode())
            answer = client.find(f"{ROOT}/history/result", request_id=f"page-{page}").json()
            reply = client.find(f"{ROOT}/reply/history", request_id=f"page-{page}")
            direct, correlation = reply.json(), reply.correlation
            assert not list(result_schema.iter_errors(answer))
            assert (answer["status"], direct, correlation) == (
                "accepted",
                answer,
                f"c{page}".encode(),
            )
            received += answer["records"]
            start = answer["next_from"]
        _ask_over_mqtt(client, {"request_id": "bad", "from": T0, "to": "tomorrow", "limit": 500})
        rejected = client.find(f"{ROOT}/history/result", request_id="bad").json()
    finally:
        agent.send_signal(signal.SIGTERM)
        stderr = agent.communicate(timeout=20)[1].decode()
        client.close()
    assert received == json.loads(encode({"r": expected}))["r"]
    assert [len(received), page] == [250, 3]  # 100 + 100 + 50
    assert rejected["status"] == "rejected"
    assert {e["field"] for e in rejected["errors"]} == {"to", "limit"}
    assert agent.returncode == 0, stderr
