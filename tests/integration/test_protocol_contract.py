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
    OUTPUT_WIRINGS,
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


def test_soc_uncertainty_is_read_and_optional_for_older_agents() -> None:
    state = dict(_examples("state")[0])
    assert BoxState.from_payload(json.dumps(state)).soc_uncertainty == 2.4
    assert (
        BoxState.from_payload(json.dumps({**state, "soc_uncertainty": None})).soc_uncertainty
        is None
    )
    state.pop("soc_uncertainty")
    assert BoxState.from_payload(json.dumps(state)).soc_uncertainty is None
    assert "soc_uncertainty" not in _schema("state")["required"]
    with pytest.raises(ProtocolError, match=r"state\.soc_uncertainty: expected a number"):
        BoxState.from_payload(json.dumps({**state, "soc_uncertainty": "2.4"}))


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


# --- output wiring and settable types, remote window (added within protocol version 1) -------


def _announce_with(**output_keys: Any) -> dict[str, Any]:
    """The documented announce with keys set on its second output (None: key removed)."""
    announce = json.loads(json.dumps(_examples("announce")[0]))
    for output in announce["outputs"]:
        output.pop("wiring", None)
        output.pop("settable_types", None)
    announce["outputs"][1].update({k: v for k, v in output_keys.items() if v is not None})
    return announce


def test_wiring_and_settable_types_are_read() -> None:
    announce = Announce.from_payload(
        json.dumps(_announce_with(wiring="charge", settable_types=[6, 0, 3, 1]))
    )
    output = announce.outputs[1]
    assert output.wiring == "charge"
    assert output.settable_types == (0, 1, 3, 6)
    assert output.remote_types == (0, 1, 3, 6)
    assert output.type_choice
    fault = Announce.from_payload(json.dumps(_announce_with(wiring="fault", settable_types=[5])))
    assert not fault.outputs[1].type_choice
    closed = Announce.from_payload(json.dumps(_announce_with(wiring="load", settable_types=[])))
    assert closed.outputs[1].remote_types == ()
    assert not closed.outputs[1].type_choice


def test_an_announce_without_wiring_allows_every_type() -> None:
    """An older agent: the keys are absent, any type 0-6 may be asked for."""
    announce = Announce.from_payload(json.dumps(_announce_with()))
    for output in announce.outputs:
        assert output.wiring is None
        assert output.settable_types is None
        assert output.remote_types == tuple(range(len(OUTPUT_TYPE_NAMES)))
        assert output.type_choice


@pytest.mark.parametrize(
    ("keys", "field"),
    [
        ({"wiring": "relay"}, r"announce\.outputs\[1\]\.wiring"),
        ({"wiring": 1}, r"announce\.outputs\[1\]\.wiring"),
        ({"wiring": None, "settable_types": [0, 8]}, r"announce\.outputs\[1\]\.settable_types"),
        ({"settable_types": [-1]}, r"announce\.outputs\[1\]\.settable_types"),
        ({"settable_types": ["1"]}, r"announce\.outputs\[1\]\.settable_types"),
        ({"settable_types": [True]}, r"announce\.outputs\[1\]\.settable_types"),
        ({"settable_types": [1.0]}, r"announce\.outputs\[1\]\.settable_types"),
        ({"settable_types": "0,1"}, r"announce\.outputs\[1\]\.settable_types"),
    ],
)
def test_bad_wiring_or_settable_types_name_the_field(keys: dict[str, Any], field: str) -> None:
    with pytest.raises(ProtocolError, match=field):
        Announce.from_payload(json.dumps(_announce_with(**keys)))


def test_wirings_match_the_schemas() -> None:
    announce_output = _schema("announce")["properties"]["outputs"]["items"]["properties"]
    assert announce_output["wiring"]["enum"] == list(OUTPUT_WIRINGS)
    items = announce_output["settable_types"]["items"]
    assert (items["minimum"], items["maximum"]) == (0, len(OUTPUT_TYPE_NAMES) - 1)
    config_output = _schema("config")["properties"]["outputs"]["items"]["properties"]
    assert config_output["wiring"]["enum"] == list(OUTPUT_WIRINGS)
    for name in ("wiring", "settable_types"):
        assert name not in _schema("announce")["properties"]["outputs"]["items"]["required"]
    assert "remote_window" not in _schema("config").get("required", [])


def test_remote_window_is_read_leniently() -> None:
    config = dict(_examples("config")[0])
    config["remote_window"] = {
        "thresholds": {"hvd": [3.45, 3.6], "lvd": [3.2, 2.8], "eoc": [3.4], "ovlo": ["a", 1]},
        "temperature": [],
        "battery": {"capacity_ah": [50, 200]},
    }
    parsed = AgentConfig.from_payload(json.dumps(config))
    assert parsed.remote_window("thresholds", "hvd") == (3.45, 3.6)
    assert parsed.remote_window("battery", "capacity_ah") == (50.0, 200.0)
    for section, key in [
        ("thresholds", "lvd"),  # lowest above highest
        ("thresholds", "eoc"),
        ("thresholds", "ovlo"),
        ("thresholds", "uvlo"),
        ("temperature", "charge_min"),
        ("dual_pv", "imax"),
    ]:
        assert parsed.remote_window(section, key) is None, (section, key)
    del config["remote_window"]
    assert AgentConfig.from_payload(json.dumps(config)).remote_window("thresholds", "hvd") is None
