"""Data log figures: `python -m bench.data_log` (issue 8).

- cost of one record write: `DataLogStore.append` (its own transaction, WAL, synchronous=FULL,
  so an fsync each), median of many, on the file system of the temporary directory;
- size of one simulated year of 2-minute records of an 8S box (aim: under 50 MB), and after a
  further month with retention deleting the oldest (the steady state);
- time to read one day and one month of records (decoded `Record`s, paged as export reads);
- the Home Assistant side of a back-fill: parsing a month of `history/result` pages and folding
  them into hourly statistics for every sensor of an 8S box (custom_components/sbms/history.py;
  needs Home Assistant installed, as in `.venv`).

The year is a simulated day (the real simulator, agent and aggregator at 10 s samples)
repeated 365 times with the counters carried on: simulating 31 M one-second samples would take
an hour and give the same bytes, since every record has the same fixed-width encoding.
"""

from __future__ import annotations

import argparse
import dataclasses
import sqlite3
import statistics
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from edge_agent.control.model import ControlReport
from edge_agent.datalog.aggregator import DataAggregator
from edge_agent.mqtt.handlers import HistoryPage
from edge_agent.mqtt.payloads import announce_payload, encode, history_result_payload
from edge_agent.mqtt.requests import MAX_LIMIT
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.data_log import DataLogStore, Record, record_to_dict

DAY = 86400
INTERVAL_S = 120


def simulated_day(cells: int = 8) -> list[Record]:
    """One day of records from the simulated box (10 s samples, 2-minute records)."""
    spec = BoxSpec.for_cells(cells)
    config = simulated_config(spec)
    config = dataclasses.replace(
        config,
        timing=dataclasses.replace(config.timing, sample_interval_s=10.0),
        control=dataclasses.replace(config.control, stale_after_s=60.0),
    )
    system = SimulatedSystem(spec, config)
    aggregator = DataAggregator(INTERVAL_S)
    records: list[Record] = []

    def collect(report: ControlReport) -> None:
        record = aggregator.add(report)
        if record is not None:
            records.append(record)

    system.run(DAY + INTERVAL_S, on_report=collect)
    return records[:720]


def shifted_days(day: list[Record], days: int, first_day: int = 0) -> Iterator[list[Record]]:
    """The day repeated, each copy later by a day and its counters continued."""
    span = day[-1].end - day[0].start
    last, first = day[-1].counters, day[0].counters
    gain = {name: last[name] - first.get(name, 0.0) for name in last}
    for index in range(first_day, first_day + days):
        offset = index * span
        yield [
            dataclasses.replace(
                record,
                start=record.start + offset,
                end=record.end + offset,
                counters={k: v + index * gain.get(k, 0.0) for k, v in record.counters.items()},
            )
            for record in day
        ]


def file_size_mb(path: Path) -> float:
    connection = sqlite3.connect(path)
    try:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # count the WAL's pages in
    finally:
        connection.close()
    return path.stat().st_size / 1e6


def bench_write(directory: Path, day: list[Record], count: int) -> None:
    timings: list[float] = []
    with DataLogStore(directory / "write.db", interval_s=INTERVAL_S) as store:
        for record in (r for batch in shifted_days(day, count // len(day) + 1) for r in batch):
            if len(timings) == count:
                break
            start = time.perf_counter_ns()
            store.append(record)
            timings.append((time.perf_counter_ns() - start) / 1000)
    timings.sort()
    print(
        f"one record write (own transaction, fsync)  median {statistics.median(timings):8.0f} us"
        f"   p99 {timings[int(0.99 * (len(timings) - 1))]:8.0f} us   ({count} writes)"
    )


def bench_year(directory: Path, day: list[Record], days: int) -> Path:
    path = directory / "year.db"
    with DataLogStore(path, interval_s=INTERVAL_S, retention_days=365) as store:
        for batch in shifted_days(day, days):
            store.append_many(batch)
        count = store.count()
    print(
        f"size of {days} days of 2-minute records (8S)    {file_size_mb(path):8.1f} MB"
        f"   ({count} records, {path.stat().st_size / count:.0f} bytes each)"
    )
    extra = 30
    with DataLogStore(path, interval_s=INTERVAL_S, retention_days=days) as store:
        for batch in shifted_days(day, extra, first_day=days):
            store.append_many(batch)
            store.apply_retention(batch[-1].end)
        count = store.count()
    print(
        f"  after {extra} more days with retention         {file_size_mb(path):8.1f} MB"
        f"   ({count} records kept)"
    )
    return path


def bench_read(path: Path, repeats: int) -> None:
    with DataLogStore(path, read_only=True) as store:
        first = store.first_time()
        assert first is not None
        for label, span in (("one day", DAY), ("one month (30 days)", 30 * DAY)):
            timings: list[float] = []
            count = 0
            for _ in range(repeats):
                start = time.perf_counter()
                count = sum(1 for _ in store.iter_records(first + DAY, first + DAY + span))
                timings.append(time.perf_counter() - start)
            print(
                f"read {label:<20} {statistics.median(timings) * 1000:8.1f} ms   ({count} records)"
            )


def bench_history_page(path: Path) -> None:
    """Bytes of one `history/result` page as the agent sends it: records read back from the
    log (docs/protocol.md keeps a page under 128 KiB)."""
    with DataLogStore(path, read_only=True) as store:
        first = store.first_time()
        assert first is not None
        stored = store.records(first, first + 30 * DAY, limit=200)
    for limit in (MAX_LIMIT, 200):
        records = tuple(record_to_dict(record) for record in stored[:limit])
        page = HistoryPage(interval_s=120, records=records, next_from=None)
        size = len(encode(history_result_payload("bench", [], time.time(), page=page)))
        print(f"history/result page of {limit:3d} records  {size / 1024:8.1f} KiB")


def bench_backfill_fold(path: Path) -> None:
    """CPU of the integration's side of a back-fill, without MQTT and the recorder: a month of
    pages parsed (`HistoryAnswer`) and folded into hours for the sensors an 8S box has."""
    # Imported here: the rest of the benchmark runs without Home Assistant.
    from custom_components.sbms.history import HourlyFolder
    from custom_components.sbms.models import Announce, HistoryAnswer
    from custom_components.sbms.sensor import box_sensors

    with DataLogStore(path, read_only=True) as store:
        first = store.first_time()
        assert first is not None
        stored = store.records(first, first + 30 * DAY, limit=30 * 720)
    pages = [
        encode(
            history_result_payload(
                "bench",
                [],
                time.time(),
                page=HistoryPage(120, tuple(record_to_dict(r) for r in stored[i : i + 120]), None),
            )
        )
        for i in range(0, len(stored), MAX_LIMIT)
    ]
    announce = Announce.from_dict(_bench_announce())
    sensors = box_sensors(announce)
    started = time.perf_counter()
    folder = HourlyFolder(
        {d.key + s: d.history_reading_fn for d, s in sensors if d.history_reading_fn},
        {d.key + s: d.history_counter_fn for d, s in sensors if d.history_counter_fn},
    )
    for page in pages:
        folder.add(HistoryAnswer.from_payload(page).records)
    hours = len(folder.readings("voltage"))
    elapsed = time.perf_counter() - started
    print(
        f"back-fill, Home Assistant side: {len(stored)} records ({len(pages)} pages) parsed "
        f"and folded into {hours} hours x {len(sensors)} sensors in {elapsed:.2f} s"
    )


def _bench_announce() -> dict[str, object]:
    config = simulated_config(BoxSpec.for_cells(8))
    return announce_payload(config, "simulator", "BENCH", [], history=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="30 days instead of a year")
    args = parser.parse_args()
    started = time.perf_counter()
    day = simulated_day()
    print(f"simulated day: {len(day)} records in {time.perf_counter() - started:.1f} s")
    with tempfile.TemporaryDirectory() as directory:
        where = Path(directory)
        bench_write(where, day, 200 if args.quick else 1000)
        year = bench_year(where, day, 30 if args.quick else 365)
        bench_read(year, 3 if args.quick else 7)
        bench_history_page(year)
        bench_backfill_fold(year)


if __name__ == "__main__":
    main()
