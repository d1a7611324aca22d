"""`sbms-agent probe` against a simulated box served on a socket, as the real command runs it:
a healthy box, and each bring-up fault named in the output with its own exit code.

The box's faults are wired in the simulator (`BoxSpec.faults`, other addresses, another cell
count); the configuration is the one a correct box would have, as a person would write it.
"""

from __future__ import annotations

import dataclasses
import io
import json
import re
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent import cli
from edge_agent.config import config_to_dict
from edge_agent.diy import probe
from edge_agent.diy.host_check import HostPaths, Status, check_gpio, check_i2c
from edge_agent.simulator.box import BoxFaults, BoxSpec, HeartbeatGateSpec, SimulatedBox
from edge_agent.simulator.bus_server import BusServer
from edge_agent.simulator.harness import simulated_config

ISL, BATTERY, PV, MCP = 0x28, 0x40, 0x41, 0x20


@pytest.fixture
def socket_dir() -> Iterator[Path]:
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sbms-probe-") as directory:
        yield Path(directory)


def _healthy(cells: int = 8) -> BoxSpec:
    return BoxSpec.for_cells(cells, start=time.time(), heartbeat_gate=HeartbeatGateSpec())


def _probe(
    socket_dir: Path,
    capsys: pytest.CaptureFixture[str],
    box: BoxSpec,
    configured: BoxSpec | None = None,
    *extra: str,
) -> tuple[int, str]:
    """Serve `box`, probe it with the configuration of `configured` (default: the box)."""
    config = simulated_config(configured or box, state_path=socket_dir / "state.db")
    config_file = socket_dir / "config.yaml"
    config_file.write_text(json.dumps(config_to_dict(config)), encoding="utf-8")
    socket_path = socket_dir / "bus.sock"
    with BusServer(SimulatedBox(box), socket_path):
        code = cli.main(
            ["probe", "--config", str(config_file), "--simulated-bus", str(socket_path), *extra]
        )
    return code, capsys.readouterr().out


def _problems(output: str) -> list[str]:
    """The names of the problems the output reports ("FAIL  <name>: ...")."""
    return [
        line.split()[1].rstrip(":") for line in output.splitlines() if line.startswith("  FAIL")
    ]


def test_a_healthy_box_passes_and_shows_what_it_read(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    code, output = _probe(socket_dir, capsys, _healthy())
    assert code == probe.EXIT_OK, output
    assert _problems(output) == []
    assert "answering addresses: 0x20 0x28 0x40 0x41" in output
    assert "0x28 cell_monitor: ISL94203 (cell configuration 0x49 = 0xFF (8 cells))" in output
    assert "0x40 battery_shunt: INA228 (manufacturer 0x5449" in output
    assert "0x20 outputs: MCP23008" in output
    assert "cells: 1:3." in output
    assert "battery_shunt (INA228 0x40, 250 A / 75 mV):" in output
    assert "xT1 (battery)" in output
    # The thresholds the agent writes against the chip's power-on values.
    assert "0x00 OV (the agent's ovlo)" in output
    assert "3.750 V" in output  # the configured ovlo the agent would write
    assert "4.250 V" in output  # what the fresh chip holds
    assert "Result: OK" in output


def test_a_missing_chip_is_named(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    box = dataclasses.replace(_healthy(), faults=BoxFaults(missing_chips=(PV,)))
    code, output = _probe(socket_dir, capsys, box)
    assert code == probe.EXIT_CHIPS, output
    assert _problems(output) == ["missing-chip"]
    assert "0x41 pv_shunt: no INA228 answers at 0x41" in output
    assert "Readings skipped" in output


def test_a_chip_at_another_address_is_found_and_named(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    configured = _healthy()
    box = dataclasses.replace(configured, battery_shunt_address=0x44)
    code, output = _probe(socket_dir, capsys, box, configured)
    assert code == probe.EXIT_CHIPS, output
    assert _problems(output) == ["wrong-address"]
    assert "nothing answers at 0x40, but a INA228 answers at 0x44" in output
    assert "set battery_shunt.address to 0x44" in output


def test_another_chip_than_configured_is_named(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    configured = _healthy()
    box = dataclasses.replace(configured, battery_shunt_chip="ina226")
    code, output = _probe(socket_dir, capsys, box, configured)
    assert code == probe.EXIT_CHIPS, output
    assert _problems(output) == ["wrong-chip"]
    assert "set battery_shunt.chip: ina226" in output


def test_a_wrong_cell_count_is_named(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    code, output = _probe(socket_dir, capsys, _healthy(cells=4), configured=_healthy(cells=8))
    assert code == probe.EXIT_READINGS, output
    assert _problems(output) == ["wrong-cell-count"]
    assert "the inputs carry 4 cells (VC1,2,7,8), the configuration says battery.cells: 8" in (
        output
    )
    assert "set battery.cells: 4" in output


@pytest.mark.parametrize("cell", [3, 5, 8])
def test_a_disconnected_sense_wire_is_named(
    cell: int,
    socket_dir: Path,
    capsys: pytest.CaptureFixture[str],
    allow_unix_sockets: None,
) -> None:
    """Cell 5 is the case where the live inputs look like a 7-cell pack: the doubled reading
    above the open wire still tells it apart from a wrong cell count."""
    box = dataclasses.replace(_healthy(), faults=BoxFaults(open_sense_wires=(cell,)))
    code, output = _probe(socket_dir, capsys, box)
    assert code == probe.EXIT_READINGS, output
    assert set(_problems(output)) == {"sense-wire"}
    assert f"cell {cell} (input VC{cell}) reads 0.000 V: a disconnected sense wire" in output
    if cell < 8:
        assert f"cell {cell + 1} reads 4.800 V" in output  # two cells: the ADC clips


def test_a_saturated_shunt_is_named(
    socket_dir: Path, capsys: pytest.CaptureFixture[str], allow_unix_sockets: None
) -> None:
    box = dataclasses.replace(_healthy(), faults=BoxFaults(saturated_shunts=("battery",)))
    code, output = _probe(socket_dir, capsys, box)
    assert code == probe.EXIT_READINGS, output
    assert _problems(output) == ["saturated-shunt"]
    # 75 mV at 250 A: +-163.84 mV full scale is +-546 A, in the direction of the current.
    assert re.search(r"battery_shunt reads [+-]546\.1 A, the ADC's full scale", output)
    assert "set battery_shunt.rated_current_a" in output


def test_pulsing_outputs_needs_a_terminal(
    socket_dir: Path,
    capsys: pytest.CaptureFixture[str],
    allow_unix_sockets: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("yes\n"))  # piped: not a terminal
    code, output = _probe(socket_dir, capsys, _healthy(), None, "--pulse-outputs")
    assert code == probe.EXIT_OUTPUTS, output
    assert _problems(output) == ["pulse-refused"]
    assert "standard input is not a terminal" in output


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize(("answer", "pulsed"), [("yes\n", True), ("no\n", False)])
def test_outputs_pulse_only_after_yes_on_a_terminal(
    answer: str, pulsed: bool, allow_unix_sockets: None
) -> None:
    spec = _healthy()
    box = SimulatedBox(spec)
    config = simulated_config(spec)
    out = io.StringIO()
    printer = probe.Printer(out)
    code = probe.run_probe(
        config,
        box.bus,
        box.bus.name,
        printer,
        options=probe.ProbeOptions(pulse_outputs=True, pulse_s=0.1, shunt_settle_s=0.0),
        stdin=_Terminal(answer),
        sleep=lambda _seconds: None,
    )
    edges = [box.mcp.rising_edges(pin) for pin in range(4)]
    if pulsed:
        assert code == probe.EXIT_OK, out.getvalue()
        assert edges == [1, 1, 1, 1]  # each output on once
        assert box.mcp.rising_edges(spec.heartbeat_gate.pin if spec.heartbeat_gate else 7) >= 4
        assert not any(box.mcp.output_levels()[:4])  # and off again
        assert "pulsed extio3, extio4, extio5, extio6" in out.getvalue()
    else:
        assert code == probe.EXIT_OUTPUTS
        assert edges == [0, 0, 0, 0]
        assert "output pulse not confirmed" in out.getvalue()


def test_the_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        cli.main(["probe", "--help"])
    text = capsys.readouterr().out
    for code in ("0  everything", "2  invalid", "3  I2C or GPIO", "4  a configured chip"):
        assert code in text
    assert "5  the chips answer" in text
    assert "6  --pulse-outputs refused" in text


# -- the host ---------------------------------------------------------------------------------


def _host(tmp_path: Path, *, pi: bool = True) -> HostPaths:
    dev = tmp_path / "dev"
    dev.mkdir()
    (tmp_path / "module").mkdir()
    model = tmp_path / "model"
    model.write_text("Raspberry Pi 4 Model B Rev 1.4\0" if pi else "Some board\0")
    return HostPaths(
        dev=dev, sys_module=tmp_path / "module", model=model, boot_configs=(tmp_path / "c.txt",)
    )


def test_i2c_not_enabled_on_a_pi_says_how_to_enable_it(tmp_path: Path) -> None:
    [finding] = check_i2c(1, _host(tmp_path))
    assert finding.status is Status.FAIL
    assert finding.code == "no-i2c"
    assert "I2C is not enabled" in finding.text
    assert "sudo raspi-config nonint do_i2c 0   (then reboot)" in finding.fix
    assert any("dtparam=i2c_arm=on" in fix for fix in finding.fix)
    assert any("modprobe i2c-dev" in fix for fix in finding.fix)


def test_another_i2c_bus_than_configured_is_named(tmp_path: Path) -> None:
    paths = _host(tmp_path)
    (paths.dev / "i2c-20").write_bytes(b"")
    [finding] = check_i2c(1, paths)
    assert finding.code == "no-i2c"
    assert "this machine has" in finding.text
    assert "i2c-20" in finding.text


def test_an_i2c_device_this_user_may_not_open_names_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _host(tmp_path)
    (paths.dev / "i2c-1").write_bytes(b"")

    def denied(*_args: object) -> int:
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("edge_agent.diy.host_check.os.open", denied)
    [finding] = check_i2c(1, paths)
    assert finding.code == "i2c-permission"
    assert any("usermod -aG" in fix for fix in finding.fix)


def test_an_openable_i2c_device_passes(tmp_path: Path) -> None:
    paths = _host(tmp_path)
    (paths.dev / "i2c-1").write_bytes(b"")
    [finding] = check_i2c(1, paths)
    assert finding.status is Status.OK


def test_gpio_outputs_without_a_gpio_chip_fail(tmp_path: Path) -> None:
    paths = _host(tmp_path)
    assert [f.code for f in check_gpio(["pinctrl-bcm2835"], paths)] == ["no-gpio"]
    [finding] = check_gpio([], paths)
    assert finding.status is Status.INFO


def test_a_gpio_chip_this_user_may_not_open_names_the_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    paths = _host(tmp_path)
    (paths.dev / "gpiochip0").write_bytes(b"")
    monkeypatch.setattr("edge_agent.diy.host_check.os.access", lambda *_args: False)
    codes = [f.code for f in check_gpio(["pinctrl-bcm2835"], paths)]
    assert "gpio-permission" in codes
