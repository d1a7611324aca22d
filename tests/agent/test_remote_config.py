"""Remote configuration (MQTT config/set without MQTT): all or nothing, persisted, fuzzed."""

from __future__ import annotations

import asyncio
import dataclasses
import json
import logging
import threading
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.config import AgentConfig
from edge_agent.control.extio import is_charge_type, is_load_type
from edge_agent.control.model import ControlReport
from edge_agent.control.settings import OutputType
from edge_agent.mqtt.handlers import RemoteResult
from edge_agent.mqtt.requests import MAX_PAYLOAD_BYTES
from edge_agent.runtime.loop import run_agent
from edge_agent.runtime.remote import RemoteControl, load_effective_config
from edge_agent.runtime.remote_merge import merge_remote_config
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import PvArraySpec
from edge_agent.storage.config_overlay import ConfigOverlay, ConfigOverlayError, overlay_path_for


@dataclasses.dataclass
class Rig:
    system: SimulatedSystem
    config: AgentConfig
    overlay: ConfigOverlay
    remote: RemoteControl

    @property
    def now(self) -> float:
        return self.system.box.now

    def config_set(self, changes: Any, request_id: str | None = None) -> Any:
        request: dict[str, Any] = {"config": changes}
        if request_id is not None:
            request["request_id"] = request_id
        return self.remote.handle_config_set(json.dumps(request).encode(), self.now)


def _rig(
    tmp_path: Path,
    cells: int = 4,
    config: AgentConfig | None = None,
    spec: BoxSpec | None = None,
) -> Rig:
    # A second array behind extio5, so its type (6, dual PV) may change among the charge types.
    spec = spec or BoxSpec.for_cells(cells, pv_secondary=PvArraySpec(panels_in_parallel=1))
    file_config = simulated_config(spec, state_path=tmp_path / "state.db")
    overlay = ConfigOverlay(overlay_path_for(file_config.storage.state_path))
    effective, _ = load_effective_config(config or file_config, overlay)
    system = SimulatedSystem(spec, effective)
    system.run(3.0)
    return Rig(system, effective, overlay, RemoteControl(system.agent, effective, overlay, 0.0))


def _overlay_bytes(rig: Rig) -> bytes | None:
    path = rig.overlay.path
    return path.read_bytes() if path.exists() else None


# --- accepted -------------------------------------------------------------------------------


def test_an_accepted_change_applies_persists_and_bumps_the_revision(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    result = rig.config_set(
        {
            "thresholds": {"hvd": 3.55},
            "outputs": {"extio5": {"type": 3}},
            "battery": {"capacity_ah": 100.0},
            "lockouts_latch": True,
        },
        request_id="req-1",
    )

    assert result.accepted, result.errors
    assert (result.command, result.request_id, result.config_revision) == ("config/set", "req-1", 1)
    assert rig.remote.revision == 1
    control = rig.remote.config.control
    assert control.cells.hvd == 3.55
    assert control.lockouts_latch is True
    assert {o.name: o.type for o in control.outputs}["extio5"] is OutputType.HIGH_SOC
    assert rig.system.agent.controller.settings == control
    assert rig.system.agent.config.control == control
    saved = json.loads(rig.overlay.path.read_text())
    assert saved["revision"] == 1
    assert saved["changes"]["thresholds"] == {"hvd": 3.55}
    assert saved["changes"]["outputs"] == {"extio5": {"type": 3}}
    # The agent keeps running with the new settings: extio5 (high SoC) is on at 50 %.
    report = rig.system.run(2.0)
    assert report is not None
    assert report.outputs["extio5"] is True


def test_a_change_keeps_soc_counters_and_holds(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    controller = rig.system.agent.controller
    controller.set_soc(42.0, rig.now)
    controller.force_off("extio3", rig.now + 600, rig.now)
    counters = controller.snapshot().counters

    assert rig.config_set({"soc_alarms": {"low": 10.0, "low_release": 15.0}}).accepted

    snapshot = rig.system.agent.controller.snapshot()
    assert snapshot.counters == counters
    assert snapshot.forced_off == {"extio3": rig.now + 600}
    report = rig.system.run(1.0)
    assert report is not None
    assert report.soc == pytest.approx(42.0, abs=0.1)
    assert report.outputs["extio3"] is False


def test_a_new_capacity_keeps_the_soc_in_percent(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    before = rig.system.run(1.0)
    assert before is not None

    assert rig.config_set({"battery": {"capacity_ah": 200.0}}).accepted

    after = rig.system.run(1.0)
    assert after is not None
    assert after.capacity_ah == 200.0
    assert after.soc == pytest.approx(before.soc, abs=0.1)


def test_no_output_becomes_a_fault_output_remotely_and_its_hold_stays(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    rig.system.agent.controller.force_off("extio3", rig.now + 600, rig.now)

    result = rig.config_set({"outputs": {"extio3": {"type": 5}}})

    assert dict(result.errors) == {
        "config.outputs.extio3.type": "an output wired to load may be type 0, 2 or 4 (got 5)"
    }
    assert rig.system.agent.controller.snapshot().forced_off == {"extio3": rig.now + 600}


def test_changed_thresholds_are_written_to_the_cell_monitor_and_enforced(tmp_path: Path) -> None:
    """A nearly empty pack at night (weakest cell about 3.07 V under load): LVD raised to
    3.15 V remotely trips after its delay; the chip's own last line follows a new OVLO."""
    rig = _rig(tmp_path, spec=dataclasses.replace(BoxSpec.for_cells(4), initial_soc=0.05))
    before = rig.system.run(1.0)
    assert before is not None
    assert before.measurement is not None
    assert before.measurement.min_cell < 3.12
    assert before.outputs["extio3"] is True  # LVD output: loads allowed
    thresholds = {"lvd": 3.15, "lvd_reconnect": 3.30, "ovlo": 3.70}
    assert rig.config_set({"thresholds": thresholds}).accepted

    report = rig.system.run(3.0)
    assert report is not None
    assert report.outputs["extio3"] is True  # the LVD delay (5 s) has not run yet
    report = rig.system.run(4.0)

    assert report is not None
    assert report.outputs["extio3"] is False
    assert "lvd" in {interlock.value for interlock in report.interlocks}
    # The chip's over-voltage threshold (the agent's OVLO) is rewritten.
    mv_per_code = 1.8 * 8 / (4095 * 3) * 1000
    ov_register = rig.system.box.bus.read_word_data(0x28, 0x00) & 0x0FFF
    assert ov_register == round(3700 / mv_per_code)


def test_an_empty_change_is_accepted_without_a_new_revision(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    result = rig.config_set({})
    assert result.accepted
    assert result.config_revision == 0
    assert result.changed is False
    assert not rig.overlay.path.exists()


@pytest.mark.parametrize(
    "changes",
    [
        {"soc": {}},
        {"thresholds": {}, "temperature": {}},
        {"thresholds": {"hvd": "in force"}},  # replaced below by the value in force
        {"outputs": {}},
    ],
    ids=["empty section", "empty sections", "value in force", "empty outputs"],
)
def test_a_change_that_changes_nothing_is_answered_so_without_a_write(
    tmp_path: Path, changes: dict[str, Any]
) -> None:
    """A flood of these drove the revision to 30,000 and fsynced the overlay each time."""
    rig = _rig(tmp_path)
    assert rig.config_set({"thresholds": {"hvd": 3.58}}).config_revision == 1
    written = _overlay_bytes(rig)
    modified = rig.overlay.path.stat().st_mtime_ns
    controller = rig.system.agent.controller
    if changes.get("thresholds", {}).get("hvd") == "in force":
        changes = {"thresholds": {"hvd": rig.remote.config.control.cells.hvd}}
    for _ in range(3):
        result = rig.config_set(changes, request_id="same")
        assert result.accepted, result.errors
        assert (result.config_revision, result.changed) == (1, False)
    assert rig.remote.revision == 1
    assert _overlay_bytes(rig) == written
    assert rig.overlay.path.stat().st_mtime_ns == modified
    assert rig.system.agent.controller is controller  # not rebuilt


def test_a_float_that_is_an_integer_is_an_output_type(tmp_path: Path) -> None:
    """JSON has one number type: 1.0 is the integer 1 (JSON Schema agrees); true is not."""
    rig = _rig(tmp_path)
    name = next(o.name for o in rig.remote.config.control.outputs if o.type is OutputType.LVD)
    refused = rig.config_set({"outputs": {name: {"type": 1.0}}})  # read as 1: wiring says no
    assert refused.errors
    assert all("must be an output type" not in reason for _, reason in refused.errors)
    accepted = rig.config_set({"outputs": {name: {"type": float(OutputType.LOW_SOC)}}})
    assert accepted.accepted, accepted.errors
    output = next(o for o in rig.remote.config.control.outputs if o.name == name)
    assert output.type is OutputType.LOW_SOC
    assert rig.config_set({"outputs": {name: {"type": True}}}).errors


def test_the_dead_time_and_the_site_move_remotely(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    result = rig.config_set({"diversion": {"dead_time_s": 5, "latitude_deg": -33.9}})
    assert result.accepted, result.errors
    diversion = rig.system.agent.controller.settings.diversion
    assert (diversion.dead_time_s, diversion.latitude_deg) == (5.0, -33.9)
    assert diversion.heater_warms_battery  # the file's, untouched


# --- rejected -------------------------------------------------------------------------------

_GOOD = {"thresholds": {"hvd": 3.58}}


def _request(changes: Any) -> bytes:
    return json.dumps({"request_id": "r1", "config": changes}).encode()


_REJECTED: list[tuple[str, bytes, str, str]] = [
    ("malformed JSON", b'{"config": {', "payload", "invalid JSON"),
    ("not UTF-8", b'{"config": "\xff"}', "payload", "UTF-8"),
    ("an array", b"[1, 2]", "payload", "JSON object"),
    ("a string", b'"config"', "payload", "JSON object"),
    ("null", b"null", "payload", "JSON object"),
    ("empty", b"", "payload", "invalid JSON"),
    ("duplicate keys", b'{"config": {}, "config": {}}', "payload", "duplicate key"),
    ("nested too deeply", b'{"config": ' + b"[" * 5000 + b"]" * 5000 + b"}", "payload", "nested"),
    (
        "nested too deeply inside",
        b'{"config": {"thresholds": {"hvd": ' + b"[" * 5000 + b"]" * 5000 + b"}}}",
        "payload",
        "nested",
    ),
    ("nested 17 deep", b'{"config": ' + b"[" * 16 + b"]" * 16 + b"}", "payload", "nested"),
    (
        "oversized",
        _request({"thresholds": {"hvd": 3.5}}) + b" " * MAX_PAYLOAD_BYTES,
        "payload",
        "too large",
    ),
    ("no config", b'{"request_id": "r1"}', "config", "required"),
    ("unknown top key", b'{"config": {}, "confg": 1}', "confg", "unknown key"),
    (
        "key with a colon",
        _request({"thresholds": {"hvd: 3.5": 1}}),
        "payload",
        "key 'hvd: 3.5' is not a key of this protocol",
    ),
    ("dotted key", _request({"thresholds.hvd": 3.5}), "payload", "not a key of this protocol"),
    ("config not an object", _request([1]), "config", "must be an object"),
    ("bad request id", b'{"request_id": "a b", "config": {}}', "request_id", "1 to 64"),
    ("long request id", b'{"request_id": "' + b"a" * 65 + b'", "config": {}}', "request_id", ""),
    ("request id number", b'{"request_id": 7, "config": {}}', "request_id", ""),
    ("wrong type", _request({"thresholds": {"hvd": "high"}}), "config.thresholds.hvd", "number"),
    ("boolean number", _request({"thresholds": {"hvd": True}}), "config.thresholds.hvd", "number"),
    ("NaN", b'{"config": {"thresholds": {"hvd": NaN}}}', "config.thresholds.hvd", "finite"),
    ("overflow", b'{"config": {"thresholds": {"hvd": 1e400}}}', "config.thresholds.hvd", "finite"),
    (
        "huge integer",
        b'{"config": {"thresholds": {"hvd": ' + b"9" * 400 + b"}}}",
        "config.thresholds.hvd",
        "finite",
    ),
    (
        "unknown key",
        _request({"thresholds": {"hvdd": 3.5}}),
        "config.thresholds.hvdd",
        "unknown key (did you mean 'hvd'?)",
    ),
    ("unknown section", _request({"thresholdz": {}}), "config.thresholdz", "unknown key"),
    ("section not a mapping", _request({"thresholds": 3}), "config.thresholds", "mapping"),
    ("out of range", _request({"thresholds": {"ovlo": 5.0}}), "config.thresholds.ovlo", "between"),
    (
        "out of order",
        _request({"thresholds": {"lvd": 3.2}}),
        "config.thresholds.lvd",
        "must be at least 0.1 V below thresholds.lvd_reconnect",
    ),
    (
        "alarms out of order",
        _request({"soc_alarms": {"low": 50.0}}),
        "config.soc_alarms.low",
        "below",
    ),
    ("capacity under soc", _request({"soc": {"capacity_ah": 50}}), "config.soc.capacity_ah", ""),
    ("read-only i2c_bus", _request({"i2c_bus": 2}), "config.i2c_bus", "read-only over MQTT"),
    ("read-only agent_id", _request({"agent_id": "x"}), "config.agent_id", "read-only"),
    (
        "read-only ocv curve",
        _request({"battery": {"ocv_curve": [[0, 2.0], [30, 3.0], [60, 3.5], [100, 3.6]]}}),
        "config.battery.ocv_curve",
        "read-only over MQTT",
    ),
    ("read-only shunt", _request({"battery_shunt": {}}), "config.battery_shunt", "read-only"),
    ("read-only pv shunt", _request({"pv_shunt": None}), "config.pv_shunt", "read-only"),
    ("read-only monitor", _request({"cell_monitor": {}}), "config.cell_monitor", "read-only"),
    ("read-only storage", _request({"storage": {}}), "config.storage", "read-only"),
    ("read-only timing", _request({"timing": {}}), "config.timing", "read-only"),
    ("read-only mqtt", _request({"mqtt": {}}), "config.mqtt", "read-only"),
    ("read-only cells", _request({"battery": {"cells": 8}}), "config.battery.cells", "read-only"),
    ("battery unknown", _request({"battery": {"x": 1}}), "config.battery.x", "unknown key"),
    (
        "read-only pin",
        _request({"outputs": {"extio3": {"pin": 5}}}),
        "config.outputs.extio3.pin",
        "read-only",
    ),
    (
        "unknown output",
        _request({"outputs": {"extio9": {"type": 1}}}),
        "config.outputs.extio9",
        "unknown output",
    ),
    ("outputs as a list", _request({"outputs": [{"type": 1}]}), "config.outputs", "mapping"),
    (
        "output type out of range",
        _request({"outputs": {"extio5": {"type": 8}}}),
        "config.outputs.extio5.type",
        "0 to 7",
    ),
    (
        "diversion type on a charge wire",
        _request({"outputs": {"extio5": {"type": 7}}}),
        "config.outputs.extio5.type",
        "an output wired to charge may be type 0, 1, 3 or 6 (got 7)",
    ),
    (
        "read-only diverts",
        _request({"outputs": {"extio3": {"diverts": "extio4"}}}),
        "config.outputs.extio3.diverts",
        "read-only over MQTT",
    ),
    (
        "read-only heater_warms_battery",
        _request({"diversion": {"heater_warms_battery": False}}),
        "config.diversion.heater_warms_battery",
        "read-only over MQTT",
    ),
    (
        "read-only arrays",
        _request({"diversion": {"arrays": [{"output": "extio4", "rated_current_a": 99}]}}),
        "config.diversion.arrays",
        "read-only over MQTT",
    ),
    (
        # With a change that alone is accepted: the whole request is refused (all or nothing).
        "read-only tank_temperature",
        _request({"diversion": {"dead_time_s": 5, "tank_temperature": "external2"}}),
        "config.diversion.tank_temperature",
        "read-only over MQTT",
    ),
    ("read-only heat shunt", _request({"heat_shunt": None}), "config.heat_shunt", "read-only"),
    (
        "dead time below its window",
        _request({"diversion": {"dead_time_s": 0.5}}),
        "config.diversion.dead_time_s",
        "a remote change must stay within 1 to 10 s",
    ),
    (
        "diversion unknown key",
        _request({"diversion": {"dead_time": 3}}),
        "config.diversion.dead_time",
        "unknown key (did you mean 'dead_time_s'?)",
    ),
    (
        "site out of range",
        _request({"diversion": {"latitude_deg": 95}}),
        "config.diversion.latitude_deg",
        "between -90 and 90",
    ),
    (
        "dual PV without HVD",
        _request({"outputs": {"extio4": {"type": 0}, "extio5": {"type": 6}}}),
        "config.outputs.extio5.type",
        "needs at least one type 1",
    ),
    (
        "duplicate output setting",
        _request({"outputs": {"extio5": {"type": 3, "colour": "red"}}}),
        "config.outputs.extio5.colour",
        "unknown key",
    ),
]


@pytest.mark.parametrize(
    ("payload", "field", "reason"),
    [pytest.param(p, f, r, id=name) for name, p, f, r in _REJECTED],
)
def test_bad_requests_are_rejected_naming_the_problem_and_change_nothing(
    tmp_path: Path, payload: bytes, field: str, reason: str
) -> None:
    rig = _rig(tmp_path)
    assert rig.config_set(_GOOD).accepted  # an overlay file exists and must stay as it is
    config, overlay_before = rig.remote.config, _overlay_bytes(rig)
    controller = rig.system.agent.controller

    result = rig.remote.handle_config_set(payload, rig.now)

    assert not result.accepted
    assert result.command == "config/set"
    assert result.config_revision is None
    assert any(f == field and reason in r for f, r in result.errors), result.errors
    assert all("internal error" not in r for _, r in result.errors)
    assert rig.remote.config is config
    assert rig.remote.revision == 1
    assert rig.system.agent.controller is controller
    assert _overlay_bytes(rig) == overlay_before
    assert rig.system.run(2.0) is not None  # the agent keeps running


def test_the_request_id_is_echoed_on_rejection(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    result = rig.config_set({"i2c_bus": 3}, request_id="abc:1.2_x-y")
    assert result.request_id == "abc:1.2_x-y"
    assert result.errors == (("config.i2c_bus", "read-only over MQTT"),)


def test_every_problem_is_listed_at_once(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    result = rig.config_set({"i2c_bus": 3, "outputs": {"nope": {}}, "thresholds": {"hvd": "x"}})
    fields = {field for field, _ in result.errors}
    assert fields == {"config.i2c_bus", "config.outputs.nope", "config.thresholds.hvd"}


def test_a_failed_save_rejects_the_change_and_keeps_the_old_settings(tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    rig = _rig(tmp_path)
    rig.remote = RemoteControl(
        rig.system.agent, rig.config, ConfigOverlay(blocker / "overlay.json"), rig.now
    )
    controller = rig.system.agent.controller

    result = rig.config_set(_GOOD)

    assert not result.accepted
    assert result.errors[0][0] == "config"
    assert "could not be saved" in result.errors[0][1]
    assert rig.remote.config is rig.config
    assert rig.remote.revision == 0
    assert rig.system.agent.controller is controller


def test_a_change_the_agent_refuses_puts_the_overlay_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path)
    assert rig.config_set(_GOOD).accepted
    saved = rig.overlay.path.read_text()

    def refuse(*_: object) -> None:
        raise ValueError("no")

    monkeypatch.setattr(rig.system.agent, "apply_control_settings", refuse)
    result = rig.config_set({"thresholds": {"hvd": 3.57}})

    assert not result.accepted
    assert "could not be applied" in result.errors[0][1]
    assert json.loads(rig.overlay.path.read_text()) == json.loads(saved)
    assert rig.remote.revision == 1
    assert rig.remote.config.control.cells.hvd == 3.58


def test_without_an_overlay_changes_apply_but_are_not_persisted(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    remote = RemoteControl(rig.system.agent, rig.config, None, rig.now)
    result = remote.handle_config_set(_request(_GOOD), rig.now)
    assert result.accepted
    assert remote.config.control.cells.hvd == 3.58
    assert remote.revision == 1


# --- restart --------------------------------------------------------------------------------


def test_a_restart_comes_back_with_the_accepted_changes_and_revision(tmp_path: Path) -> None:
    rig = _rig(tmp_path)
    assert rig.config_set({"thresholds": {"hvd": 3.55}}).accepted
    assert rig.config_set({"outputs": {"extio5": {"type": 3}}, "thresholds": {"eoc": 3.5}}).accepted
    assert not rig.config_set({"thresholds": {"hvd": 9}}).accepted

    restarted = _rig(tmp_path)

    assert restarted.remote.revision == 2
    assert restarted.remote.config == rig.remote.config
    assert restarted.system.agent.controller.settings == rig.remote.config.control
    result = restarted.config_set({"thresholds": {"hvd": 3.56}})
    assert result.config_revision == 3
    saved = json.loads(restarted.overlay.path.read_text())
    assert saved["changes"] == {
        "thresholds": {"hvd": 3.56, "eoc": 3.5},
        "outputs": {"extio5": {"type": 3}},
    }


def test_an_overlay_that_no_longer_fits_the_file_is_set_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    spec = BoxSpec.for_cells(4)
    file_config = simulated_config(spec, state_path=tmp_path / "state.db")
    overlay = ConfigOverlay(overlay_path_for(file_config.storage.state_path))
    overlay.save({"outputs": {"extio9": {"type": 1}}}, 7)

    with caplog.at_level(logging.ERROR):
        config, revision = load_effective_config(file_config, overlay)

    assert config == file_config
    assert revision == 7  # revisions never go backwards
    assert not overlay.path.exists()
    assert overlay.set_aside_to is not None
    assert overlay.set_aside_to.exists()
    assert "no longer fits" in caplog.text
    assert "outputs.extio9" in caplog.text
    system = SimulatedSystem(spec, config)
    remote = RemoteControl(system.agent, config, overlay, 0.0)
    assert remote.revision == 7
    result = remote.handle_config_set(_request(_GOOD), 0.0)
    assert result.config_revision == 8


@pytest.mark.parametrize(
    "content",
    [
        b"{not json",
        b"\xff\xfe",
        b"[]",
        b'{"format": 2, "revision": 1, "changes": {}}',
        b'{"format": 1, "revision": -1, "changes": {}}',
        b'{"format": 1, "revision": 1, "changes": []}',
        b'{"format": 1, "revision": 1, "changes": {}, "extra": 1}',
    ],
)
def test_a_corrupt_overlay_is_reported_by_name_and_kept_aside(
    tmp_path: Path, content: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.config-overlay.json"
    path.write_bytes(content)

    with pytest.raises(ConfigOverlayError, match="moved aside") as error:
        ConfigOverlay(path).load()
    assert str(path) in str(error.value)
    assert not path.exists()
    (aside,) = tmp_path.glob("state.config-overlay.json.rejected-*")
    assert aside.read_bytes() == content

    path.write_bytes(content)
    file_config = simulated_config(BoxSpec.for_cells(4), state_path=tmp_path / "state.db")
    with caplog.at_level(logging.ERROR):
        assert load_effective_config(file_config, ConfigOverlay(path)) == (file_config, 0)
    assert str(path) in caplog.text


def test_the_overlay_is_written_atomically_next_to_the_state(tmp_path: Path) -> None:
    path = overlay_path_for(tmp_path / "sub" / "state.db")
    assert path == tmp_path / "sub" / "state.config-overlay.json"
    overlay = ConfigOverlay(path)
    assert overlay.load() is None
    overlay.save({"thresholds": {"hvd": 3.5}}, 1)
    overlay.save({"thresholds": {"hvd": 3.4}}, 2)
    assert ConfigOverlay(path).load() == ({"thresholds": {"hvd": 3.4}}, 2)
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary file left


def test_merge_remote_config_addresses_outputs_by_name(tmp_path: Path) -> None:
    config = simulated_config(BoxSpec.for_cells(4), state_path=tmp_path / "state.db")
    merged = merge_remote_config(config, {"outputs": {"extio3": {"type": 4}}})
    assert [o.type for o in merged.control.outputs] == [4, 1, 0, 5]
    assert merged.hardware == config.hardware
    assert merge_remote_config(config, {}) == config


# --- fuzzing --------------------------------------------------------------------------------

_JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
)
_JSON = st.recursive(
    _JSON_SCALARS,
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4)
    ),
    max_leaves=20,
)
_SECTION_NAMES = st.sampled_from(
    ["thresholds", "balancing", "soc", "soc_alarms", "temperature", "dual_pv", "max_soc",
     "battery", "outputs", "lockouts_latch", "i2c_bus", "timing", "publish"]
)  # fmt: skip
_FIELD_NAMES = st.sampled_from(
    ["uvlo", "lvd", "lvd_reconnect", "hvd_reconnect", "eoc", "hvd", "ovlo", "capacity_ah",
     "low", "low_release", "high", "high_release", "max_soc", "enabled", "imax", "type",
     "charge_max", "min_cell", "extio3", "extio4", "extio5", "extio6"]
)  # fmt: skip
_VALUES = (
    st.floats(min_value=-5, max_value=200)
    | st.integers(min_value=-1, max_value=8)
    | st.booleans()
    | st.none()
    | st.fixed_dictionaries({"type": st.integers(min_value=-1, max_value=7)})
)
_NEAR_VALID = st.dictionaries(
    _SECTION_NAMES, st.dictionaries(_FIELD_NAMES, _VALUES, max_size=4) | _VALUES, max_size=3
)


@st.composite
def _threshold_sets(draw: st.DrawFn) -> dict[str, float]:
    """Ordered thresholds around the simulated cells' voltage (about 3.3 V): often valid."""
    values = sorted(
        draw(
            st.lists(
                st.floats(min_value=2.4, max_value=3.8).map(lambda v: round(v, 3)),
                min_size=7,
                max_size=7,
                unique=True,
            )
        )
    )
    names = ("uvlo", "lvd", "lvd_reconnect", "hvd_reconnect", "eoc", "hvd", "ovlo")
    return dict(zip(names, values, strict=True))


_CHANGES = (
    _JSON
    | _NEAR_VALID
    | st.fixed_dictionaries(
        {"thresholds": _threshold_sets()},
        optional={"outputs": st.fixed_dictionaries({"extio5": st.just({"type": 3})})},
    )
)


def _check_invariants(rig: Rig) -> None:
    settings_in_force = rig.system.agent.controller.settings
    for _ in range(3):
        report = rig.system.run(1.0)
        assert report is not None
        measurement = report.measurement
        for output in settings_in_force.outputs:
            if not report.outputs[output.name]:
                continue
            if is_charge_type(output.type):
                assert report.charge_allowed
                assert measurement is not None
                assert measurement.max_cell < settings_in_force.cells.hvd
            if is_load_type(output.type):
                assert report.load_allowed
                assert measurement is not None
                assert measurement.min_cell > settings_in_force.cells.lvd


_FUZZ = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)


@_FUZZ
@given(payload=st.binary(max_size=200))
def test_fuzz_arbitrary_bytes_never_raise(tmp_path: Path, payload: bytes) -> None:
    rig = _rig(tmp_path)
    config = rig.remote.config
    result = rig.remote.handle_config_set(payload, rig.now)
    assert result.command == "config/set"
    if not result.accepted:
        assert rig.remote.config is config
    assert all("internal error" not in reason for _, reason in result.errors)


@_FUZZ
@given(document=_JSON, changes=_CHANGES, wrap=st.booleans())
def test_fuzz_json_requests(tmp_path: Path, document: Any, changes: Any, wrap: bool) -> None:
    for path in tmp_path.iterdir():  # hypothesis reuses tmp_path across examples
        path.unlink()
    rig = _rig(tmp_path)
    config, overlay_before = rig.remote.config, _overlay_bytes(rig)
    payload = json.dumps({"config": changes} if wrap else document).encode()

    result = rig.remote.handle_config_set(payload, rig.now)

    assert all("internal error" not in reason for _, reason in result.errors), result.errors
    if result.accepted:
        assert rig.system.agent.controller.settings == rig.remote.config.control
        _check_invariants(rig)
    else:
        assert rig.remote.config is config
        assert rig.remote.revision == 0
        assert _overlay_bytes(rig) == overlay_before
        assert all(isinstance(f, str) and isinstance(r, str) for f, r in result.errors)


# --- the save off the event loop -------------------------------------------------------------

# Only a bound for a broken test, never a timing margin: every wait below ends on an event.
EVENT_TIMEOUT_S = 60.0


class BlockingOverlay(ConfigOverlay):
    """A real overlay whose save (its fsync) waits for the test's `release`."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.release = threading.Event()
        self.timed_out = False
        self.saves = 0

    def save(self, changes: Any, revision: int) -> None:
        self.entered.set()
        if not self.release.wait(EVENT_TIMEOUT_S):
            self.timed_out = True
        super().save(changes, revision)
        self.saves += 1


async def test_a_blocked_config_save_does_not_delay_samples(tmp_path: Path) -> None:
    """The real loop runs beside a config/set whose save hangs; the save is released only by
    the third report taken while it hangs, so the loop can only get there if the save is off
    the loop. Meanwhile the change is neither applied nor answered."""
    spec = BoxSpec.for_cells(4)
    config = simulated_config(spec, state_path=tmp_path / "state.db", sample_interval_s=1.0)
    overlay = BlockingOverlay(overlay_path_for(config.storage.state_path))
    system = SimulatedSystem(spec, config)
    remote = RemoteControl(system.agent, config, overlay, system.box.now)
    clock = SimulatedClock(system.box, speed=1e9)
    stop = asyncio.Event()
    hvd_before = config.control.cells.hvd
    during: list[tuple[bool, float, bool]] = []  # (in the save, hvd in force, answered)
    request: asyncio.Task[RemoteResult] | None = None

    def listen(report: ControlReport) -> None:
        if request is None or not overlay.entered.is_set() or overlay.release.is_set():
            return
        hvd = system.agent.controller.settings.cells.hvd
        during.append((not overlay.release.is_set(), hvd, request.done()))
        if len(during) == 3:
            overlay.release.set()

    async def configure() -> RemoteResult:
        result = await remote.handle_config_set_async(_request(_GOOD), clock.now)
        stop.set()
        return result

    request = asyncio.create_task(configure())
    taken = await asyncio.wait_for(
        run_agent(system.agent, clock, 1.0, stop, on_report=listen), EVENT_TIMEOUT_S
    )
    result = await request

    assert not overlay.timed_out
    assert taken >= 3
    assert during == [(True, hvd_before, False)] * 3
    assert result.accepted, result.errors
    assert result.config_revision == 1
    assert remote.config.control.cells.hvd == 3.58
    assert system.agent.controller.settings.cells.hvd == 3.58
    assert overlay.saves == 1
    assert overlay.load() == ({"thresholds": {"hvd": 3.58}}, 1)


async def test_the_async_path_is_all_or_nothing_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rig = _rig(tmp_path)
    result = await rig.remote.handle_config_set_async(_request(_GOOD), lambda: rig.now)
    assert result.accepted
    assert result.request_id == "r1"
    saved = rig.overlay.path.read_text()
    # Nothing changed: no revision, no write.
    same = await rig.remote.handle_config_set_async(_request(_GOOD), lambda: rig.now)
    assert (same.accepted, same.changed, same.config_revision) == (True, False, 1)

    def refuse(*_: object) -> None:
        raise ValueError("no")

    monkeypatch.setattr(rig.system.agent, "apply_control_settings", refuse)
    refused = await rig.remote.handle_config_set_async(
        _request({"thresholds": {"hvd": 3.57}}), lambda: rig.now
    )
    assert not refused.accepted
    assert "could not be applied" in refused.errors[0][1]
    assert json.loads(rig.overlay.path.read_text()) == json.loads(saved)
    assert rig.remote.revision == 1

    bad = await rig.remote.handle_config_set_async(b"{", lambda: rig.now)
    assert bad.errors[0][0] == "payload"

    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    remote = RemoteControl(
        rig.system.agent, rig.config, ConfigOverlay(blocker / "overlay.json"), rig.now
    )
    unsaved = await remote.handle_config_set_async(_request(_GOOD), lambda: rig.now)
    assert not unsaved.accepted
    assert "could not be saved" in unsaved.errors[0][1]
    assert remote.revision == 0


async def test_a_request_cancelled_during_its_save_still_applies_what_it_saved(
    tmp_path: Path,
) -> None:
    """The link's session ends (cancelling the request) while the overlay is being written:
    the write completes and the change is applied, so the file and the agent agree."""
    spec = BoxSpec.for_cells(4)
    config = simulated_config(spec, state_path=tmp_path / "state.db")
    overlay = BlockingOverlay(overlay_path_for(config.storage.state_path))
    system = SimulatedSystem(spec, config)
    system.run(3.0)
    remote = RemoteControl(system.agent, config, overlay, system.box.now)

    request = asyncio.create_task(
        remote.handle_config_set_async(_request(_GOOD), lambda: system.box.now)
    )
    assert await asyncio.to_thread(overlay.entered.wait, EVENT_TIMEOUT_S)
    request.cancel()
    with pytest.raises(asyncio.CancelledError):
        await request
    assert remote.revision == 0  # still saving: nothing applied yet
    overlay.release.set()
    for task in list(remote._in_flight):  # the shielded save and apply
        await task

    assert overlay.load() == ({"thresholds": {"hvd": 3.58}}, 1)
    assert remote.revision == 1
    assert system.agent.controller.settings.cells.hvd == 3.58
