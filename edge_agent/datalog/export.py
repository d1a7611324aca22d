"""`sbms-agent export` and `sbms-agent log-info`: read the data log from the command line.

Both open the log read-only, so they are safe beside a running agent and on a copied file.
Export streams page by page: a year never sits in memory. The progress bar goes to stderr only
when it is a terminal and the range is longer than a day; redirected output stays clean (a
cron job's mail should hold errors, not percentages).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from edge_agent.config import ConfigError, load_config
from edge_agent.storage.data_log import (
    COUNTER_NAMES,
    DIVERSION_COUNTER_NAMES,
    STAT_NAMES,
    DataLogError,
    DataLogStore,
    Record,
    record_to_dict,
)

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_DATA = 4
_PROGRESS_MIN_RANGE_S = 86400
_BAR_WIDTH = 30
_STAT_PARTS = ("mean", "min", "max")


def data_log_command(command: str, argv: list[str]) -> int:
    parser = _export_parser() if command == "export" else _info_parser()
    args = parser.parse_args(argv)
    try:
        path = _data_log_path(args)
        with DataLogStore(path, read_only=True) as store:
            if command == "export":
                return _export(store, args)
            print(_describe(store))
    except BrokenPipeError:  # `export ... | head`: the reader has all it wanted
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115 - Python would report the flush
        return EXIT_OK
    except ConfigError as err:
        print(f"{args.config}: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_USAGE
    except (DataLogError, OSError) as err:
        print(f"sbms-agent {command}: {err}", file=sys.stderr)
        return EXIT_DATA
    return EXIT_OK


def _add_source(parser: argparse.ArgumentParser) -> None:
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="the agent's configuration file")
    source.add_argument("--data-log", type=Path, help="a data log file (e.g. a copy)")


def _export_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbms-agent export",
        description="Write the data log records of a time range as CSV or JSON.",
        epilog="Times are ISO 8601; without a UTC offset they are the local time of this machine.",
    )
    _add_source(parser)
    parser.add_argument("--from", dest="start", type=_iso_time, help="default: the first record")
    parser.add_argument("--to", dest="end", type=_iso_time, help="default: after the last record")
    parser.add_argument("--format", choices=("csv", "json"), default="csv")
    parser.add_argument("--output", type=Path, help="default: standard output")
    return parser


def _info_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbms-agent log-info", description="Say what the data log holds."
    )
    _add_source(parser)
    return parser


def _iso_time(text: str) -> float:
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"not an ISO 8601 time: {text!r} (e.g. 2026-05-01 or 2026-05-01T12:00+02:00)"
        ) from None
    return moment.astimezone().timestamp() if moment.tzinfo is None else moment.timestamp()


def _data_log_path(args: argparse.Namespace) -> Path:
    if args.data_log is not None:
        return Path(args.data_log)
    return load_config(args.config).storage.data_log_file


# -- log-info --------------------------------------------------------------------------------


def _describe(store: DataLogStore) -> str:
    info = store.info()
    interval = "unknown" if info.interval_s is None else f"{info.interval_s} s"
    retention = "unknown" if info.retention_days is None else f"{info.retention_days} days"
    lines = [
        f"data log:  {info.path}",
        f"size:      {info.size_bytes / 1e6:.2f} MB",
        f"records:   {info.count}",
        f"first:     {_iso(info.first_start)}",
        f"last:      {_iso(info.last_end)} (end of the newest record)",
        f"interval:  {interval}",
        f"retention: {retention}",
    ]
    return "\n".join(lines)


def _iso(timestamp: float | None) -> str:
    if timestamp is None:
        return "-"
    return datetime.fromtimestamp(timestamp, UTC).isoformat().replace("+00:00", "Z")


# -- export ----------------------------------------------------------------------------------


def _export(store: DataLogStore, args: argparse.Namespace) -> int:
    first, last = store.first_time(), store.last_time()
    start = args.start if args.start is not None else (first if first is not None else 0)
    end = args.end if args.end is not None else (last if last is not None else 0) + 1
    if end <= start:
        print("sbms-agent export: --to must be after --from", file=sys.stderr)
        return EXIT_USAGE
    records = _with_progress(store.iter_records(start, end), start, end, sys.stderr)
    if args.output is None:
        _write(records, args.format, sys.stdout)
    else:
        with args.output.open("w", encoding="utf-8", newline="") as output:
            _write(records, args.format, output)
    return EXIT_OK


def _write(records: Iterator[Record], kind: str, output: TextIO) -> None:
    if kind == "json":
        write_json(records, output)
    else:
        write_csv(records, output)


def write_json(records: Iterator[Record], output: TextIO) -> None:
    """A JSON array, one record per line, written as it is read."""
    output.write("[")
    separator = "\n"
    for record in records:
        output.write(separator + json.dumps(record_to_dict(record), separators=(",", ":")))
        separator = ",\n"
    output.write("\n]\n")


CSV_COLUMNS = (
    "start",
    "end",
    "samples",
    "missing",
    *(f"{name}_{part}" for name in STAT_NAMES for part in _STAT_PARTS),
    "cell_min",
    "cell_max",
    "cell_delta",
    "cells",
    "internal_temperature",
    "external_temperatures",
    "outputs_last_on",
    "outputs_on",
    "dual_pv_level",
    *COUNTER_NAMES,
    "faults",
    "interlocks",
    "monitor_flags",
    *DIVERSION_COUNTER_NAMES,  # issue 19: blank in records without a diversion
)


def write_csv(records: Iterator[Record], output: TextIO) -> None:
    """One row per record; times in ISO 8601 UTC; lists joined with ";"."""
    writer = csv.writer(output, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for record in records:
        writer.writerow(_csv_row(record))


def _csv_row(record: Record) -> list[Any]:
    data = record_to_dict(record)
    row: list[Any] = [_iso(record.start), _iso(record.end), record.samples, record.missing]
    for name in STAT_NAMES:
        row += data[name] if data[name] is not None else ["", "", ""]
    row += [_blank(record.cell_min), _blank(record.cell_max), _blank(record.cell_delta)]
    row.append(_joined(record.cells))
    row.append(_blank(record.internal_temperature))
    row.append(_joined(record.external_temperatures))
    row.append(_joined(name for name, on in record.outputs.items() if on))
    row.append(_joined(sorted(record.outputs_on)))
    row.append(_blank(record.dual_pv_level))
    row += [_blank(record.counters.get(name)) for name in COUNTER_NAMES]
    row += [
        _joined(sorted(flags)) for flags in (record.faults, record.interlocks, record.monitor_flags)
    ]
    row += [_blank(record.counters.get(name)) for name in DIVERSION_COUNTER_NAMES]
    return row


def _blank(value: float | None) -> Any:
    return "" if value is None else value


def _joined(values: Any) -> str:
    return ";".join("" if value is None else str(value) for value in values)


def _with_progress(
    records: Iterator[Record], start: float, end: float, stream: TextIO
) -> Iterator[Record]:
    """The records, drawing a bar on a terminal as their time advances through the range."""
    if not stream.isatty() or end - start < _PROGRESS_MIN_RANGE_S:
        yield from records
        return
    shown = -1
    for record in records:
        percent = int(100 * (record.start - start) / (end - start))
        if percent != shown:
            shown = percent
            filled = _BAR_WIDTH * percent // 100
            stream.write(f"\r[{'#' * filled}{'.' * (_BAR_WIDTH - filled)}] {percent:3d}%")
            stream.flush()
        yield record
    stream.write(f"\r[{'#' * _BAR_WIDTH}] 100%\n")
    stream.flush()
