"""Remote commands (MQTT cmd/<name> without MQTT): each accepted and rejected path, fuzzed."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import AgentConfig
from edge_agent.control.extio import is_charge_type, is_load_type
from edge_agent.control.model import EventKind, Fault
from edge_agent.control.settings import CellThresholds
from edge_agent.mqtt.handlers import RemoteResult
from edge_agent.mqtt.payloads import state_payload
from edge_agent.runtime.remote import COMMANDS, RemoteControl
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem, simulated_config

ISL = 0x28
WEEK_S = 604800


@dataclasses.dataclass
class Rig:
    system: SimulatedSystem
    remote: RemoteControl

    @property
    def now(self) -> float:
        return self.system.box.now

    def command(self, name: str, arguments: Any = None, **keys: Any) -> RemoteResult:
        document = {**(arguments or {}), **keys}
        return self.remote.handle_command(name, json.dumps(document).encode(), self.now)


def _rig(config: AgentConfig | None = None, spec: BoxSpec | None = None, run_s: float = 3.0) -> Rig:
    spec = spec or BoxSpec.for_cells(4)
    config = config or simulated_config(spec, state_path=Path("unused.db"))
    system = SimulatedSystem(spec, config)
    if run_s:
        system.run(run_s)
    return Rig(system, RemoteControl(system.agent, config, None, system.box.now))


def _errors(result: RemoteResult) -> dict[str, str]:
    return dict(result.errors)


def test_the_supported_commands_are_announced() -> None:
    assert _rig(run_s=0).remote.commands == (
        "set_soc",
        "mark_full",
        "zero_current",
        "force_off",
        "cancel_force_off",
        "clear_fault",
    )


# --- set_soc / mark_full --------------------------------------------------------------------


def test_set_soc() -> None:
    rig = _rig()
    result = rig.command("set_soc", soc=73.5, request_id="s1")
    assert result == RemoteResult("set_soc", "s1", ())
    report = rig.system.run(1.0)
    assert report is not None
    assert report.soc == pytest.approx(73.5, abs=0.1)


@pytest.mark.parametrize(
    ("arguments", "field", "reason"),
    [
        ({}, "soc", "required key is missing"),
        ({"soc": -0.1}, "soc", "between 0 and 100"),
        ({"soc": 100.5}, "soc", "between 0 and 100"),
        ({"soc": "50"}, "soc", "must be a number"),
        ({"soc": True}, "soc", "must be a number"),
        ({"soc": None}, "soc", "must be a number"),
        ({"soc": 50, "percent": 50}, "percent", "unknown key"),
    ],
)
def test_set_soc_rejected(arguments: dict[str, Any], field: str, reason: str) -> None:
    rig = _rig()
    before = rig.system.agent.controller.snapshot()
    result = rig.command("set_soc", arguments)
    assert not result.accepted
    assert reason in _errors(result)[field]
    assert rig.system.agent.controller.snapshot() == before


def test_set_soc_rejects_non_finite_numbers() -> None:
    rig = _rig()
    for literal in (b"NaN", b"Infinity", b"1e999", b"9" * 400):
        result = rig.remote.handle_command("set_soc", b'{"soc": ' + literal + b"}", rig.now)
        assert "finite" in _errors(result)["soc"]


def test_mark_full() -> None:
    rig = _rig()
    assert rig.command("mark_full").accepted
    report = rig.system.run(1.0)
    assert report is not None
    assert report.soc == pytest.approx(100.0, abs=0.1)
    assert EventKind.SOC_SYNC in {event.kind for event in report.events}
    assert _errors(rig.command("mark_full", soc=100)) == {"soc": "unknown key"}


# --- zero_current ---------------------------------------------------------------------------


def _quiet_box() -> BoxSpec:
    """No sun (the run starts at midnight) and a small night load: a few amps at most."""
    return BoxSpec.for_cells(4)


def test_zero_current_takes_the_present_reading_as_the_offset() -> None:
    rig = _rig(spec=_quiet_box())
    report = rig.system.agent.last_report
    assert report is not None
    assert report.measurement is not None
    current = report.measurement.battery_current
    assert abs(current) < 0.05 * 250.0

    assert rig.command("zero_current", request_id="z").accepted

    offset = rig.system.agent.controller.snapshot().soc.offset_a
    assert offset == pytest.approx(max(-0.5, min(0.5, current)))  # bounded to 0.5 % of 100 Ah


def test_zero_current_needs_a_small_current() -> None:
    spec = dataclasses.replace(_quiet_box(), battery_shunt_rating=(10.0, 75.0))
    rig = _rig(spec=spec)
    report = rig.system.agent.last_report
    assert report is not None
    assert report.measurement is not None
    assert abs(report.measurement.battery_current) >= 0.5  # 5 % of a 10 A shunt
    before = rig.system.agent.controller.snapshot()

    result = rig.command("zero_current")

    assert "zero calibration needs less than 0.5 A" in _errors(result)["battery_current"]
    assert rig.system.agent.controller.snapshot() == before


def test_zero_current_needs_a_recent_good_measurement() -> None:
    rig = _rig(run_s=0)
    assert "no good measurement" in _errors(rig.command("zero_current"))["battery_current"]

    rig.system.run(2.0)
    later = rig.now + 11.0
    result = rig.remote.handle_command("zero_current", b"{}", later)
    assert "in the last 10 s" in _errors(result)["battery_current"]

    rig.system.box.bus.fail(ISL, 121)
    rig.system.run(12.0)  # measurements failing: the last good one gets old
    assert "no good measurement" in _errors(rig.command("zero_current"))["battery_current"]
    assert _errors(rig.command("zero_current", extra=1)) == {"extra": "unknown key"}


# --- force_off / cancel_force_off -----------------------------------------------------------


def test_force_off_holds_an_output_off_for_the_time_then_releases() -> None:
    rig = _rig()
    report = rig.system.run(1.0)
    assert report is not None
    assert report.outputs["extio3"] is True

    asked_at = rig.now
    assert rig.command("force_off", output="extio3", seconds=30, request_id="f").accepted

    report = rig.system.run(10.0)
    assert report is not None
    assert report.outputs["extio3"] is False
    assert report.forced_off == {"extio3": pytest.approx(asked_at + 30, abs=1.0)}
    assert state_payload(report)["forced_off"] == {"extio3": pytest.approx(asked_at + 30, abs=1.0)}
    report = rig.system.run(25.0)
    assert report is not None
    assert report.outputs["extio3"] is True
    assert report.forced_off == {}
    assert state_payload(report)["forced_off"] == {}


def test_cancel_force_off() -> None:
    rig = _rig()
    assert rig.command("force_off", output="extio4", seconds=WEEK_S).accepted
    report = rig.system.run(1.0)
    assert report is not None
    assert report.outputs["extio4"] is False

    assert rig.command("cancel_force_off", output="extio4").accepted

    report = rig.system.run(1.0)
    assert report is not None
    assert report.outputs["extio4"] is True
    assert rig.command("cancel_force_off", output="extio4").accepted  # idempotent


@pytest.mark.parametrize(
    ("arguments", "errors"),
    [
        ({"output": "extio6", "seconds": 60}, {"output": "fault output"}),
        ({"output": "extio5", "seconds": 60}, {"output": "unused"}),
        ({"output": "extio9", "seconds": 60}, {"output": "unknown output 'extio9'"}),
        ({"output": 3, "seconds": 60}, {"output": "unknown output 3"}),
        ({"output": "extio3", "seconds": 0.5}, {"seconds": "between 1 and 604800"}),
        ({"output": "extio3", "seconds": WEEK_S + 1}, {"seconds": "between 1 and 604800"}),
        ({"output": "extio3", "seconds": "60"}, {"seconds": "must be a number"}),
        ({"output": "extio3"}, {"seconds": "required key is missing"}),
        ({"seconds": 60}, {"output": "required key is missing"}),
        (
            {"output": "extio6", "seconds": -1},
            {"output": "fault output", "seconds": "between"},
        ),
        ({"output": "extio3", "seconds": 60, "on": True}, {"on": "unknown key"}),
    ],
)
def test_force_off_rejected(arguments: dict[str, Any], errors: dict[str, str]) -> None:
    rig = _rig()
    result = rig.command("force_off", arguments)
    found = _errors(result)
    assert set(found) == set(errors), found
    for field, reason in errors.items():
        assert reason in found[field]
    assert rig.system.agent.controller.snapshot().forced_off == {}


@pytest.mark.parametrize(
    ("arguments", "field", "reason"),
    [
        ({"output": "extio9"}, "output", "unknown output"),
        ({}, "output", "required key is missing"),
        ({"output": "extio3", "seconds": 5}, "seconds", "unknown key"),
    ],
)
def test_cancel_force_off_rejected(arguments: dict[str, Any], field: str, reason: str) -> None:
    rig = _rig()
    assert rig.command("force_off", output="extio3", seconds=60).accepted
    result = rig.command("cancel_force_off", arguments)
    assert reason in _errors(result)[field]
    assert "extio3" in rig.system.agent.controller.snapshot().forced_off


# --- clear_fault ----------------------------------------------------------------------------


def _latching_config(spec: BoxSpec) -> AgentConfig:
    config = simulated_config(spec, state_path=Path("unused.db"))
    # A UVLO above the cells' resting voltage (about 3.29 V): the lockout trips at once, latched.
    cells = CellThresholds(uvlo=3.31, lvd=3.32, lvd_reconnect=3.33)
    control = dataclasses.replace(config.control, cells=cells, lockouts_latch=True)
    return dataclasses.replace(config, control=control)


def test_clear_fault_with_nothing_latched_is_accepted() -> None:
    assert _rig().command("clear_fault", request_id="c").accepted


def test_clear_fault_refused_while_the_condition_is_present_then_clears() -> None:
    spec = BoxSpec.for_cells(4)
    rig = _rig(_latching_config(spec), spec, run_s=5.0)
    report = rig.system.agent.last_report
    assert report is not None
    assert Fault.UNDER_VOLTAGE_LOCKOUT in report.faults
    result = rig.command("clear_fault")
    assert "still latched" in _errors(result)["command"]
    assert "under_voltage_lockout" in _errors(result)["command"]

    # The condition goes away: lower the lockout (remotely) and clear the latch.
    relaxed = {"thresholds": {"uvlo": 2.5, "lvd": 3.0, "lvd_reconnect": 3.1}}
    request = json.dumps({"config": relaxed}).encode()
    assert rig.remote.handle_config_set(request, rig.now).accepted
    rig.system.run(2.0)
    assert rig.command("clear_fault").accepted
    report = rig.system.run(2.0)
    assert report is not None
    assert Fault.UNDER_VOLTAGE_LOCKOUT not in report.faults
    assert _errors(rig.command("clear_fault", now=1)) == {"now": "unknown key"}


# --- every command: bad payloads ------------------------------------------------------------


@pytest.mark.parametrize("name", COMMANDS)
@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [
        (b"", "payload", "invalid JSON"),
        (b"{", "payload", "invalid JSON"),
        (b"[]", "payload", "JSON object"),
        (b"\xc3", "payload", "UTF-8"),
        (b'{"a": 1, "a": 2}', "payload", "duplicate key"),
        (b'{"request_id": ""}', "request_id", "1 to 64"),
        (b'{"request_id": "x/y"}', "request_id", "1 to 64"),
        (b"{" + b" " * 16384 + b"}", "payload", "too large"),
    ],
)
def test_bad_payloads_are_rejected_for_every_command(
    name: str, payload: bytes, field: str, reason: str
) -> None:
    rig = _rig()
    before = rig.system.agent.controller.snapshot()
    result = rig.remote.handle_command(name, payload, rig.now)
    assert result.command == name
    assert result.request_id is None
    assert reason in _errors(result)[field]
    assert rig.system.agent.controller.snapshot() == before


def test_an_unknown_command_is_rejected_and_echoes_the_request_id() -> None:
    rig = _rig()
    result = rig.command("reboot", request_id="r-9")
    assert result == RemoteResult(
        "reboot",
        "r-9",
        (("command", f"unknown command 'reboot' (known: {', '.join(COMMANDS)})"),),
    )


# --- fuzzing --------------------------------------------------------------------------------

_JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats()
    | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=10), children, max_size=3)
    ),
    max_leaves=12,
)
_KEYS = st.sampled_from(["soc", "output", "seconds", "request_id", "x"])
_VALUES = (
    st.sampled_from(["extio3", "extio4", "extio5", "extio6", "nope", "r1"])
    | st.floats(min_value=-10, max_value=WEEK_S * 2)
    | st.integers(min_value=-10, max_value=WEEK_S * 2)
    | st.booleans()
    | st.none()
)
_ARGUMENTS = _JSON | st.dictionaries(_KEYS, _VALUES, max_size=3)
_NAMES = st.sampled_from(COMMANDS) | st.text(max_size=12)
_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _assert_safe(rig: Rig) -> None:
    """Whatever the commands did: the safety invariants hold on the next samples."""
    controller = rig.system.agent.controller
    for _ in range(2):
        report = rig.system.run(1.0)
        assert report is not None
        for output in controller.settings.outputs:
            if not report.outputs[output.name]:
                continue
            assert output.name not in controller.snapshot().forced_off
            if is_charge_type(output.type):
                assert report.measurement is not None
                assert report.measurement.max_cell < controller.settings.cells.hvd
            if is_load_type(output.type):
                assert report.measurement is not None
                assert report.measurement.min_cell > controller.settings.cells.lvd


@_FUZZ
@given(name=_NAMES, payload=st.binary(max_size=120))
def test_fuzz_commands_with_arbitrary_bytes(name: str, payload: bytes) -> None:
    rig = _rig(run_s=1.0)
    result = rig.remote.handle_command(name, payload, rig.now)
    assert result.command == name
    assert all("internal error" not in reason for _, reason in result.errors)


@_FUZZ
@given(steps=st.lists(st.tuples(_NAMES, _ARGUMENTS), min_size=1, max_size=4))
def test_fuzz_commands_with_json(steps: list[tuple[str, Any]]) -> None:
    rig = _rig(run_s=1.0)
    for name, arguments in steps:
        before = rig.system.agent.controller.snapshot()
        payload = json.dumps(arguments).encode()
        result = rig.remote.handle_command(name, payload, rig.now)
        assert all("internal error" not in reason for _, reason in result.errors), result
        if not result.accepted:
            assert rig.system.agent.controller.snapshot() == before
        elif name == "set_soc":
            soc = rig.system.agent.controller.snapshot().soc
            assert math.isclose(soc.charge_ah / soc.capacity_ah * 100.0, arguments["soc"])
    _assert_safe(rig)
