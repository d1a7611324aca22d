"""Register-level record and replay: a live simulated session recorded at the bus, replayed
through the real drivers (ISL94203, INA2xx, MCP23008) and agent, reproduces the live run's
measurements and decisions step by step; a recording the drivers do not follow is refused
naming the transaction, its line, the address and the register."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent import cli
from edge_agent.control.model import ControlReport
from edge_agent.diy.replay import replay_diy, replay_registers
from edge_agent.drivers.bus_log import RecordingBus, ReplayBus, ReplayMismatchError
from edge_agent.recording.read import RecordingError, read_recording
from edge_agent.recording.record import SessionRecorder, measurement_to_dict
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec
from tests.agent.test_record_replay import ISL, _decisions, _live_run

HEAT_SHUNT = HeatPathSpec().shunt_address


@pytest.fixture(scope="module")
def session(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[ControlReport]]:
    folder = tmp_path_factory.mktemp("session")
    path = folder / "session.jsonl"
    return path, _live_run(path, folder / "state.db")


def _lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _write(tmp_path: Path, lines: list[str]) -> Path:
    path = tmp_path / "changed.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    return path


def _measurements(reports: list[ControlReport]) -> list[dict[str, Any] | None]:
    return [None if r.measurement is None else measurement_to_dict(r.measurement) for r in reports]


def test_the_register_replay_reproduces_measurements_and_decisions_step_by_step(
    session: tuple[Path, list[ControlReport]],
) -> None:
    path, live = session
    header, entries = read_recording(path)
    assert header.bus == "start"
    assert header.bus_name == "sim-i2c-1"
    assert all(entry.bus for entry in entries)
    # The opening (identity checks, chip set-up, thresholds) comes with the first step.
    assert len(entries[0].bus or ()) > len(entries[1].bus or ())
    # The cell monitor's absence was recorded as errors, and replayed as such.
    errors = [t for e in entries for t in e.bus or () if len(t) == 5]
    assert errors
    assert all(t[0] == ISL and t[4][0] == 121 for t in errors)

    replayed = list(replay_registers(header, entries))

    assert len(replayed) == len(live)
    for step, (mine, theirs) in enumerate(zip(replayed, live, strict=True)):
        assert _measurements([mine]) == _measurements([theirs]), step
        assert _decisions([mine]) == _decisions([theirs]), step
    # The same file replays from its decoded samples too, to the same decisions.
    assert _decisions(list(replay_diy(header, entries))) == _decisions(live)


def test_the_replay_command_goes_through_the_drivers(
    session: tuple[Path, list[ControlReport]], capsys: pytest.CaptureFixture[str]
) -> None:
    path, live = session
    assert cli.main(["replay", str(path)]) == 0
    output = capsys.readouterr().out
    assert "replayed through the real drivers" in output
    assert f"{len(live)} decisions replayed" in output


def _changed_transaction(lines: list[str], line: int, index: int, data: object) -> str:
    entry = json.loads(lines[line - 1])
    entry["bus"][index][3] = data
    return json.dumps(entry, separators=(",", ":")) + "\n"


def _first(lines: list[str], line: int, op: str) -> tuple[int, list[Any]]:
    for index, transaction in enumerate(json.loads(lines[line - 1])["bus"]):
        if transaction[1] == op:
            return index, transaction
    raise AssertionError(f"no {op} on line {line}")


def test_a_write_the_drivers_do_not_make_is_named(
    session: tuple[Path, list[ControlReport]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _lines(session[0])
    # The 20th step's first write (an output bank's latch, or the heartbeat), changed.
    index, transaction = _first(lines, 21, "wb")
    address, _, register, value = transaction
    lines[20] = _changed_transaction(lines, 21, index, value ^ 0x01)
    changed = _write(tmp_path, lines)
    before = sum(len(json.loads(line)["bus"]) for line in lines[1:20])
    header, entries = read_recording(changed)

    with pytest.raises(RecordingError) as caught:
        list(replay_registers(header, entries))

    message = str(caught.value)
    assert f"transaction {before + index} (recording line 21)" in message
    assert f"write_byte_data 0x{value:02X} to register 0x{register:02X}" in message
    assert f"address 0x{address:02X}" in message
    assert f"the recording has write_byte_data 0x{value ^ 0x01:02X}" in message
    assert cli.main(["replay", str(changed)]) == 2
    err = capsys.readouterr().err
    assert "after 19 steps" in err
    assert f"transaction {before + index} (recording line 21)" in err


def test_a_missing_transaction_is_named(
    session: tuple[Path, list[ControlReport]], tmp_path: Path
) -> None:
    lines = _lines(session[0])
    entry = json.loads(lines[9])
    dropped = entry["bus"].pop(0)
    lines[9] = json.dumps(entry) + "\n"
    header, entries = read_recording(_write(tmp_path, lines))

    with pytest.raises(RecordingError) as caught:
        list(replay_registers(header, entries))

    message = str(caught.value)
    assert "(recording line 10)" in message
    assert f"register 0x{dropped[2]:02X} at address 0x{dropped[0]:02X}" in message


def test_a_changed_reading_shows_as_another_sample(
    session: tuple[Path, list[ControlReport]], tmp_path: Path
) -> None:
    lines = _lines(session[0])
    entry = json.loads(lines[30])
    # Cell 1's voltage word (ISL94203 0x90) reads 16 codes (19 mV) higher.
    index = next(i for i, t in enumerate(entry["bus"]) if t[:3] == [ISL, "rw", 0x90])
    entry["bus"][index][3] += 16
    lines[30] = json.dumps(entry) + "\n"
    header, entries = read_recording(_write(tmp_path, lines))

    with pytest.raises(RecordingError, match=r"line 31: the drivers decoded another sample: "):
        list(replay_registers(header, entries))


@pytest.mark.parametrize(
    ("transaction", "message"),
    [
        ([0x28, "rx", 0, 1], "the op must be one of"),
        ([0x80, "rb", 0, 1], "the address must be"),
        ([0x28, "rb", 0x100, 1], "the register must be"),
        ([0x28, "rk", 0, [1, 256]], "read_i2c_block_data with invalid data"),
        ([0x28, "rb", 0, 1, [121]], "the error must be [errno, message]"),
        ([0x28, "rb", 0, 1, [121, "Remote I/O error"]], "read_byte_data with invalid data"),
        ("rb", "a transaction is"),
    ],
)
def test_a_malformed_transaction_is_refused_naming_its_line(
    session: tuple[Path, list[ControlReport]],
    tmp_path: Path,
    transaction: object,
    message: str,
) -> None:
    lines = _lines(session[0])
    entry = json.loads(lines[4])
    entry["bus"][2] = transaction
    lines[4] = json.dumps(entry) + "\n"
    path = _write(tmp_path, lines)
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert f"{path}:5: bus[2]: " in str(caught.value)
    assert message in str(caught.value)


def test_a_rotated_file_replays_from_its_samples(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    spec = BoxSpec.for_cells(8)
    recorder = SessionRecorder(path, max_bytes=16384)
    system = SimulatedSystem(spec, simulated_config(spec), recorder=recorder)
    reports: list[ControlReport] = []
    system.run(120, reports.append)
    system.agent.close(system.box.now)
    assert recorder.rotations >= 2

    header, entries = read_recording(path)
    assert header.bus == "continued"
    with pytest.raises(RecordingError, match="does not start at the drivers' opening"):
        list(replay_registers(header, entries))
    replayed = list(replay_diy(header, entries))
    assert _decisions(replayed) == _decisions(reports[-len(replayed) :])


def test_a_version_1_recording_still_replays(tmp_path: Path) -> None:
    path = tmp_path / "v1.jsonl"
    spec = BoxSpec.for_cells(4)
    recorder = SessionRecorder(path)
    system = SimulatedSystem(spec, simulated_config(spec), recorder=recorder, record_bus=False)
    reports: list[ControlReport] = []
    system.run(20, reports.append)
    system.agent.close(system.box.now)
    lines = _lines(path)
    header_data = json.loads(lines[0])
    assert header_data.pop("bus") is None
    assert header_data.pop("bus_name") is None
    header_data["version"] = 1
    lines[0] = json.dumps(header_data) + "\n"
    path.write_text("".join(lines), encoding="utf-8")

    header, entries = read_recording(path)
    assert header.bus is None
    assert _decisions(list(replay_diy(header, entries))) == _decisions(reports)


def test_the_recording_bus_passes_errors_through_and_the_replay_bus_raises_them() -> None:
    class Failing:
        def write_byte_data(self, i2c_addr: int, register: int, value: int) -> None:
            raise OSError(121, "Remote I/O error")

    recording = RecordingBus(Failing(), "test")  # type: ignore[arg-type]
    with pytest.raises(OSError, match="Remote I/O error"):
        recording.write_byte_data(0x20, 0x0A, 0x05)
    log = recording.take()
    assert log == [[0x20, "wb", 0x0A, 0x05, [121, "Remote I/O error"]]]
    assert recording.take() == []

    replay = ReplayBus(log, [2])
    with pytest.raises(OSError, match="Remote I/O error") as caught:
        replay.write_byte_data(0x20, 0x0A, 0x05)
    assert caught.value.errno == 121
    with pytest.raises(ReplayMismatchError, match=r"transaction 1 \(past the recording's end\)"):
        replay.read_byte_data(0x20, 0x09)
    assert replay.error is not None


def test_a_heat_path_shunt_is_recorded_and_replayed(tmp_path: Path) -> None:
    """Issue 19: the heat shunt's readings (and a spell of its failures, which fail no sample)
    are in the recording, and the drivers replay them to the same diversion counters."""
    spec = BoxSpec(
        start=BoxSpec().start + 11 * 3600,
        initial_soc=0.99,
        soc_spread=0.002,
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, shunt_rating=(30.0, 75.0)),
    )
    path = tmp_path / "heat.jsonl"
    system = SimulatedSystem(
        spec, simulated_config(spec, sample_interval_s=5.0), recorder=SessionRecorder(path)
    )
    live: list[ControlReport] = []
    system.run(900, live.append)
    system.box.bus.fail(HEAT_SHUNT, errno.EREMOTEIO)
    system.run(60, live.append)
    system.box.bus.heal(HEAT_SHUNT)
    system.run(900, live.append)
    system.agent.close(system.box.now)
    powers = [r.measurement.heat_power_w for r in live if r.measurement is not None]
    assert None in powers
    assert max(p or 0.0 for p in powers) > 100.0
    assert all(r.measurement is not None and r.measurement.timestamp == r.timestamp for r in live)

    header, entries = read_recording(path)
    replayed = list(replay_registers(header, entries))

    assert _measurements(replayed) == _measurements(live)
    assert _decisions(replayed) == _decisions(live)
    assert [r.diversion for r in replayed] == [r.diversion for r in live]
    assert [r.diversion for r in replay_diy(header, entries)] == [r.diversion for r in live]
