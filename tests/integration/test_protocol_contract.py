"""Contract tests, integration side: the integration reads what docs/protocol.md promises.

The agent's side (tests/agent/test_protocol_schemas.py) checks its payloads against the JSON
Schemas; here the integration's own parsers must accept every documented example, and every
field they require must be one the schemas require, so a conforming agent never trips them.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest

from custom_components.sbms.const import (
    AGENT_EVENT_KINDS,
    OUTPUT_TYPE_NAMES,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from custom_components.sbms.models import (
    AgentConfig,
    AgentEvent,
    Announce,
    BoxState,
    HistoryAnswer,
    ProtocolError,
    RequestResult,
)
from tests.integration.fake_agent import PROTOCOL, doc_examples

SCHEMAS = Path(__file__).resolve().parents[2] / "docs" / "schemas"
PARSERS: dict[str, Any] = {
    "announce": Announce.from_payload,
    "state": BoxState.from_payload,
    "config": AgentConfig.from_payload,
    "event": AgentEvent.from_payload,
    "result": RequestResult.from_payload,
    "history_result": HistoryAnswer.from_payload,
}


def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return schema


def _examples(name: str) -> list[dict[str, Any]]:
    return doc_examples()[name]


@pytest.mark.parametrize("name", sorted(PARSERS))
def test_every_documented_example_parses(name: str) -> None:
    assert _examples(name), f"docs/protocol.md has no {name} example"
    for example in _examples(name):
        PARSERS[name](json.dumps(example))


def test_the_documented_protocol_version_is_supported() -> None:
    documented = re.search(r"\*\*Protocol version (\d+)\.\*\*", PROTOCOL.read_text("utf-8"))
    assert documented is not None
    assert int(documented.group(1)) in SUPPORTED_PROTOCOL_VERSIONS
    assert {a["protocol_version"] for a in _examples("announce")} <= SUPPORTED_PROTOCOL_VERSIONS


@pytest.mark.parametrize("name", ["announce", "state", "event", "result"])
def test_each_field_the_parser_needs_is_required_by_the_schema(name: str) -> None:
    """Drop one top-level field at a time: where the parser fails, the schema must require it."""
    required = set(_schema(name).get("required", []))
    example = _examples(name)[0]
    for key in example:
        trimmed = {k: v for k, v in example.items() if k != key}
        try:
            PARSERS[name](json.dumps(trimmed))
        except ProtocolError:
            assert key in required, f"{name}.{key} is needed by the integration, optional in schema"


def test_each_record_field_the_parser_needs_is_required_by_the_schema() -> None:
    """The same for the records of an accepted history page, and for the page itself."""
    schema = _schema("history_result")
    record_required = set(schema["$defs"]["record"]["required"])
    page_required = set(schema["required"]) | set(schema["allOf"][0]["then"]["required"])
    answer = _examples("history_result")[0]
    for key in answer:
        trimmed = {k: v for k, v in answer.items() if k != key}
        try:
            HistoryAnswer.from_payload(json.dumps(trimmed))
        except ProtocolError:
            assert key in page_required, f"history.{key} is needed, optional in schema"
    for key in answer["records"][0]:
        record = {k: v for k, v in answer["records"][0].items() if k != key}
        try:
            HistoryAnswer.from_payload(json.dumps({**answer, "records": [record]}))
        except ProtocolError:
            assert key in record_required, f"record.{key} is needed, optional in schema"


def test_forced_off_is_optional_for_older_agents() -> None:
    state = dict(_examples("state")[0])
    state.pop("forced_off", None)
    assert BoxState.from_payload(json.dumps(state)).forced_off == {}


def test_output_types_and_event_kinds_match_the_schemas() -> None:
    announce_outputs = _schema("announce")["properties"]["outputs"]["items"]["properties"]
    assert announce_outputs["type_name"]["enum"] == list(OUTPUT_TYPE_NAMES)
    assert set(_schema("event")["properties"]["kind"]["enum"]) == set(AGENT_EVENT_KINDS)


@pytest.mark.parametrize(
    ("name", "payload", "field"),
    [
        ("state", "{", "state: not JSON"),
        ("state", "[]", "state: not a JSON object"),
        ("announce", '{"protocol_version": "1"}', "announce.protocol_version"),
        (
            "result",
            '{"request_id": null, "command": "x", "status": "maybe", "errors": []}',
            "status",
        ),
    ],
)
def test_bad_payloads_name_the_problem(name: str, payload: str, field: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(field)):
        PARSERS[name](payload)


def test_a_state_with_a_wrong_type_names_the_field() -> None:
    state = dict(_examples("state")[0])
    state["cells"] = [3.3, "x"]
    with pytest.raises(ProtocolError, match=r"state\.cells: expected a list of numbers"):
        BoxState.from_payload(json.dumps(state))
    state = dict(_examples("state")[0])
    state["counters"] = {**state["counters"], "pv_wh": None}
    with pytest.raises(ProtocolError, match=r"state\.counters\.pv_wh: expected a number"):
        BoxState.from_payload(json.dumps(state))
