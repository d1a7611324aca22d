"""`sbms-agent` as a user runs it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from edge_agent.cli import (
    EXIT_CONFIG,
    EXIT_HARDWARE,
    EXIT_OK,
    _run_parser,
    _sbms0_config,
    _simulated_setup,
    main,
)

EXAMPLES = Path(__file__).parents[2] / "examples"


@pytest.mark.parametrize("example", sorted(EXAMPLES.glob("*.yaml")), ids=lambda p: p.name)
def test_check_config_accepts_the_shipped_examples(
    example: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["check-config", str(example)]) == EXIT_OK
    assert "OK" in capsys.readouterr().out


def test_the_shipped_examples_leave_no_default_standing_in(
    capsys: pytest.CaptureFixture[str],
) -> None:
    for example in sorted(EXAMPLES.glob("*.yaml")):
        assert main(["check-config", str(example)]) == EXIT_OK
    assert "warning" not in capsys.readouterr().out


def test_check_config_warns_where_a_default_stands_in_for_wiring_or_security(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Valid, so OK, but each key a default filled in for the box's wiring, its shunt's rating
    or the link's security is named (issue 20)."""
    path = tmp_path / "box.yaml"
    path.write_text(
        "battery_shunt: {rated_current_a: 200}\n"
        "pv_shunt: {address: 0x41}\n"
        "mqtt: {host: broker.lan, tls: true, tls_insecure: true}\n"
    )

    assert main(["check-config", str(path)]) == EXIT_OK

    lines = [line for line in capsys.readouterr().out.splitlines() if "warning:" in line]
    keys = [line.split("warning: ", 1)[1].split(":", 1)[0] for line in lines]
    assert keys == [
        "outputs",
        "battery_shunt.rated_millivolts",
        "pv_shunt.rated_current_a",
        "mqtt.ca_file",
        "mqtt.tls_insecure",
    ]
    assert "rated_millivolts: 75" in lines[1]
    assert "extio3 load" in lines[0]


def test_a_partial_file_names_each_default_it_leans_on(tmp_path: Path) -> None:
    from edge_agent.config import load_config

    path = tmp_path / "box.yaml"
    path.write_text("battery: {cells: 4}\n")
    assert [w.split(":")[0] for w in load_config(path).warnings] == [
        "outputs",
        "battery_shunt.rated_current_a",
    ]


CURVE_NOTE = "SoC near empty is read on the built-in LiFePO4 curve"
DATASHEET_CURVE = "[[0, 2.80], [10, 3.184], [25, 3.235], [40, 3.271], [65, 3.294], [100, 3.40]]"


def test_the_agent_says_once_at_start_that_soc_near_empty_reads_the_built_in_curve(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Issue 16: without the cells' curve the band is honest but wide near empty; the log says
    so once, and how to give the curve."""
    caplog.set_level(logging.INFO, logger="edge_agent")
    args = ["--simulate", "--cells", "4", "--speed", "1e9", "--duration", "0.01", "--quiet"]
    assert main(args) == EXIT_OK
    lines = [r for r in caplog.records if CURVE_NOTE in r.getMessage()]
    assert [r.levelno for r in lines] == [logging.INFO]
    assert "battery.ocv_curve" in lines[0].getMessage()
    assert "docs/soc.md" in lines[0].getMessage()


@pytest.mark.parametrize(
    ("battery", "soc", "noted"),
    [
        ("{cells: 8}", "{}", True),
        (f"{{cells: 8, ocv_curve: {DATASHEET_CURVE}}}", "{}", False),
        ("{cells: 8}", "{empty_soc: 5}", False),
    ],
    ids=["built-in", "ocv_curve", "empty_soc"],
)
def test_check_config_notes_the_built_in_curve_unless_the_cells_are_described(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], battery: str, soc: str, noted: bool
) -> None:
    from edge_agent.config import built_in_curve_note, load_config

    path = tmp_path / "box.yaml"
    path.write_text(f"battery: {battery}\nsoc: {soc}\n")
    assert main(["check-config", str(path)]) == EXIT_OK
    assert (CURVE_NOTE in capsys.readouterr().out) is noted
    assert (built_in_curve_note(load_config(path)) is not None) is noted


def test_no_curve_note_for_a_stock_sbms() -> None:
    """A stock SBMS0 publishes its own SoC: the agent estimates none, so nothing to say."""
    from edge_agent.config import built_in_curve_note, load_config

    assert built_in_curve_note(load_config(EXAMPLES / "config-sbms0.yaml")) is None


def test_help_describes_every_option_and_lists_the_subcommands(
    capsys: pytest.CaptureFixture[str],
) -> None:
    parser = _run_parser()
    undescribed = [
        action.option_strings
        for action in parser._actions  # argparse has no public list of them
        if not action.help
    ]
    assert undescribed == []
    with pytest.raises(SystemExit):
        main(["--help"])
    out = capsys.readouterr().out
    for subcommand in ("check-config", "probe", "replay", "export", "log-info"):
        assert f"\n  {subcommand} " in out, subcommand


def test_check_config_names_the_key_and_the_rule(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("battery: {cells: 9}\nthresholds: {lvd: 3.5, lvd_reconnect: 3.2}\n")

    assert main(["check-config", str(bad)]) == EXIT_CONFIG

    err = capsys.readouterr().err
    assert str(bad) in err
    assert "battery.cells" in err


def test_check_config_reports_a_missing_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "nope.yaml"
    assert main(["check-config", str(missing)]) == EXIT_CONFIG
    assert "nope.yaml" in capsys.readouterr().err


def test_simulate_runs_and_prints_a_status_line_per_simulated_minute(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "--simulate",
            "--cells",
            "4",
            "--speed",
            "1e9",
            "--duration",
            "0.05",
            "--log-level",
            "WARNING",
        ]
    )
    assert code == EXIT_OK
    lines = [line for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert len(lines) == 3  # 180 simulated seconds, one line a minute when not on a terminal
    assert "SoC" in lines[0]
    assert "extio3=ON" in lines[0]
    assert "cells 3." in lines[0]


def test_simulate_keeps_its_state_between_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    state = tmp_path / "sim.db"
    args = ["--simulate", "--speed", "1e9", "--duration", "0.02", "--quiet", "--state", str(state)]
    assert main(args) == EXIT_OK
    assert state.exists()
    assert main(args) == EXIT_OK


def test_running_on_hardware_without_i2c_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("i2c_bus: 97\nstorage: {state_path: " + str(tmp_path / "state.db") + "}\n")
    assert main(["--config", str(config)]) == EXIT_HARDWARE
    err = capsys.readouterr().err
    assert "cannot start" in err
    assert "i2c-97" in err


def test_a_bad_configuration_stops_the_agent_before_it_touches_hardware(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "config.yaml"
    config.write_text("thresholds: {hvd: 3.9}\n")
    assert main(["--config", str(config)]) == EXIT_CONFIG
    assert "thresholds" in capsys.readouterr().err


@pytest.mark.parametrize(("flag", "protocol"), [([], 5), (["--mqtt-protocol", "3.1.1"], 4)])
def test_mqtt_protocol_option_reaches_the_link_settings(flag: list[str], protocol: int) -> None:
    """Brokers without MQTT 5 (amqtt, old mosquitto) need 3.1.1; MQTT 5 stays the default."""
    args = _run_parser().parse_args(["--simulate", "--mqtt-host", "127.0.0.1", *flag])
    settings = _simulated_setup(args).mqtt
    assert settings is not None
    assert settings.protocol == protocol
    sbms0 = _sbms0_config(
        _run_parser().parse_args(["--sbms0-url", "http://sbms/", *flag, "--mqtt-host", "127.0.0.1"])
    )
    assert sbms0.mqtt is not None
    assert sbms0.mqtt.protocol == protocol


def test_an_unknown_mqtt_protocol_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _run_parser().parse_args(["--simulate", "--mqtt-protocol", "3"])
    assert "--mqtt-protocol" in capsys.readouterr().err


def test_simulate_heater_reads_the_tank_on_xt2() -> None:
    """Issue 19: the demo's `--simulate --heater` box has its tank's thermistor on xT2 and says
    so, so its state carries `temperatures.heater_tank` (Home Assistant's tank entity)."""
    heater = _simulated_setup(_run_parser().parse_args(["--simulate", "--heater"]))
    assert heater.remote.config.control.diversion.tank_temperature == "external2"
    plain = _simulated_setup(_run_parser().parse_args(["--simulate"]))
    assert plain.remote.config.control.diversion.tank_temperature is None
