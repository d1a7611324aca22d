"""The LFP safety envelope, the remote window and the wiring, as the configuration file sees
them: no file can widen the envelope, and every problem names its key."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import (
    HEARTBEAT_LINE,
    ConfigError,
    config_to_dict,
    default_config,
    effective_remote_window,
    load_config,
    parse_config,
)
from edge_agent.control.envelope import (
    DEFAULT_REMOTE_WINDOW,
    LFP_GAPS,
    LFP_RANGES,
    default_remote_window,
    envelope_problems,
    setting_value,
)
from edge_agent.control.extio import ALLOWED_TYPES, inferred_wiring, remote_types
from edge_agent.control.settings import ControlSettings, OutputType, Wiring

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("config-*.yaml"))


def problems_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


# --- the tables themselves -------------------------------------------------------------------


def test_every_range_is_a_range_and_every_path_is_a_setting() -> None:
    settings = ControlSettings()
    for path, allowed in LFP_RANGES.items():
        assert allowed.low < allowed.high, path
        if path != "soc.empty_soc":  # None by default: the OCV of the LVD voltage
            assert isinstance(setting_value(settings, path), float), path
    for gap in LFP_GAPS:
        assert gap.lower in LFP_RANGES, gap
        assert gap.upper in LFP_RANGES, gap


def test_the_defaults_lie_inside_the_envelope() -> None:
    assert envelope_problems(ControlSettings()) == []


def test_the_default_remote_window_lies_inside_the_envelope() -> None:
    for path, window in DEFAULT_REMOTE_WINDOW.items():
        assert window.within(LFP_RANGES[path]), path
        assert window.per_capacity == LFP_RANGES[path].per_capacity, path


def test_the_envelope_holds_the_datasheet_limits() -> None:
    """Every current LFP datasheet: charge to 3.65 V at most, discharge to 2.5 V; no charging
    below 0 C nor above 55 C (the lowest datasheet maximum); discharge within -20..55 C."""
    assert LFP_RANGES["thresholds.hvd"].high == 3.65
    assert LFP_RANGES["balancing.max_cell"].high == 3.65
    assert LFP_RANGES["thresholds.ovlo"].high == 3.80
    assert LFP_RANGES["thresholds.uvlo"].low == 2.50
    assert LFP_RANGES["temperature.charge_min"].low == 0.0
    assert LFP_RANGES["temperature.charge_max"].high == 55.0
    assert LFP_RANGES["temperature.discharge_min"].low == -20.0
    assert LFP_RANGES["temperature.discharge_max"].high == 55.0
    assert LFP_RANGES["thresholds.ovlo_delay_s"].high <= 2.0  # the lockouts' delays: short
    assert LFP_RANGES["thresholds.uvlo_delay_s"].high <= 2.0


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_the_examples_lie_inside_the_envelope(path: Path) -> None:
    config = load_config(path)
    assert envelope_problems(config.control) == []


# --- what the issue found accepted: each is now refused from the file, naming the key --------

# The values an attacker got accepted (issue 13), as file settings.
WIDENING: list[tuple[str, str, float, str]] = [
    ("thresholds", "hvd", 3.70, "thresholds.hvd: must be between 3.4 and 3.65 V"),
    ("thresholds", "hvd", 4.29, "thresholds.hvd: must be between 3.4 and 3.65 V"),
    ("thresholds", "ovlo", 4.3, "thresholds.ovlo: must be between 3.6 and 3.8 V"),
    ("thresholds", "uvlo", 2.0, "thresholds.uvlo: must be between 2.5 and 3 V"),
    ("thresholds", "lvd", 2.05, "thresholds.lvd: must be between 2.6 and 3.25 V"),
    ("thresholds", "ovlo", 3.6000001, "thresholds.hvd: must be at least 0.05 V below"),
    ("thresholds", "hvd_reconnect", 3.6 - 1e-9, "thresholds.hvd_reconnect: must be at least"),
    (
        "thresholds",
        "lockout_release_margin",
        0.0,
        "thresholds.lockout_release_margin: must be between 0.02 and 0.5 V",
    ),
    ("temperature", "charge_min", -40.0, "temperature.charge_min: must be between 0 and 20 C"),
    ("temperature", "charge_max", 124.0, "temperature.charge_max: must be between 20 and 55 C"),
    (
        "temperature",
        "internal_cutoff",
        125.0,
        "temperature.internal_cutoff: must be between 40 and 80 C",
    ),
    (
        "temperature",
        "charge_hysteresis",
        1e6,
        "temperature.charge_hysteresis: must be between 1 and 10 C",
    ),
    ("balancing", "max_cell", 4.3, "balancing.max_cell: must be between 3.3 and 3.65 V"),
    ("battery", "capacity_ah", 1e308, "battery.capacity_ah: must be between 1 and 10000 Ah"),
    ("battery", "capacity_ah", 5e-324, "battery.capacity_ah: must be between 1 and 10000 Ah"),
    ("soc", "rest_current", 1e10, "soc.rest_current: must be between 0 and 5 A"),
    ("thresholds", "lvd_delay_s", 31.0, "thresholds.lvd_delay_s: must be between 0 and 30 s"),
    ("thresholds", "ovlo_delay_s", 2.5, "thresholds.ovlo_delay_s: must be between 0 and 2 s"),
    ("thresholds", "hvd_delay_s", -1.0, "thresholds.hvd_delay_s: must be between 0 and 10 s"),
    ("dual_pv", "imax", 150.0, "dual_pv.imax: must be between 1 and 100 A"),  # > 1C
    (
        "temperature",
        "discharge_min",
        -30.0,
        "temperature.discharge_min: must be between -20 and 10 C",
    ),
]


@pytest.mark.parametrize(
    ("section", "key", "value", "expected"), WIDENING, ids=lambda v: str(v)[:30]
)
def test_a_file_cannot_widen_the_envelope(
    section: str, key: str, value: float, expected: str
) -> None:
    data: dict[str, Any] = {section: {key: value}}
    problems = problems_of(data)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_file_may_narrow_inside_the_envelope() -> None:
    config = parse_config(
        {
            "thresholds": {"hvd": 3.50, "hvd_reconnect": 3.35, "eoc": 3.48, "ovlo": 3.60},
            "temperature": {"charge_min": 5.0, "charge_max": 40.0, "discharge_max": 45.0},
            "dual_pv": {"imax": 30.0},
        }
    )
    assert config.control.cells.ovlo == 3.60
    assert config.control.temperature.charge_min == 5.0


def test_c_rate_limits_scale_with_the_capacity() -> None:
    """dual_pv.imax is at most 1C: 280 A for a 280 Ah pack, 100 A for a 100 Ah one."""
    assert parse_config({"battery": {"capacity_ah": 280}, "dual_pv": {"imax": 250}})
    problems = problems_of({"battery": {"capacity_ah": 100}, "dual_pv": {"imax": 250}})
    assert problems == (
        "dual_pv.imax: must be between 1 and 100 A, the LFP safety envelope (got 250)",
    )


# --- the remote window in the file ------------------------------------------------------------


def test_the_default_window_and_the_files_own() -> None:
    config = parse_config(
        {"battery": {"capacity_ah": 280}, "remote_window": {"thresholds": {"hvd": [3.5, 3.58]}}}
    )
    window = effective_remote_window(config)
    assert (window["thresholds.hvd"].low, window["thresholds.hvd"].high) == (3.5, 3.58)
    assert window["thresholds.lvd"] == DEFAULT_REMOTE_WINDOW["thresholds.lvd"]
    assert (window["battery.capacity_ah"].low, window["battery.capacity_ah"].high) == (140, 560)
    imax = window["dual_pv.imax"]
    assert (imax.low, imax.high) == pytest.approx((2.8, 140.0))  # 0.01C .. 0.5C of 280 Ah
    assert "timing.stale_after_s" not in window  # not a remote setting at all


def test_a_built_config_has_the_default_window_for_its_settings() -> None:
    assert effective_remote_window(default_config()) == default_remote_window(ControlSettings())


@pytest.mark.parametrize(
    ("window", "expected"),
    [
        (
            {"thresholds": {"hvd": [3.5, 3.7]}},
            "remote_window.thresholds.hvd: must lie within 3.4 to 3.65 V, the LFP safety "
            "envelope (got [3.5, 3.7])",
        ),
        (
            {"thresholds": {"hvd": [3.6, 3.5]}},
            "remote_window.thresholds.hvd: lowest must not exceed highest (got [3.6, 3.5])",
        ),
        ({"thresholds": {"hvd": 3.5}}, "remote_window.thresholds.hvd: must be a list"),
        ({"thresholds": {"hvd": [3.5, "x"]}}, "remote_window.thresholds.hvd: must be a number"),
        (
            {"timing": {"stale_after_s": [1, 2]}},
            "remote_window.timing.stale_after_s: not a setting a remote client can change",
        ),
        (
            {"thresholds": {"hvdd": [1, 2]}},
            "remote_window.thresholds.hvdd: not a setting a remote client can change",
        ),
        ({"thresholds": [1, 2]}, "remote_window.thresholds: must be a mapping of settings"),
        ([1], "remote_window: must be a mapping of sections"),
    ],
)
def test_a_window_in_the_file_is_checked(window: Any, expected: str) -> None:
    problems = problems_of({"remote_window": window})
    assert any(problem.startswith(expected) for problem in problems), problems


def test_the_window_round_trips_through_config_to_dict() -> None:
    config = parse_config({"remote_window": {"temperature": {"charge_max": [30, 40]}}})
    data = config_to_dict(config)
    assert data["remote_window"]["temperature"]["charge_max"] == [30.0, 40.0]
    assert data["remote_window"]["thresholds"]["hvd"] == [3.45, 3.6]
    assert parse_config(data) == config


# --- wiring -----------------------------------------------------------------------------------


def _outputs(*items: dict[str, Any]) -> dict[str, Any]:
    return {
        "outputs": [
            {"driver": "mcp23008", "address": 0x20, "pin": index, **item}
            for index, item in enumerate(items)
        ]
    }


def test_wiring_is_read_and_limits_the_types() -> None:
    config = parse_config(
        _outputs(
            {"name": "pv", "type": 1, "wiring": "charge"},
            {"name": "loads", "type": 2, "wiring": "load"},
            {"name": "lamp", "type": 4, "wiring": "signal"},
            {"name": "breaker", "type": 5, "wiring": "fault"},
            {"name": "spare", "type": 0, "wiring": "none"},
            {"name": "element", "type": 0, "wiring": "heater"},
        )
    )
    assert [o.wiring for o in config.control.outputs] == list(Wiring)
    assert config.notes == ()


@pytest.mark.parametrize(
    ("wiring", "output_type", "expected"),
    [
        (
            "charge",
            2,
            "outputs[0].type: an output wired to charge may be type 0, 1, 3 or 6 (got 2)",
        ),
        ("load", 1, "outputs[0].type: an output wired to load may be type 0, 2 or 4 (got 1)"),
        ("fault", 0, "outputs[0].type: an output wired to fault may be type 5 (got 0)"),
        ("none", 2, "outputs[0].type: an output wired to none may be type 0 (got 2)"),
        ("signal", 6, "outputs[0].type: an output wired to signal may be type 0, 1, 2, 3, 4 or"),
    ],
)
def test_a_type_its_wiring_forbids_is_refused(wiring: str, output_type: int, expected: str) -> None:
    problems = problems_of(_outputs({"name": "x", "type": output_type, "wiring": wiring}))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_an_unknown_wiring_is_refused() -> None:
    assert problems_of(_outputs({"name": "x", "type": 1, "wiring": "pv"})) == (
        "outputs[0].wiring: must be one of charge, load, signal, fault, none, heater (got 'pv')",
    )


def test_a_file_without_wiring_keeps_working_with_a_note_per_output() -> None:
    config = parse_config(
        _outputs(
            {"name": "extio3", "type": 2},
            {"name": "extio4", "type": 1},
            {"name": "extio5", "type": 0},
            {"name": "extio6", "type": 5},
        )
    )
    assert [o.wiring for o in config.control.outputs] == [
        Wiring.LOAD,
        Wiring.CHARGE,
        Wiring.NONE,
        Wiring.FAULT,
    ]
    assert len(config.notes) == 4
    assert config.notes[1].startswith(
        "outputs[1] (extio4): no wiring given, taken as 'charge' from its type 1"
    )
    assert "`wiring: none`" in config.notes[2]


def test_check_config_prints_the_notes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import main

    path = tmp_path / "box.yaml"
    path.write_text(
        "outputs:\n  - {name: extio4, type: 1, driver: mcp23008, address: 0x20, pin: 1}\n"
    )
    assert main(["check-config", str(path)]) == 0
    out = capsys.readouterr().out
    assert "note: outputs[0] (extio4): no wiring given, taken as 'charge'" in out


@pytest.mark.parametrize("output_type", list(OutputType))
def test_inferred_wiring_always_allows_the_type(output_type: OutputType) -> None:
    assert output_type in ALLOWED_TYPES[inferred_wiring(output_type)]


def test_remote_types_never_enter_or_leave_the_fault_type() -> None:
    for wiring in Wiring:
        settable = remote_types(wiring)
        assert settable <= ALLOWED_TYPES[wiring]
        assert (OutputType.FAULT in settable) == (wiring is Wiring.FAULT)
    assert remote_types(Wiring.CHARGE) == {0, 1, 3, 6}
    assert remote_types(Wiring.LOAD) == {0, 2, 4}
    assert remote_types(Wiring.NONE) == {0}


# --- the heartbeat line -----------------------------------------------------------------------


def test_the_heartbeat_line_is_read_and_shares_no_pin() -> None:
    config = parse_config(
        {"heartbeat": {"driver": "mcp23008", "address": 0x20, "pin": 7, "hold_s": 1.5}}
    )
    heartbeat = config.hardware.heartbeat
    assert heartbeat is not None
    assert (heartbeat.line.name, heartbeat.line.pin, heartbeat.hold_s) == (HEARTBEAT_LINE, 7, 1.5)
    assert config_to_dict(config)["heartbeat"] == {
        "driver": "mcp23008",
        "address": 0x20,
        "pin": 7,
        "active_low": False,
        "hold_s": 1.5,
    }
    assert parse_config(config_to_dict(config)) == config
    clash = {"heartbeat": {"driver": "mcp23008", "address": 0x20, "pin": 1, "hold_s": 1.5}}
    assert problems_of(clash) == ("heartbeat: mcp23008 0x20 pin 1 is already used by outputs[1]",)


@pytest.mark.parametrize(
    ("heartbeat", "timing", "expected"),
    [
        (
            {"hold_s": 1.2},
            {},
            "heartbeat.hold_s: must be at least 1.3 x timing.sample_interval_s, or the outputs "
            "drop between two samples (got 1.2 < 1.3)",
        ),
        ({"hold_s": 12.0}, {}, "heartbeat.hold_s: at most 10 s"),
        ({"hold_s": 3.0}, {"sample_interval_s": 2.5, "stale_after_s": 5}, "heartbeat.hold_s"),
        ({}, {}, "heartbeat.hold_s: required key is missing"),
        ({"hold_s": 1.5, "type": 1}, {}, "heartbeat.type: unknown key"),
    ],
)
def test_the_heartbeat_must_outpace_its_one_shot(
    heartbeat: dict[str, Any], timing: dict[str, Any], expected: str
) -> None:
    line = {"driver": "gpiod", "chip": "pinctrl-rp1", "line": "GPIO24", **heartbeat}
    problems = problems_of({"heartbeat": line, "timing": timing})
    assert any(problem.startswith(expected) for problem in problems), problems


def test_sampling_stays_fast_enough_to_protect() -> None:
    problems = problems_of({"timing": {"sample_interval_s": 30.0, "stale_after_s": 60.0}})
    assert problems[0].startswith("timing.sample_interval_s: must be between 0.05 and 10 s")


def test_no_finite_value_escapes_the_range_checks() -> None:
    """NaN and infinities never reach the envelope: the shape check refuses them by name."""
    for bad in (math.nan, math.inf, -math.inf):
        problems = problems_of({"thresholds": {"hvd": bad}})
        assert problems[0].startswith("thresholds.hvd: must be a finite number"), problems


def test_envelope_problems_name_every_offender_at_once() -> None:
    cells = dataclasses.replace(ControlSettings().cells, hvd=3.9, uvlo=2.0)
    problems = envelope_problems(ControlSettings(cells=cells))
    assert {problem.split(":")[0] for problem in problems} >= {
        "thresholds.hvd",
        "thresholds.uvlo",
    }
