"""The stock-SBMS agent: the SBMS's values mapped onto the normal state, staleness and recovery,
the announce, the configuration section and check-config."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.cli import main
from edge_agent.config import ConfigError, parse_config
from edge_agent.control.model import EventKind, Fault, Interlock
from edge_agent.mqtt.payloads import announce_payload, config_payload, encode, state_payload
from edge_agent.sbms0.agent import Sbms0Agent
from edge_agent.sbms0.receiver import FrameReceiver
from tests.helpers.sbms0 import encode_frame, make_frame, make_page

ROOT = Path(__file__).parents[2]
SCHEMAS = ROOT / "docs" / "schemas"
START = 1_780_000_000.0


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


def _valid(name: str, payload: dict[str, Any]) -> dict[str, Any]:
    document: dict[str, Any] = json.loads(encode(payload))
    jsonschema.validate(document, _schema(name))
    return document


class FakeClock:
    def __init__(self) -> None:
        self.time = START

    def now(self) -> float:
        return self.time


SERIAL_CONFIG = {
    "agent_id": "cabin",
    "battery": {"cells": 8, "capacity_ah": 200},
    "source": {"type": "sbms0", "serial": {"port": "/dev/ttyUSB0"}, "stale_after_s": 10},
}


def _agent(
    config_data: dict[str, Any] | None = None,
) -> tuple[Sbms0Agent, FrameReceiver, FakeClock]:
    config = parse_config(config_data or SERIAL_CONFIG)
    clock = FakeClock()
    receiver = FrameReceiver(cell_count=config.control.cell_count, clock=clock.now)
    return Sbms0Agent(config, receiver, clock.now()), receiver, clock


def test_serial_frame_maps_onto_the_normal_state() -> None:
    agent, receiver, clock = _agent()
    receiver.offer_line(encode_frame(make_frame()))
    clock.time += 1
    state = _valid("state", state_payload(agent.step(clock.now())))
    assert state["soc"] == 77.0
    assert state["soc_uncertainty"] is None  # the SBMS's own SoC: no band (issue 16)
    assert state["capacity_ah"] == 200.0
    assert state["remaining_ah"] == 154.0
    assert state["cells"] == [3.321, 3.322, 3.323, 3.324, 3.325, 3.326, 3.327, 3.328]
    assert state["voltage"] == pytest.approx(26.6, abs=0.01)
    assert state["battery_current"] == -12.5
    assert state["pv_current"] == 3.2
    assert state["load_current"] == pytest.approx(15.7)  # PV minus battery: every load
    assert state["temperatures"] == {"internal": 24.5, "battery": 18.3, "external2": None}
    assert state["flags"] == ["CFET", "DFET"]
    assert state["outputs"] == {"pv": True, "load": True}
    assert state["charge_allowed"] is True
    assert state["load_allowed"] is True
    assert state["faults"] == []
    assert state["interlocks"] == []
    assert state["dual_pv_level"] == 1
    assert state["time_to_empty_s"] == round(154 / 12.5 * 3600)
    assert state["measurement_ok"] is True
    assert state["source_stats"] == {
        "frames_ok": 1,
        "frames_unchecked": 0,
        "frames_bad": 0,
        "link_errors": 0,
        "bad_by_kind": {},
        "reanchored": 0,
    }


def test_output_states_and_lockouts_come_from_the_flags() -> None:
    agent, receiver, clock = _agent()
    # UV + UVLK + CFET: the SBMS has cut the loads and locked out under-voltage.
    receiver.offer_line(encode_frame(make_frame(flags=(1 << 2) | (1 << 3) | (1 << 12))))
    report = agent.step(clock.now())
    state = _valid("state", state_payload(report))
    assert state["outputs"] == {"pv": True, "load": False}
    assert state["load_allowed"] is False
    assert set(state["interlocks"]) == {"lvd", "under_voltage_lockout"}
    assert state["faults"] == ["under_voltage_lockout"]
    # The SBMS's own trips become the agent's events, each told once.
    assert [(e.kind, dict(e.detail)) for e in report.events] == [
        (EventKind.LVD_TRIP, {}),
        (EventKind.FAULT_RAISED, {"fault": "under_voltage_lockout"}),
    ]
    clock.time += 1
    assert agent.step(clock.now()).events == ()
    receiver.offer_line(encode_frame(make_frame(flags=(1 << 0) | (1 << 12) | (1 << 13))))
    clock.time += 1
    events = agent.step(clock.now()).events
    assert [(e.kind, dict(e.detail)) for e in events] == [
        (EventKind.HVD_TRIP, {}),
        (EventKind.LVD_RELEASE, {}),
        (EventKind.FAULT_CLEARED, {"fault": "under_voltage_lockout"}),
    ]


def test_http_page_brings_capacity_balancing_outputs_and_counters() -> None:
    config = {**SERIAL_CONFIG, "source": {"type": "sbms0", "http": {"url": "http://sbms/rawData"}}}
    agent, receiver, clock = _agent(config)
    receiver.offer_page(make_page())
    state = _valid("state", state_payload(agent.step(clock.now())))
    assert state["capacity_ah"] == 280.0  # the SBMS's own (xsbms), not the file's 200
    assert state["balancing"] == [False, True, False, False, False, False, False, True]
    assert state["outputs"] == {"pv": True, "load": False}  # s2, not the FET flags
    counters = state["counters"]
    assert counters["battery_out_ah"] == 1.0
    assert counters["pv_ah"] == 2.3
    assert counters["load_ah"] == 1.2  # load + external load
    assert counters["battery_in_ah"] == 0.0  # the SBMS counts no charge: not guessed
    assert counters["pv_wh"] == pytest.approx(2300 * 266 // 10 / 10)


def test_no_frame_for_stale_after_s_is_reported_and_recovers_by_itself() -> None:
    agent, receiver, clock = _agent()
    first = agent.step(clock.now())
    assert _valid("state", state_payload(first))["measurement_ok"] is False
    assert first.measurement is None
    receiver.offer_line(encode_frame(make_frame()))
    clock.time += 10
    assert state_payload(agent.step(clock.now()))["measurement_ok"] is True
    clock.time += 0.5  # 10.5 s after the last good frame
    stale = agent.step(clock.now())
    state = _valid("state", state_payload(stale))
    assert state["measurement_ok"] is False
    assert Interlock.MEASUREMENT_STALE in stale.interlocks
    assert Fault.MEASUREMENT_FAILURE in stale.faults
    assert state["cells"]  # the last good values stay, marked stale
    receiver.offer_line("damaged line")
    assert state_payload(agent.step(clock.now()))["measurement_ok"] is False
    receiver.offer_line(encode_frame(make_frame(soc=78)))
    back = state_payload(agent.step(clock.now()))
    assert back["measurement_ok"] is True
    assert back["soc"] == 78.0
    assert back["source_stats"]["frames_bad"] == 1


def test_before_the_first_frame_nothing_is_measured_and_it_goes_stale() -> None:
    agent, _receiver, clock = _agent()
    state = _valid("state", state_payload(agent.step(clock.now())))
    assert state["cells"] == []
    assert state["faults"] == []
    clock.time += 11
    state = _valid("state", state_payload(agent.step(clock.now())))
    assert state["faults"] == ["measurement_failure"]
    assert state["measurement_ok"] is False


def test_announce_says_read_only_with_the_sbms_outputs() -> None:
    config = parse_config(SERIAL_CONFIG)
    announce = _valid("announce", announce_payload(config, "sbms0", "x", (), pv_current=True))
    assert announce["source"] == "sbms0"
    assert announce["cells"] == 8
    assert announce["capabilities"] == {"config_set": False, "commands": [], "history": False}
    assert announce["outputs"] == [
        {"name": "pv", "type": 1, "type_name": "hvd", "wiring": "charge", "settable_types": []},
        {"name": "load", "type": 2, "type_name": "lvd", "wiring": "load", "settable_types": []},
    ]
    assert announce["measurements"] == {
        "pv_current": True,
        "temperatures": ["internal", "battery"],
    }


def test_config_payload_hides_the_source_and_drives_no_pin() -> None:
    payload = _valid("config", config_payload(parse_config(SERIAL_CONFIG), 0))
    assert "source" not in payload
    assert payload["outputs"] == []


def test_close_switches_nothing() -> None:
    agent, receiver, clock = _agent()
    receiver.offer_line(encode_frame(make_frame()))
    agent.close(clock.now())
    assert agent.step(clock.now()).outputs == {"pv": True, "load": True}


def test_the_i2c_state_has_no_source_stats() -> None:
    from edge_agent.control.model import ControlReport, EnergyCounters

    report = ControlReport(
        timestamp=START,
        outputs={},
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
        events=(),
        measurement=None,
    )
    assert "source_stats" not in state_payload(report)


# --- configuration --------------------------------------------------------------------------


def _problems(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return list(caught.value.problems)


def test_sbms0_config_defaults() -> None:
    config = parse_config(SERIAL_CONFIG)
    assert config.source.serial is not None
    assert config.source.serial.baud == 921600
    assert config.source.stale_after_s == 10
    assert config.hardware.outputs == ()
    assert [output.name for output in config.control.outputs] == ["pv", "load"]
    http = parse_config({"source": {"type": "sbms0", "http": {"url": "http://10.0.0.9/rawData"}}})
    assert http.source.http is not None
    assert http.source.http.interval_s == 2.0


def test_sbms0_config_survives_the_dict_round_trip() -> None:
    from edge_agent.config import config_to_dict

    config = parse_config(SERIAL_CONFIG)
    assert parse_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("source", "problem"),
    [
        ({"type": "sbms0"}, "source: type sbms0 needs exactly one of serial or http"),
        (
            {"type": "sbms0", "serial": {"port": "/dev/x"}, "http": {"url": "http://x"}},
            "source: type sbms0 needs exactly one of serial or http",
        ),
        ({"type": "sbms9"}, "source.type: must be one of i2c, sbms0 (got 'sbms9')"),
        (
            {"type": "sbms0", "serial": {"baud": 9600}},
            "source.serial.port: required key is missing",
        ),
        ({"type": "sbms0", "serial": {"port": "/dev/x", "baud": 300}}, "source.serial.baud"),
        ({"type": "sbms0", "http": {"url": "sbms.local"}}, "source.http.url: must be an http://"),
        ({"type": "sbms0", "http": {"url": "http://x", "interval_s": 0}}, "source.http.interval_s"),
        (
            {"type": "sbms0", "http": {"url": "http://x", "interval_s": 8}},
            "source.stale_after_s: must be at least 2 x source.http.interval_s",
        ),
        ({"type": "sbms0", "serial": {"port": "/x"}, "stale_after_s": 0}, "source.stale_after_s"),
        ({"serial": {"port": "/dev/x"}}, "source.serial: only for type sbms0"),
        (
            {"type": "sbms0", "serial": {"port": "/x"}, "colour": "red"},
            "source.colour: unknown key",
        ),
    ],
)
def test_bad_source_sections_are_named(source: dict[str, Any], problem: str) -> None:
    problems = _problems({"source": source})
    assert any(line.startswith(problem) for line in problems), problems


def test_outputs_are_refused_with_a_stock_sbms() -> None:
    problems = _problems(
        {
            "source": {"type": "sbms0", "serial": {"port": "/dev/x"}},
            "outputs": [
                {"name": "extio3", "type": 2, "driver": "mcp23008", "address": 32, "pin": 0}
            ],
        }
    )
    assert "outputs: not with source type sbms0 (the SBMS drives its own outputs)" in problems


def test_check_config_accepts_the_example(capsys: pytest.CaptureFixture[str]) -> None:
    example = ROOT / "examples" / "config-sbms0.yaml"
    assert main(["check-config", str(example)]) == 0
    assert (
        "stock SBMS0 on /dev/serial/by-id/usb-SBMS0-if00 at 921600 baud" in capsys.readouterr().out
    )


def test_check_config_rejects_a_bad_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("source: {type: sbms0}\n")
    assert main(["check-config", str(path)]) == 2
    assert "needs exactly one of serial or http" in capsys.readouterr().err
