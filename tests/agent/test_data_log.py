"""The data log: aggregation math, the store, its configuration, the CLI and the running agent."""

from __future__ import annotations

import asyncio
import csv
import dataclasses
import io
import json
import logging
import sqlite3
from pathlib import Path

import pytest

from edge_agent.cli import main
from edge_agent.config import (
    ConfigError,
    DataLogSettings,
    config_to_dict,
    load_config,
    parse_config,
)
from edge_agent.control.model import (
    ControlReport,
    DiversionCounters,
    DiversionReport,
    EnergyCounters,
    Fault,
    Interlock,
    Measurement,
)
from edge_agent.datalog.aggregator import DataAggregator
from edge_agent.datalog.export import _with_progress, write_csv
from edge_agent.datalog.recorder import DataRecorder, open_recorder
from edge_agent.runtime.loop import run_agent
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem
from edge_agent.storage.data_log import (
    DATABASE_VERSION,
    DataLogError,
    DataLogStore,
    Record,
    Stat,
)

T0 = 1_780_000_080  # a multiple of 120 s
DAY = 86400


def _measurement(
    t: float,
    cells: tuple[float, ...] = (3.3, 3.3),
    *,
    current: float = 0.0,
    pv: float | None = None,
    temperature: float | None = 25.0,
    flags: frozenset[str] = frozenset(),
) -> Measurement:
    return Measurement(
        timestamp=t,
        cell_voltages=cells,
        battery_current=current,
        pv_current=pv,
        internal_temperature=temperature,
        external_temperatures=(temperature, None),
        monitor_flags=flags,
    )


def _report(
    t: float,
    measurement: Measurement | None,
    *,
    soc: float = 50.0,
    outputs: dict[str, bool] | None = None,
    faults: frozenset[Fault] = frozenset(),
    interlocks: frozenset[Interlock] = frozenset(),
    counters: EnergyCounters | None = None,
) -> ControlReport:
    return ControlReport(
        timestamp=t,
        outputs=outputs if outputs is not None else {"a": False, "b": False},
        soc=soc,
        remaining_ah=soc,
        capacity_ah=100.0,
        time_to_full_s=None,
        time_to_empty_s=None,
        charge_allowed=True,
        load_allowed=True,
        faults=faults,
        interlocks=interlocks,
        dual_pv_level=None,
        counters=counters if counters is not None else EnergyCounters(),
        events=(),
        measurement=measurement,
    )


def _triple(stat: Stat | None) -> tuple[float, float, float]:
    assert stat is not None
    return (stat.mean, stat.minimum, stat.maximum)


def _feed(aggregator: DataAggregator, reports: list[ControlReport]) -> list[Record]:
    return [record for report in reports if (record := aggregator.add(report)) is not None]


# -- aggregator ------------------------------------------------------------------------------


def test_aggregator_means_and_extremes_match_hand_computed_values() -> None:
    aggregator = DataAggregator(120)
    samples = [
        # t, cells, battery current, pv current
        (T0 + 0, (3.30, 3.20), 2.0, 5.0),
        (T0 + 40, (3.40, 3.30), -4.0, 1.0),
        (T0 + 80, (3.35, 3.35), 5.0, 6.0),
    ]
    reports = [
        _report(t, _measurement(t, cells, current=i, pv=pv), soc=40.0 + k)
        for k, (t, cells, i, pv) in enumerate(samples)
    ]
    assert _feed(aggregator, reports) == []
    record = aggregator.flush()
    assert record is not None

    assert (record.start, record.end, record.samples, record.missing) == (T0, T0 + 120, 3, 0)
    assert record.soc == Stat(41.0, 40.0, 42.0)
    # pack voltage = sum of the cells: 6.5, 6.7, 6.7
    assert _triple(record.pack_voltage) == pytest.approx((19.9 / 3, 6.5, 6.7))
    assert _triple(record.battery_current) == pytest.approx((1.0, -4.0, 5.0))
    # battery power: 2*6.5=13, -4*6.7=-26.8, 5*6.7=33.5
    assert _triple(record.battery_power) == pytest.approx(((13 - 26.8 + 33.5) / 3, -26.8, 33.5))
    # load = pv - battery, never negative: 3, 5, 1
    assert _triple(record.load_current) == pytest.approx((3.0, 1.0, 5.0))
    assert _triple(record.load_power) == pytest.approx(((19.5 + 33.5 + 6.7) / 3, 6.7, 33.5))
    assert _triple(record.pv_power) == pytest.approx(((32.5 + 6.7 + 40.2) / 3, 6.7, 40.2))
    assert record.cell_min == pytest.approx(3.20)
    assert record.cell_max == pytest.approx(3.40)
    assert record.cell_delta == pytest.approx(0.10)  # the largest spread of one sample
    assert record.cells == pytest.approx((10.05 / 3, 9.85 / 3))
    assert record.internal_temperature == pytest.approx(25.0)
    assert record.external_temperatures[1] is None
    assert record.external_temperatures[0] == pytest.approx(25.0)


def test_samples_without_a_measurement_count_as_missing_not_zero() -> None:
    aggregator = DataAggregator(120)
    good = _measurement(T0, current=6.0)
    reports = [
        _report(T0, good),
        # a failed sample: the report still carries the last good measurement (older stamp)
        _report(T0 + 1, good),
        _report(T0 + 2, None),
        _report(T0 + 3, _measurement(T0 + 3, current=2.0)),
    ]
    _feed(aggregator, reports)
    record = aggregator.flush()
    assert record is not None
    assert (record.samples, record.missing) == (2, 2)
    assert record.battery_current == Stat(4.0, 2.0, 6.0)
    assert record.soc is not None  # the estimator's value is in every report


def test_an_interval_of_failures_has_no_measured_values() -> None:
    aggregator = DataAggregator(120)
    _feed(aggregator, [_report(T0 + k, None) for k in range(5)])
    record = aggregator.flush()
    assert record is not None
    assert (record.samples, record.missing) == (0, 5)
    assert record.pack_voltage is None
    assert record.cells == ()
    assert record.cell_min is None


def test_intervals_align_to_wall_clock_multiples() -> None:
    aggregator = DataAggregator(120)
    start = T0 + 95  # mid-interval
    reports = [_report(start + k * 10, _measurement(start + k * 10)) for k in range(40)]
    records = _feed(aggregator, reports)
    assert [r.start for r in records] == [T0, T0 + 120, T0 + 240, T0 + 360]
    assert all(r.start % 120 == 0 and r.end - r.start == 120 for r in records)
    assert [r.samples for r in records] == [3, 12, 12, 12]  # 95..115, 125..235, ...
    still_open = aggregator.flush()
    assert still_open is not None
    assert (still_open.start, still_open.samples) == (T0 + 480, 1)


def test_a_gap_or_a_clock_step_back_closes_the_interval() -> None:
    aggregator = DataAggregator(120)
    records = _feed(
        aggregator,
        [
            _report(T0, _measurement(T0)),
            _report(T0 + 3600, _measurement(T0 + 3600)),  # an hour down: no empty records
            _report(T0 + 5, _measurement(T0 + 5)),  # NTP stepped back
        ],
    )
    assert [r.start for r in records] == [T0, T0 + 3600]


def test_outputs_last_state_and_on_at_any_time_flags_union_and_counters_at_end() -> None:
    aggregator = DataAggregator(120)
    reports = [
        _report(
            T0,
            _measurement(T0, flags=frozenset({"CELLF"})),
            outputs={"a": False, "b": True},
            faults=frozenset({Fault.OVER_TEMPERATURE}),
            counters=EnergyCounters(pv_wh=1.0),
        ),
        _report(
            T0 + 1,
            _measurement(T0 + 1),
            outputs={"a": True, "b": False},
            interlocks=frozenset({Interlock.LVD}),
            counters=EnergyCounters(pv_wh=2.0),
        ),
        _report(T0 + 2, _measurement(T0 + 2), outputs={"a": False, "b": False}),
    ]
    _feed(aggregator, reports)
    record = aggregator.flush()
    assert record is not None
    assert record.outputs == {"a": False, "b": False}
    assert record.outputs_on == {"a", "b"}
    assert record.faults == {"over_temperature"}
    assert record.interlocks == {"lvd"}
    assert record.monitor_flags == {"CELLF"}
    assert record.counters["pv_wh"] == 0.0  # the last report's (defaults), not the max


# -- store -----------------------------------------------------------------------------------


def _record(start: int, **changes: object) -> Record:
    base = Record(
        start=start,
        end=start + 120,
        samples=120,
        missing=0,
        soc=Stat(55.55, 55.0, 56.0),
        pack_voltage=Stat(26.404, 26.3, 26.5),
        battery_current=Stat(-12.34, -20.0, 3.5),
        battery_power=Stat(-325.0, -530.0, 92.0),
        pv_current=Stat(1.5, 0.0, 3.0),
        pv_power=Stat(39.0, 0.0, 79.0),
        load_current=Stat(13.84, 10.0, 20.0),
        load_power=Stat(365.0, 260.0, 530.0),
        cell_min=3.281,
        cell_max=3.318,
        cell_delta=0.021,
        cells=(3.3, 3.301, 3.302, 3.303, 3.304, 3.305, 3.306, 3.307),
        internal_temperature=31.2,
        external_temperatures=(18.5, None),
        outputs={"extio3": True, "extio4": False},
        outputs_on=frozenset({"extio3", "extio4"}),
        dual_pv_level=2,
        counters={"battery_in_ah": 1234.567, "pv_wh": 98765.4, "load_wh": 0.0},
        faults=frozenset({"over_temperature"}),
        interlocks=frozenset({"hvd", "max_soc"}),
        monitor_flags=frozenset({"CELLF"}),
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def test_store_round_trips_a_record_at_its_resolution(tmp_path: Path) -> None:
    original = _record(T0)
    with DataLogStore(tmp_path / "log.db") as store:
        assert store.append(original) is True
        (back,) = store.records(T0, T0 + 1)
    assert back == original  # every value above is a multiple of its field's resolution


def test_store_keeps_none_and_clips_out_of_range_values(tmp_path: Path) -> None:
    record = _record(
        T0,
        pv_current=None,
        battery_current=Stat(500.0, -500.0, 0.004),
        internal_temperature=None,
        dual_pv_level=None,
        outputs={},
        outputs_on=frozenset(),
        faults=frozenset(),
    )
    with DataLogStore(tmp_path / "log.db") as store:
        store.append(record)
        (back,) = store.records(T0, T0 + 1)
    assert back.pv_current is None
    assert back.internal_temperature is None
    assert back.dual_pv_level is None
    assert back.battery_current == Stat(327.67, -327.67, 0.0)  # 10 mA steps, +-327 A
    assert back.outputs == {}
    assert back.faults == frozenset()


def test_store_pages_through_a_range_and_reports_its_bounds(tmp_path: Path) -> None:
    with DataLogStore(tmp_path / "log.db") as store:
        assert (store.first_time(), store.last_time()) == (None, None)
        store.append_many(_record(T0 + 120 * k) for k in range(25))
        page = store.records(T0 + 120, T0 + 120 * 20, limit=10)
        assert [r.start for r in page] == [T0 + 120 * k for k in range(1, 11)]
        streamed = list(store.iter_records(T0, T0 + 120 * 25, page=7))
        assert [r.start for r in streamed] == [T0 + 120 * k for k in range(25)]
        assert (store.first_time(), store.last_time()) == (T0, T0 + 120 * 25)
        assert store.count(T0, T0 + 600) == 5


def test_a_second_record_for_the_same_interval_keeps_the_first(tmp_path: Path) -> None:
    with DataLogStore(tmp_path / "log.db") as store:
        assert store.append(_record(T0, samples=50)) is True
        assert store.append(_record(T0, samples=70)) is False  # restarted within 2 minutes
        (back,) = store.records(T0, T0 + 1)
    assert back.samples == 50


def test_a_closed_log_refuses_use_and_keeps_what_was_written(tmp_path: Path) -> None:
    with DataLogStore(tmp_path / "log.db") as store:
        store.append(_record(T0))
    store.close()  # closed by the with block already: a second close does nothing
    with pytest.raises(DataLogError, match="closed"):
        store.append(_record(T0 + 120))
    with pytest.raises(DataLogError, match="closed"):
        store.records(T0, T0 + 1)
    with DataLogStore(tmp_path / "log.db", read_only=True) as reopened:
        assert [r.start for r in reopened.records(T0, T0 + 240)] == [T0]


def test_retention_removes_the_oldest_records_once_an_hour(tmp_path: Path) -> None:
    with DataLogStore(tmp_path / "log.db", retention_days=2) as store:
        store.append_many(_record(T0 + 3600 * h) for h in range(72))
        # The first append runs retention: everything older than 2 days before it goes.
        store.append(_record(T0 + 3600 * 72))
        assert store.first_time() == T0 + 3600 * 24 + 3600  # start >= now - 2 days
        store.append_many(_record(T0 + 3600 * 72 + 120 * k) for k in range(1, 5))
        store.append(_record(T0 + 3600 * 72 + 600))  # 10 minutes later: not due yet
        assert store.first_time() == T0 + 3600 * 25
        assert store.apply_retention(T0 + 3600 * 72 + 600 + 2 * DAY) == 52
        assert store.first_time() == T0 + 3600 * 72 + 600  # exactly 2 days old: kept


def test_a_shorter_retention_gives_the_space_back(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with DataLogStore(path, retention_days=365) as store:
        store.append_many(_record(T0 + 120 * k) for k in range(20_000))
    with DataLogStore(path, retention_days=1) as store:
        store.apply_retention(T0 + 120 * 20_000)
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        free = connection.execute("PRAGMA freelist_count").fetchone()[0]
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        assert connection.execute("PRAGMA auto_vacuum").fetchone()[0] == 2  # incremental
    finally:
        connection.close()
    assert free <= 256
    assert pages < 200  # ~720 records: tens of pages, not the thousands 20 000 took


def test_schema_version_is_written_and_a_newer_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    DataLogStore(path).close()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA user_version").fetchone()[0] == DATABASE_VERSION
    connection.execute(f"PRAGMA user_version = {DATABASE_VERSION + 1}")
    connection.close()
    with pytest.raises(DataLogError, match="newer than this agent"):
        DataLogStore(path)


def test_read_only_open_needs_an_existing_log(tmp_path: Path) -> None:
    with pytest.raises(DataLogError, match="no data log"):
        DataLogStore(tmp_path / "absent.db", read_only=True)
    assert not (tmp_path / "absent.db").exists()


# -- configuration ---------------------------------------------------------------------------


def test_data_log_section_defaults_and_round_trip() -> None:
    config = parse_config({})
    assert config.data_log == DataLogSettings(enabled=True, interval_s=120, retention_days=365)
    assert config.storage.data_log_file == Path("/var/lib/sbms-agent/state.datalog.db")
    custom = parse_config(
        {
            "data_log": {"enabled": False, "interval_s": 300, "retention_days": 30},
            "storage": {"state_path": "/srv/a/state.db", "data_log_path": "/srv/b/log.db"},
        }
    )
    assert custom.storage.data_log_file == Path("/srv/b/log.db")
    assert parse_config(config_to_dict(custom)) == custom
    assert parse_config(config_to_dict(config)) == config


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"interval_s": 5}, "data_log.interval_s: must be between 10 and 3600 s (got 5)"),
        ({"interval_s": 120.5}, "data_log.interval_s: must be a whole number"),
        ({"retention_days": 0}, "data_log.retention_days: must be between 1 and 3660 days"),
        ({"enabled": "yes"}, "data_log.enabled: must be true or false"),
        ({"path": "/x"}, "data_log.path: unknown key"),
    ],
)
def test_data_log_section_errors_name_the_key(section: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config({"data_log": section})
    assert any(problem.startswith(message) for problem in caught.value.problems), (
        caught.value.problems
    )


def test_relative_data_log_path_is_taken_from_the_config_file(tmp_path: Path) -> None:
    file = tmp_path / "agent.yaml"
    file.write_text("storage: {state_path: s/state.db, data_log_path: logs/data.db}\n")
    config = load_config(file)
    assert config.storage.data_log_file == tmp_path / "logs" / "data.db"
    assert config.storage.state_path == tmp_path / "s" / "state.db"


# -- recorder and the running agent ----------------------------------------------------------


def test_the_loop_writes_records_on_the_simulated_box(tmp_path: Path) -> None:
    system = SimulatedSystem(BoxSpec.for_cells(8))
    clock = SimulatedClock(system.box, speed=1e9)
    path = tmp_path / "log.db"
    recorder = open_recorder(DataLogSettings(interval_s=60), path)
    assert recorder is not None
    start = system.box.now

    asyncio.run(
        run_agent(
            system.agent, clock, 1.0, asyncio.Event(), on_report=recorder.offer, max_samples=300
        )
    )
    recorder.close()

    assert recorder.write_errors == 0
    with DataLogStore(path, read_only=True) as store:
        records = store.records(0, 2**40)
    # 300 one-second samples span 5 or 6 one-minute intervals; the last is written on close.
    assert len(records) in (5, 6)
    assert sum(r.samples for r in records) == 300
    assert records[0].start <= start < records[0].end
    assert all(len(r.cells) == 8 and r.soc is not None for r in records)
    last_report = system.agent.last_report
    assert last_report is not None
    # Counters at the end of the last interval, at their stored resolution (1 mAh, 0.1 Wh).
    expected = dataclasses.asdict(last_report.counters)
    assert records[-1].counters == pytest.approx(expected, abs=0.05)


class _FailingStore(DataLogStore):
    def append(self, record: Record) -> bool:
        raise DataLogError("disk full")


def test_a_failing_write_is_logged_and_counted_never_raised(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    recorder = DataRecorder(_FailingStore(tmp_path / "log.db"), 120)
    with caplog.at_level(logging.ERROR):
        for k in range(3):
            recorder.offer(_report(T0 + 120 * k, _measurement(T0 + 120 * k)))
        recorder.close()
    assert recorder.write_errors == 3
    assert recorder.written == 0
    assert "disk full" in caplog.text


def test_an_unusable_log_file_disables_the_log_without_failing(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    (tmp_path / "dir.db").mkdir()  # a directory where the file should be
    with caplog.at_level(logging.ERROR):
        assert open_recorder(DataLogSettings(), tmp_path / "dir.db") is None
    assert "Data log disabled" in caplog.text
    assert open_recorder(DataLogSettings(enabled=False), tmp_path / "log.db") is None
    assert not (tmp_path / "log.db").exists()


def test_simulate_with_state_keeps_a_data_log(tmp_path: Path) -> None:
    state = tmp_path / "sim.db"
    code = main(["--simulate", "--state", str(state), "--speed", "1e9", "--duration", "0.1"])
    assert code == 0
    with DataLogStore(tmp_path / "sim.datalog.db", read_only=True) as store:
        assert store.count() >= 3  # 6 simulated minutes at 2-minute records


# -- CLI -------------------------------------------------------------------------------------


@pytest.fixture
def log_file(tmp_path: Path) -> Path:
    path = tmp_path / "copy.db"
    with DataLogStore(path, interval_s=120, retention_days=365) as store:
        store.append_many(_record(T0 + 120 * k) for k in range(30))
    return path


def test_export_csv_writes_the_range(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "export",
            "--data-log",
            str(log_file),
            "--from",
            "2026-05-28T20:38:00+00:00",  # T0 + 120 * 5
            "--to",
            "2026-05-28T20:48:00Z",  # T0 + 120 * 10
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert [row["start"] for row in rows] == [
        "2026-05-28T20:38:00Z",
        "2026-05-28T20:40:00Z",
        "2026-05-28T20:42:00Z",
        "2026-05-28T20:44:00Z",
        "2026-05-28T20:46:00Z",
    ]
    first = rows[0]
    assert first["soc_mean"] == "55.55"
    assert first["battery_current_min"] == "-20.0"
    assert first["cells"].split(";")[:2] == ["3.3", "3.301"]
    assert first["external_temperatures"] == "18.5;"
    assert first["outputs_last_on"] == "extio3"
    assert first["interlocks"] == "hvd;max_soc"
    assert first["pv_wh"] == "98765.4"
    assert first["battery_out_ah"] == ""  # not in the record


def test_export_json_to_a_file(log_file: Path, tmp_path: Path) -> None:
    output = tmp_path / "out.json"
    code = main(
        ["export", "--data-log", str(log_file), "--format", "json", "--output", str(output)]
    )
    assert code == 0
    data = json.loads(output.read_text())
    assert [item["start"] for item in data] == [T0 + 120 * k for k in range(30)]
    assert data[0]["soc"] == [55.55, 55.0, 56.0]
    assert data[0]["outputs"] == {"extio3": True, "extio4": False}
    assert data[0]["counters"]["battery_in_ah"] == 1234.567


def test_export_through_the_config_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "agent.yaml"
    config.write_text("storage: {state_path: state.db}\n")
    with DataLogStore(tmp_path / "state.datalog.db") as store:
        store.append(_record(T0))
    assert main(["export", "--config", str(config), "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["start"] == T0


def test_export_rejects_a_bad_time_and_a_missing_log(
    tmp_path: Path, log_file: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["export", "--data-log", str(log_file), "--from", "yesterday"])
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert main(["export", "--data-log", str(tmp_path / "none.db")]) == 4
    assert "no data log there" in capsys.readouterr().err


def test_log_info_says_what_is_stored(log_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["log-info", "--data-log", str(log_file)]) == 0
    out = capsys.readouterr().out
    assert "records:   30" in out
    assert "first:     2026-05-28T20:28:00Z" in out
    assert "last:      2026-05-28T21:28:00Z" in out
    assert "interval:  120 s" in out
    assert "retention: 365 days" in out
    assert "size:" in out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_export_draws_a_progress_bar_only_on_a_terminal_for_long_ranges(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with DataLogStore(path) as store:
        store.append_many(_record(T0 + 3600 * h) for h in range(48))
        terminal, pipe = _Terminal(), io.StringIO()
        end = T0 + 2 * DAY
        assert len(list(_with_progress(store.iter_records(T0, end), T0, end, terminal))) == 48
        list(_with_progress(store.iter_records(T0, end), T0, end, pipe))
        short = _Terminal()
        list(_with_progress(store.iter_records(T0, T0 + 3600), T0, T0 + 3600, short))
    assert "  0%" in terminal.getvalue()
    assert " 50%" in terminal.getvalue()
    assert terminal.getvalue().endswith("] 100%\n")
    assert pipe.getvalue() == ""
    assert short.getvalue() == ""


# -- PV diversion counters (issue 19) --------------------------------------------------------


def test_diversion_counters_are_aggregated_at_the_end_of_the_interval() -> None:
    aggregator = DataAggregator(120)
    reports = [
        dataclasses.replace(
            _report(T0 + second, _measurement(T0 + second)),
            diversion=DiversionReport(
                diverting=True,
                power_w=500.0,
                measured=False,
                available_w=0.0,
                counters=DiversionCounters(
                    diverted_wh=10.0 + second,
                    diverted_estimated_wh=10.0 + second,
                    curtailed_wh=3.0,
                ),
            ),
        )
        for second in (0, 60, 119, 120)
    ]
    (record,) = _feed(aggregator, reports)
    assert record.counters["diverted_wh"] == 129.0
    assert record.counters["curtailed_wh"] == 3.0
    # A box without a diversion logs none.
    (plain,) = _feed(DataAggregator(120), [_report(T0, None), _report(T0 + 120, None)])
    assert "diverted_wh" not in plain.counters


def test_diversion_counters_round_trip_and_old_records_still_read(tmp_path: Path) -> None:
    counters = {"pv_wh": 98765.4, "diverted_wh": 4321.9, "curtailed_wh": 429496.7}
    diverting = _record(T0, counters=counters)
    plain = _record(T0 + 120)  # as every record before issue 19: no extension in its BLOB
    path = tmp_path / "log.db"
    with DataLogStore(path) as store:
        store.append(diverting)
        store.append(plain)
        back = store.records(T0, T0 + 240)
    assert back == [diverting, plain]
    with sqlite3.connect(path) as connection:
        blobs = [row[0] for row in connection.execute("SELECT data FROM records ORDER BY start")]
        assert len(blobs[0]) == len(blobs[1]) + 9  # the tag and two uint32 counters
        # What an agent from before the extension reads: the same BLOB without its tail.
        connection.execute(
            "UPDATE records SET data = ? WHERE start = ?", (blobs[0][: len(blobs[1])], T0)
        )
    connection.close()
    with DataLogStore(path, read_only=True) as store:
        (cut,) = store.records(T0, T0 + 1)
    assert "diverted_wh" not in cut.counters
    assert dataclasses.replace(cut, counters=counters) == diverting


def test_the_export_has_the_diversion_counters(tmp_path: Path) -> None:
    path = tmp_path / "log.db"
    with DataLogStore(path) as store:
        store.append(_record(T0, counters={"diverted_wh": 12.5, "curtailed_wh": 0.0}))
        store.append(_record(T0 + 120))
    out = io.StringIO()
    write_csv(DataLogStore(path, read_only=True).iter_records(T0, T0 + 240), out)
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert (rows[0]["diverted_wh"], rows[0]["curtailed_wh"]) == ("12.5", "0.0")
    assert (rows[1]["diverted_wh"], rows[1]["curtailed_wh"]) == ("", "")
