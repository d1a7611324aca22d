"""Contract tests: the agent's real payloads and the examples in docs/protocol.md against the
JSON Schemas in docs/schemas/."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from edge_agent.control.model import ControlEvent, ControlReport, EventKind, Fault
from edge_agent.datalog.aggregator import DataAggregator
from edge_agent.mqtt.handlers import HistoryResult
from edge_agent.mqtt.payloads import (
    announce_payload,
    config_payload,
    encode,
    event_payload,
    history_result_payload,
    result_payload,
    state_payload,
)
from edge_agent.runtime.history import HistoryReader
from edge_agent.simulator.box import JUNE_1_2026_UTC, BoxSpec, OutputWiring
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec
from edge_agent.simulator.pv import CloudSpec, PvArraySpec
from edge_agent.storage.data_log import DataLogStore

ROOT = Path(__file__).resolve().parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
PROTOCOL = ROOT / "docs" / "protocol.md"
SCHEMA_NAMES = (
    "announce",
    "state",
    "config",
    "event",
    "result",
    "config_set",
    "command",
    "history_get",
    "history_result",
)
COMMANDS = ("set_soc", "mark_full", "zero_current", "force_off", "cancel_force_off", "clear_fault")


@cache
def _schema(name: str) -> dict[str, Any]:
    schema: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text("utf-8"))
    return schema


def _validator(name: str) -> Draft202012Validator:
    """`command:set_soc` selects one command's $defs entry."""
    base, _, part = name.partition(":")
    schema = _schema(base)
    if part:
        schema = {**schema, "anyOf": [{"$ref": f"#/$defs/{part}"}]}
        assert part in schema["$defs"], f"no command {part!r} in command.schema.json"
    return Draft202012Validator(schema, format_checker=Draft202012Validator.FORMAT_CHECKER)


def _assert_valid(name: str, payload: Any) -> None:
    # Validate what goes on the wire, not the Python object.
    wire = json.loads(encode(payload)) if isinstance(payload, dict) else payload
    errors = sorted(_validator(name).iter_errors(wire), key=lambda error: list(error.path))
    assert not errors, "\n".join(f"{list(e.path)}: {e.message}" for e in errors)


@pytest.mark.parametrize("name", SCHEMA_NAMES)
def test_schemas_are_valid_draft_2020_12(name: str) -> None:
    schema = _schema(name)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)


# ---------------------------------------------------------------------------------------------
# Real payloads from the simulated box
# ---------------------------------------------------------------------------------------------


def _sunny_dual_pv_spec() -> BoxSpec:
    return BoxSpec(
        start=JUNE_1_2026_UTC + 10 * 3600.0,  # mid-morning: PV, charging, dual-PV staging
        clouds=CloudSpec(sunny_probability=1.0, sunny_passing_clouds_per_day=0.0),
        pv_secondary=PvArraySpec(panels_in_parallel=4),
    )


@pytest.fixture(scope="module")
def running() -> tuple[SimulatedSystem, list[ControlReport]]:
    system = SimulatedSystem(_sunny_dual_pv_spec())
    reports: list[ControlReport] = []
    system.run(300.0, reports.append)
    return system, reports


@pytest.fixture(scope="module")
def failing() -> tuple[SimulatedSystem, list[ControlReport]]:
    """A box whose bus fails from the first sample: no measurement ever, then faults."""
    system = SimulatedSystem(BoxSpec())
    system.box.bus.fail_all()
    reports: list[ControlReport] = []
    system.run(20.0, reports.append)
    return system, reports


def test_state_from_a_running_box(running: tuple[SimulatedSystem, list[ControlReport]]) -> None:
    _, reports = running
    for report in [*reports[::10], reports[-1]]:
        _assert_valid("state", state_payload(report))
    last = state_payload(reports[-1])
    assert last["measurement_ok"] is True
    assert len(last["cells"]) == 8
    assert last["dual_pv_level"] in (1, 2, 3)
    assert last["pv_current"] is not None
    assert last["pv_current"] > 0
    # Issue 20: PV energy per array on this dual-PV box, within the PV counter.
    assert set(last["pv_arrays_wh"]) == {"extio4", "extio5"}
    assert 0 < sum(last["pv_arrays_wh"].values()) <= last["counters"]["pv_wh"]


def test_state_schema_rejects_a_negative_array_counter(
    running: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    payload = state_payload(running[1][-1])
    payload["pv_arrays_wh"]["extio4"] = -1.0
    with pytest.raises(AssertionError, match="pv_arrays_wh"):
        _assert_valid("state", payload)


def test_state_soc_uncertainty_from_a_running_box(
    running: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    _, reports = running
    uncertainty = state_payload(reports[-1])["soc_uncertainty"]
    assert isinstance(uncertainty, float)
    assert 0 < uncertainty <= 50


@pytest.mark.parametrize("value", [-0.1, 50.1, "3.0", True])
def test_state_schema_rejects_a_bad_soc_uncertainty(
    running: tuple[SimulatedSystem, list[ControlReport]], value: object
) -> None:
    _, reports = running
    wire = json.loads(encode(state_payload(reports[-1])))
    wire["soc_uncertainty"] = value
    assert list(_validator("state").iter_errors(wire))


def test_state_schema_accepts_an_older_agent_without_soc_uncertainty(
    running: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    _, reports = running
    wire = json.loads(encode(state_payload(reports[-1])))
    del wire["soc_uncertainty"]
    _assert_valid("state", wire)
    wire["soc_uncertainty"] = None  # an agent that does not estimate it (a stock SBMS0)
    _assert_valid("state", wire)


def test_state_before_any_measurement(
    failing: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    _, reports = failing
    first = state_payload(reports[0])
    _assert_valid("state", first)
    assert first["voltage"] is None
    assert first["cells"] == []
    assert first["measurement_ok"] is False


def test_state_with_faults(failing: tuple[SimulatedSystem, list[ControlReport]]) -> None:
    _, reports = failing
    payload = state_payload(reports[-1])
    _assert_valid("state", payload)
    assert Fault.MEASUREMENT_FAILURE.value in payload["faults"]
    assert "measurement_stale" in payload["interlocks"]
    assert payload["outputs"]["extio6"] is True  # the fault output asserts


def test_state_when_measurements_stop_after_good_ones() -> None:
    system = SimulatedSystem(_sunny_dual_pv_spec())
    system.run(30.0)
    system.box.bus.fail_all()
    report = system.run(20.0)
    assert report is not None
    payload = state_payload(report)
    _assert_valid("state", payload)
    assert payload["measurement_ok"] is False
    assert payload["voltage"] is not None  # the last good values stay visible
    assert payload["faults"] == ["measurement_failure"]


def _events(reports: list[ControlReport]) -> Iterator[ControlEvent]:
    for report in reports:
        yield from report.events


def test_events_from_the_simulated_box(
    running: tuple[SimulatedSystem, list[ControlReport]],
    failing: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    events = [*_events(running[1]), *_events(failing[1])]
    kinds = {event.kind for event in events}
    assert EventKind.FAULT_RAISED in kinds
    for event in events:
        _assert_valid("event", event_payload(event))


@pytest.mark.parametrize(
    "event",
    [
        ControlEvent(EventKind.HVD_TRIP, 1.0),
        ControlEvent(EventKind.HVD_TRIP, 1.0, {"cell": 3, "voltage": 3.6123}),
        ControlEvent(EventKind.LVD_TRIP, 1.0, {"cell": 1, "voltage": 2.5}),
        ControlEvent(EventKind.LVD_RELEASE, 2.0),
        ControlEvent(EventKind.LOW_SOC_ALARM, 3.0),
        ControlEvent(EventKind.FAULT_CLEARED, 4.0, {"fault": "over_temperature"}),
        ControlEvent(EventKind.DUAL_PV_LEVEL, 5.0, {"from": 1, "to": 2}),
        ControlEvent(EventKind.SOC_SYNC, 6.0, {"from": 97.2, "to": 100.0, "reason": "eoc"}),
        ControlEvent(EventKind.SOC_SYNC, 6.0, {"from": 100.157, "to": 100.0, "reason": "hvd"}),
    ],
)
def test_every_event_kind_shape(event: ControlEvent) -> None:
    _assert_valid("event", event_payload(event))


def test_bad_event_detail_is_caught_by_the_schema() -> None:
    bad = {"kind": "fault_raised", "timestamp": 1.0, "detail": {"fault": "bogus"}}
    assert list(_validator("event").iter_errors(bad))


@pytest.mark.parametrize(
    "detail",
    [{"cell": 0, "voltage": 3.6}, {"cell": 3}, {"voltage": 3.6}, {"cell": 3, "voltage": "3.6"}],
)
def test_bad_trip_detail_is_caught_by_the_schema(detail: dict[str, object]) -> None:
    bad = {"kind": "hvd_trip", "timestamp": 1.0, "detail": detail}
    assert list(_validator("event").iter_errors(bad))


def test_an_unclamped_soc_sync_is_caught_by_the_schema() -> None:
    detail = {"from": 100.157, "to": 100.0, "reason": "hvd"}
    bad = {"kind": "soc_sync", "timestamp": 1.0, "detail": detail}
    assert list(_validator("event").iter_errors(bad))


def test_every_event_kind_is_in_the_schema() -> None:
    assert set(_schema("event")["properties"]["kind"]["enum"]) == {k.value for k in EventKind}


@pytest.mark.parametrize("source", ["diy", "sbms0", "simulator"])
def test_announce(running: tuple[SimulatedSystem, list[ControlReport]], source: str) -> None:
    system, _ = running
    payload = announce_payload(system.config, source, "sim-0001", COMMANDS)
    _assert_valid("announce", payload)
    settable = [] if source == "sbms0" else [0, 1, 3, 6]  # a stock SBMS takes no config/set
    assert payload["outputs"][2] == {
        "name": "extio5",
        "type": 6,
        "type_name": "dual_pv",
        "wiring": "charge",
        "settable_types": settable,
    }
    fault = payload["outputs"][3]
    assert (fault["wiring"], fault["settable_types"]) == ("fault", [5] if settable else [])


@pytest.mark.parametrize("history", [True, False, None])
def test_announce_history_capability_is_optional(
    running: tuple[SimulatedSystem, list[ControlReport]], history: bool | None
) -> None:
    system, _ = running
    payload = announce_payload(system.config, "diy", "sim-0001", COMMANDS, history=bool(history))
    assert payload["capabilities"]["history"] is bool(history)
    if history is None:  # an agent from before the back-fill: no such key
        del payload["capabilities"]["history"]
    _assert_valid("announce", payload)


def test_config(running: tuple[SimulatedSystem, list[ControlReport]]) -> None:
    system, _ = running
    payload = config_payload(system.config, 7)
    _assert_valid("config", payload)
    assert "storage" not in payload
    assert payload["config_revision"] == 7


@pytest.fixture(scope="module")
def diverting() -> tuple[SimulatedSystem, list[ControlReport]]:
    """A full pack at noon with a heat path, its shunt and the tank's thermistor on xT2
    (issue 19)."""
    spec = BoxSpec(
        start=JUNE_1_2026_UTC + 11 * 3600.0,
        clouds=CloudSpec(sunny_probability=1.0, sunny_passing_clouds_per_day=0.0),
        initial_soc=0.99,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(shunt_rating=(30.0, 75.0), tank_sensor_on_xt2=True),
    )
    system = SimulatedSystem(spec, simulated_config(spec, sample_interval_s=5.0))
    reports: list[ControlReport] = []
    system.run(1800.0, reports.append)
    return system, reports


def test_state_with_diversion(diverting: tuple[SimulatedSystem, list[ControlReport]]) -> None:
    _, reports = diverting
    for report in reports[::20]:
        _assert_valid("state", state_payload(report))
    last = state_payload(reports[-1])
    assert last["diversion"]["diverting"] is True
    assert last["diversion"]["measured"] is True
    assert last["diversion"]["power_w"] > 100.0
    assert last["diversion"]["counters"]["diverted_measured_wh"] > 0.0


def test_state_with_the_heater_tank(
    diverting: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    """`diversion.tank_temperature: external2` labels xT2's reading as the tank's too."""
    system, reports = diverting
    tank = system.config.control.diversion.tank_temperature
    assert tank == "external2"  # simulated_config: the thermistor is on xT2
    for report in (*reports[::20], reports[-1]):
        payload = state_payload(report, tank_temperature=tank)
        _assert_valid("state", payload)
        temperatures = payload["temperatures"]
        assert temperatures["heater_tank"] == temperatures["external2"] is not None
    assert system.box.tank is not None
    published = state_payload(reports[-1], tank_temperature=tank)["temperatures"]
    assert published["heater_tank"] == pytest.approx(system.box.tank.temperature_c, abs=0.5)
    assert "heater_tank" not in state_payload(reports[-1])["temperatures"]  # not configured
    bad = json.loads(encode(state_payload(reports[-1], tank_temperature=tank)))
    bad["temperatures"]["heater_tank"] = "48 C"
    assert list(_validator("state").iter_errors(bad))


def test_state_without_diversion_has_no_diversion_object(
    running: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    _, reports = running
    assert "diversion" not in state_payload(reports[-1])


def test_state_schema_rejects_a_bad_diversion(
    diverting: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    payload = json.loads(encode(state_payload(diverting[1][-1])))
    del payload["diversion"]["counters"]["curtailed_wh"]
    assert list(_validator("state").iter_errors(payload))


def test_announce_and_config_with_diversion(
    diverting: tuple[SimulatedSystem, list[ControlReport]],
) -> None:
    system, _ = diverting
    announce = announce_payload(system.config, "simulator", "sim-0001", COMMANDS)
    _assert_valid("announce", announce)
    heat = next(output for output in announce["outputs"] if output["name"] == "heat1")
    assert heat == {
        "name": "heat1",
        "type": 7,
        "type_name": "diversion",
        "wiring": "heater",
        "settable_types": [0, 7],
    }
    config = config_payload(system.config, 1)
    _assert_valid("config", config)
    assert config["heat_shunt"]["address"] == 0x44
    assert config["remote_window"]["diversion"] == {"dead_time_s": [1.0, 10.0]}
    assert config["diversion"]["tank_temperature"] == "external2"
    _assert_valid("config_set", {"config": {"diversion": {"dead_time_s": 3}}})
    assert list(_validator("config_set").iter_errors({"config": {"diversion": {"arrays": []}}}))
    file_only = {"config": {"diversion": {"tank_temperature": "external2"}}}
    assert list(_validator("config_set").iter_errors(file_only))
    config["diversion"]["tank_temperature"] = "internal"  # not an input that reads a tank
    assert list(_validator("config").iter_errors(config))


@pytest.mark.parametrize(
    ("command", "errors", "revision"),
    [
        ("config/set", [], 3),
        ("config/set", [("thresholds.hvd", "must be between 2 and 4.3 V (got 9)")], None),
        ("set_soc", [], None),
        ("force_off", [("output", "unknown output 'x'")], None),
        ("nonsense", [("command", "unknown command")], None),
    ],
)
def test_results(command: str, errors: list[tuple[str, str]], revision: int | None) -> None:
    _assert_valid("result", result_payload(command, "r-1", errors, 1780272000.25, revision))
    _assert_valid("result", result_payload(command, None, errors, 1780272000.25, revision))


def test_result_schema_rejects_inconsistent_results() -> None:
    validator = _validator("result")
    accepted_with_errors = result_payload("set_soc", None, [], 1.0)
    accepted_with_errors["errors"] = [{"field": "soc", "reason": "x"}]
    rejected_without_errors = result_payload("set_soc", None, [("soc", "x")], 1.0)
    rejected_without_errors["errors"] = []
    revision_on_a_command = result_payload("set_soc", None, [], 1.0, 2)
    for bad in (accepted_with_errors, rejected_without_errors, revision_on_a_command):
        assert list(validator.iter_errors(bad))


def _history_answer(reader: HistoryReader, request: dict[str, Any]) -> dict[str, Any]:
    result: HistoryResult = asyncio.run(reader.answer(json.dumps(request).encode()))
    return history_result_payload(result.request_id, result.errors, 1780272000.25, page=result.page)


def test_history_results_from_a_real_log(
    running: tuple[SimulatedSystem, list[ControlReport]], tmp_path: Path
) -> None:
    _, reports = running
    aggregator = DataAggregator(10)
    records = [r for r in map(aggregator.add, reports) if r is not None]
    path = tmp_path / "log.db"
    with DataLogStore(path, interval_s=10) as store:
        store.append_many(records)
    reader = HistoryReader(path, 10)
    first, last = records[0].start, records[-1].start
    page = _history_answer(reader, {"request_id": "h1", "from": first, "to": last + 1, "limit": 5})
    rest = _history_answer(reader, {"from": page["next_from"], "to": last + 1, "limit": 120})
    reader.close()
    rejected = _history_answer(HistoryReader(None, 10), {"from": first, "to": last})
    bad = _history_answer(reader, {"from": "yesterday", "to": 1, "limit": 0, "x": 1})
    for payload in (page, rest, rejected, bad):
        _assert_valid("history_result", payload)
    assert len(page["records"]) == 5
    assert page["records"][0]["cells"]  # real 8S records, not empty ones
    assert page["next_from"] == records[5].start
    assert rest["next_from"] is None
    assert len(page["records"]) + len(rest["records"]) == len(records) >= 20
    assert rejected["errors"] == [{"field": "history", "reason": "no data log on this box"}]
    assert bad["status"] == "rejected"


def test_history_result_schema_rejects_inconsistent_results() -> None:
    validator = _validator("history_result")
    accepted = history_result_payload(None, [], 1.0)  # accepted needs records and next_from
    rejected_with_records = history_result_payload(None, [("history", "x")], 1.0)
    rejected_with_records["records"] = []
    wrong_command = result_payload("set_soc", None, [("soc", "x")], 1.0)
    for bad in (accepted, rejected_with_records, wrong_command):
        assert list(validator.iter_errors(bad))


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("history_get", {"from": 1, "to": 2, "limit": 121}),
        ("history_get", {"from": 1, "to": 2, "since": 0}),
        ("history_get", {"to": 2}),
        ("history_get", {"from": "1", "to": 2}),
        ("command:set_soc", {"soc": 101}),
        ("command:set_soc", {"soc": 50, "extra": 1}),
        ("command:force_off", {"output": "extio3", "seconds": 0}),
        ("command:force_off", {"output": "extio3", "seconds": 604801}),
        ("command:mark_full", {"request_id": "has space"}),
        ("config_set", {"config": {"cell_monitor": {"address": 41}}}),
        ("config_set", {"config": {"outputs": {"extio5": {"pin": 3}}}}),
        ("config_set", {"config": {}}),
        ("config_set", {"config": {"thresholds": {"hvd": "3.6"}}}),
    ],
)
def test_request_schemas_reject_bad_requests(name: str, payload: dict[str, Any]) -> None:
    assert list(_validator(name).iter_errors(payload))


# ---------------------------------------------------------------------------------------------
# Examples in docs/protocol.md
# ---------------------------------------------------------------------------------------------

_EXAMPLE = re.compile(r"<!-- schema: ([a-z_]+(?::[a-z_]+)?) -->\s*```json\n(.*?)```", re.DOTALL)


def _examples() -> list[tuple[str, str]]:
    return [(m.group(1), m.group(2)) for m in _EXAMPLE.finditer(PROTOCOL.read_text("utf-8"))]


def test_protocol_doc_has_examples_for_every_schema() -> None:
    names = {name.partition(":")[0] for name, _ in _examples()}
    assert names == set(SCHEMA_NAMES)
    commands = {name.partition(":")[2] for name, _ in _examples() if name.startswith("command:")}
    assert commands == set(COMMANDS)


@pytest.mark.parametrize(("name", "text"), _examples())
def test_protocol_doc_example_is_valid(name: str, text: str) -> None:
    _assert_valid(name, json.loads(text))


def test_every_json_block_in_the_doc_is_checked() -> None:
    text = PROTOCOL.read_text("utf-8")
    assert text.count("```json") == len(_examples())
