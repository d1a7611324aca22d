"""Record what the agent read and replay it through the control core: the replay decides what
the live run decided (outputs, events, SoC, faults), also for a stock SBMS's raw lines; a bad
recording is refused naming the line and the problem."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from typing import Any

import pytest

from edge_agent import cli
from edge_agent.config import parse_config
from edge_agent.control.model import ControlReport
from edge_agent.diy.replay import replay_diy
from edge_agent.recording.read import RecordingError, read_recording
from edge_agent.recording.record import SessionRecorder, record_header
from edge_agent.sbms0.agent import Sbms0Agent
from edge_agent.sbms0.receiver import FrameReceiver
from edge_agent.sbms0.replay import replay_sbms0
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.state_store import StateStore
from tests.helpers.sbms0 import encode_frame, make_frame

ISL = 0x28


def _decisions(reports: list[ControlReport]) -> list[tuple[Any, ...]]:
    return [
        (
            r.timestamp,
            tuple(sorted(r.outputs.items())),
            tuple((e.kind, e.timestamp, tuple(sorted(e.detail.items()))) for e in r.events),
            round(r.soc, 9),
            tuple(sorted(r.faults)),
            tuple(sorted(r.interlocks)),
            r.counters,
        )
        for r in reports
    ]


def _live_run(path: Path, store_path: Path) -> list[ControlReport]:
    """A nearly full 4S box at midday with a stored state: HVD trips, the SoC syncs, and the
    cell monitor drops off the bus for a while (failures, staleness, fault output)."""
    spec = BoxSpec.for_cells(4, initial_soc=0.96, start=BoxSpec().start + 11 * 3600)
    config = simulated_config(spec, sample_interval_s=5.0)
    first = SimulatedSystem(spec, config, StateStore(store_path))
    first.run(600)  # a saved state to start the recorded run from
    first.agent.close(first.box.now)

    recorder = SessionRecorder(path)
    system = SimulatedSystem(spec, config, StateStore(store_path), recorder=recorder)
    system.box.advance(600)
    reports: list[ControlReport] = []
    system.run(1800, reports.append)
    system.box.bus.fail(ISL, errno.EREMOTEIO)
    system.run(60, reports.append)
    system.box.bus.heal(ISL)
    system.run(1800, reports.append)
    system.agent.close(system.box.now)
    return reports


def test_replay_reproduces_the_live_runs_decisions(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    live = _live_run(path, tmp_path / "state.db")
    header, entries = read_recording(path)
    replayed = list(replay_diy(header, entries))

    assert _decisions(replayed) == _decisions(live)
    # The run had something to reproduce: switching, events and failed samples.
    assert len({r.outputs["extio4"] for r in live}) == 2
    kinds = {e.kind.value for r in live for e in r.events}
    assert {"hvd_trip", "fault_raised", "fault_cleared"} <= kinds
    assert sum(entry.kind == "failure" for entry in entries) == 12
    assert header.state is not None  # the run started from the saved state, and so does replay


def test_the_recording_leaves_the_broker_password_out(tmp_path: Path) -> None:
    config = parse_config(
        {"battery": {"cells": 4}, "mqtt": {"host": "h", "username": "u", "password": "secret"}}
    )
    header = record_header("diy", config, 1.0, None)
    assert "mqtt" not in header["config"]
    assert "secret" not in json.dumps(header)


def test_the_replay_command_prints_the_decisions(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "session.jsonl"
    _live_run(path, tmp_path / "state.db")
    assert cli.main(["replay", str(path)]) == 0
    output = capsys.readouterr().out
    assert "events: hvd_trip" in output
    assert "decisions replayed" in output


def test_a_bounded_recording_rotates_and_each_file_replays(tmp_path: Path) -> None:
    path = tmp_path / "session.jsonl"
    spec = BoxSpec.for_cells(8)
    recorder = SessionRecorder(path, max_bytes=8192)
    system = SimulatedSystem(spec, simulated_config(spec), recorder=recorder)
    system.run(300)
    system.agent.close(system.box.now)
    assert recorder.rotations >= 2
    for file in (path, path.with_name(path.name + ".1")):
        assert file.stat().st_size < 8192 + 2048
        header, entries = read_recording(file)
        assert header.state is not None  # the controller's state at the rotation
        assert len(list(replay_diy(header, entries))) == len(entries) > 0


def test_a_stock_sbms_recording_replays_through_the_receiver(tmp_path: Path) -> None:
    path = tmp_path / "sbms0.jsonl"
    config = parse_config(
        {"battery": {"cells": 8}, "source": {"type": "sbms0", "serial": {"port": "/dev/x"}}}
    )
    now = [1_780_272_000.0]
    recorder = SessionRecorder(path)
    recorder.set_header(lambda at: record_header("sbms0", config, at, None))
    recorder.start(now[0])
    receiver = FrameReceiver(cell_count=8, clock=lambda: now[0])
    receiver.tap = lambda kind, text: recorder.write({"t": now[0], kind: text})
    agent = Sbms0Agent(config, receiver, now[0], recorder=recorder)
    lines = [
        encode_frame(make_frame()),
        "garbage line\r\n",
        encode_frame(make_frame(flags=(1 << 2) | (1 << 3) | (1 << 12))),  # UV, UVLK: LVD trip
        encode_frame(make_frame(flags=(1 << 0) | (1 << 12) | (1 << 13))),  # OV: HVD trip
    ]
    live: list[ControlReport] = []
    for line in lines:
        now[0] += 1.0
        receiver.offer_line(line)
        now[0] += 0.5
        live.append(agent.step(now[0]))
    now[0] += 30.0  # no frame: stale
    live.append(agent.step(now[0]))
    agent.close(now[0])

    header, entries = read_recording(path)
    replayed = list(replay_sbms0(header, entries))
    assert _decisions(replayed) == _decisions(live)
    assert {e.kind.value for r in live for e in r.events} >= {"lvd_trip", "hvd_trip"}
    assert [entry.kind for entry in entries].count("line") == 4


# -- strict reading ---------------------------------------------------------------------------


def _valid_lines(tmp_path: Path) -> list[str]:
    path = tmp_path / "ok.jsonl"
    spec = BoxSpec.for_cells(4)
    system = SimulatedSystem(spec, simulated_config(spec), recorder=SessionRecorder(path))
    system.run(3)
    system.agent.close(system.box.now)
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def _sample_line(lines: list[str], **changes: Any) -> str:
    entry = json.loads(lines[1])
    entry["sample"].update(changes)
    return json.dumps(entry) + "\n"


@pytest.mark.parametrize(
    ("line", "damage", "message"),
    [
        (2, lambda lines: "{not json\n", "not JSON"),
        (2, lambda lines: "[1, 2]\n", "a JSON object expected, not a list"),
        (3, lambda lines: lines[2].replace('"t"', '"time"'), 'a sample line has no "t"'),
        (3, lambda lines: lines[2].replace('"sample"', '"reading"'), "exactly one of"),
        (2, lambda lines: _sample_line(lines, cell_voltages=[3.3, 3.3]), "must list 4 numbers"),
        (2, lambda lines: _sample_line(lines, battery_current="12"), '"battery_current" must'),
        (2, lambda lines: _sample_line(lines, soc=50), "unknown key(s) soc"),
        (2, lambda lines: _sample_line(lines, pv_current=float("nan")), "NaN is not a number"),
        (2, lambda lines: _sample_line(lines, balancing=[1, 0, 0, 0]), "balancing must"),
        (3, lambda lines: lines[2].replace('"t":', '"t":1,"x":'), "unknown key(s) x"),
        (4, lambda lines: lines[3].rstrip("\n"), "cut off"),
        (1, lambda lines: lines[0].replace("sbms-agent-record", "other"), "not a recording"),
        (1, lambda lines: lines[0].replace('"version":2', '"version":9'), "version 9"),
    ],
)
def test_a_bad_line_is_refused_naming_its_number_and_the_problem(
    tmp_path: Path, line: int, damage: Any, message: str
) -> None:
    lines = _valid_lines(tmp_path)
    assert len(lines) == 4  # the header and three samples
    lines[line - 1] = damage(lines)
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RecordingError) as caught:
        read_recording(path)
    assert f"{path}:{line}: " in str(caught.value)
    assert message in str(caught.value)


def test_time_going_back_is_refused(tmp_path: Path) -> None:
    lines = _valid_lines(tmp_path)
    second = json.loads(lines[2])
    second["t"] = json.loads(lines[1])["t"] - 1
    lines[2] = json.dumps(second) + "\n"
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    with pytest.raises(RecordingError, match=r":3: time .* is before the previous line's"):
        read_recording(path)


def test_the_replay_command_names_the_bad_line_and_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = _valid_lines(tmp_path)
    lines[2] = "{}\n"
    path = tmp_path / "bad.jsonl"
    path.write_text("".join(lines), encoding="utf-8")
    assert cli.main(["replay", str(path)]) == 2
    assert f"{path}:3: a diy line holds" in capsys.readouterr().err


def test_a_failing_disk_stops_recording_but_not_the_agent(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "session.jsonl"
    spec = BoxSpec.for_cells(4)
    recorder = SessionRecorder(path)
    system = SimulatedSystem(spec, simulated_config(spec), recorder=recorder)
    system.run(2)
    recorder._file.close()  # type: ignore[union-attr]  # the disk goes away
    report = system.run(2)
    assert report is not None
    assert report.measurement is not None
    assert recorder.failed
    assert any("Recording to" in r.getMessage() for r in caplog.records)
    system.agent.close(system.box.now)


def test_the_run_command_records_and_the_replay_command_reads_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "sim.jsonl"
    args = ["--simulate", "--cells", "4", "--speed", "1e9", "--duration", "0.01", "--quiet"]
    assert cli.main([*args, "--record", str(path)]) == 0
    header, entries = read_recording(path)
    assert header.source == "diy"
    assert len(entries) == 36  # 0.01 h at a sample a second
    capsys.readouterr()
    assert cli.main(["replay", str(path), "--every"]) == 0
    assert "36 decisions replayed" in capsys.readouterr().out
