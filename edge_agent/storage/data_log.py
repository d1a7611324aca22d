"""The agent's data log: one record per interval (default 2 minutes) in SQLite, kept a year.

Durability: WAL journal with synchronous=FULL and one transaction per record, so a crash or
power cut at any moment leaves a consistent database holding every record whose `append`
returned; at most the interval in progress is lost.

Size: the measured values of a record are packed into one BLOB of integer-scaled fields
(`_FIXED`): SQLite's per-column headers and 8-byte REALs would double the size. A year of
2-minute records of an 8S box is about 35 MB (bench/data_log.py measures it). Output names and
flag sets repeat, so they are stored once in `strings` and referenced by id.

Retention: records older than `retention_days` are deleted by the time index (the INTEGER
PRIMARY KEY) at most once an hour; freed pages are reused by new records, and given back to the
file system (auto_vacuum=INCREMENTAL) only when many are free, e.g. after shortening retention.

Schema: PRAGMA user_version; a newer version is refused (never rewritten) so a downgrade cannot
damage a log written by a newer agent. Only the standard library is imported (storage layer).
"""

from __future__ import annotations

import functools
import json
import math
import sqlite3
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.storage.sqlite_file import SqliteFile

DATABASE_VERSION = 1
DEFAULT_INTERVAL_S = 120
DEFAULT_RETENTION_DAYS = 365
COUNTER_NAMES = (  # the fields of control.model.EnergyCounters, in the stored order
    "battery_in_ah",
    "battery_out_ah",
    "battery_in_wh",
    "battery_out_wh",
    "pv_ah",
    "pv_wh",
    "load_ah",
    "load_wh",
)
# PV diversion's counters (issue 19, control.model.DiversionCounters), 0.1 Wh like the energy
# counters, in an optional extension after the cells: only records of a box that decides a
# diversion carry it, and records written before it (or by an older agent, which ignores the
# extension) read back without these counters.
DIVERSION_COUNTER_NAMES = ("diverted_wh", "curtailed_wh")
_EXTENSION_DIVERSION = 1  # the extension's tag byte
_DIVERSION_EXTENSION = struct.Struct("<B" + "I" * len(DIVERSION_COUNTER_NAMES))
_RETENTION_EVERY_S = 3600
_DAY_S = 86400
_VACUUM_MIN_FREE_PAGES = 256  # below this, free pages are simply reused by new records
_BUSY_TIMEOUT_MS = 5000  # the CLI may read while the agent writes

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS records (
        start INTEGER PRIMARY KEY,  -- UNIX seconds, aligned to the interval
        duration INTEGER NOT NULL,
        samples INTEGER NOT NULL,   -- reports with a measurement
        missing INTEGER NOT NULL,   -- reports without one
        names INTEGER,              -- strings.id: JSON list of output names
        flags INTEGER,              -- strings.id: JSON of faults/interlocks/monitor flags
        data BLOB NOT NULL          -- integer-scaled values, see _FIXED
    )""",
    "CREATE TABLE IF NOT EXISTS strings (id INTEGER PRIMARY KEY, text TEXT NOT NULL UNIQUE)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
)
_INSERT = (
    "INSERT INTO records (start, duration, samples, missing, names, flags, data) "
    "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (start) DO NOTHING"
)
_SELECT = (
    "SELECT r.start, r.duration, r.samples, r.missing, n.text, f.text, r.data FROM records r "
    "LEFT JOIN strings n ON n.id = r.names LEFT JOIN strings f ON f.id = r.flags "
    "WHERE r.start >= ? AND r.start < ? ORDER BY r.start LIMIT ?"
)


class DataLogError(Exception):
    """The data log cannot be opened, read or written. The message names the file."""


@dataclass(frozen=True, slots=True)
class Stat:
    """Mean, minimum and maximum of one quantity over an interval."""

    mean: float
    minimum: float
    maximum: float


@dataclass(frozen=True, slots=True)
class Record:
    """One interval. Units as in control.model: V, A (+ = charging), W, degC, Ah, Wh, percent.

    Measured values cover the `samples` reports that had a measurement; None when there were
    none (or no PV shunt for pv/load). `soc` covers every report: the estimator always has one.
    """

    start: int
    end: int
    samples: int
    missing: int
    soc: Stat | None = None
    pack_voltage: Stat | None = None
    battery_current: Stat | None = None
    battery_power: Stat | None = None
    pv_current: Stat | None = None
    pv_power: Stat | None = None
    load_current: Stat | None = None
    load_power: Stat | None = None
    cell_min: float | None = None  # lowest cell voltage seen in the interval
    cell_max: float | None = None  # highest cell voltage seen
    cell_delta: float | None = None  # largest spread of one sample
    cells: tuple[float, ...] = ()  # mean per cell
    internal_temperature: float | None = None  # mean
    external_temperatures: tuple[float | None, ...] = ()  # mean per sensor
    outputs: Mapping[str, bool] = field(default_factory=dict)  # state at the last report
    outputs_on: frozenset[str] = frozenset()  # on in at least one report of the interval
    dual_pv_level: int | None = None  # at the last report
    counters: Mapping[str, float] = field(default_factory=dict)  # COUNTER_NAMES at the end
    faults: frozenset[str] = frozenset()  # seen at least once in the interval
    interlocks: frozenset[str] = frozenset()
    monitor_flags: frozenset[str] = frozenset()


@dataclass(frozen=True, slots=True)
class DataLogInfo:
    path: Path
    count: int
    first_start: int | None
    last_end: int | None
    size_bytes: int  # database plus its WAL
    interval_s: int | None  # as last written by the agent (None: never written)
    retention_days: int | None


def record_to_dict(record: Record) -> dict[str, Any]:
    """Plain JSON-able data (export, and the MQTT back-fill)."""
    data: dict[str, Any] = {
        "start": record.start,
        "end": record.end,
        "samples": record.samples,
        "missing": record.missing,
    }
    for name in STAT_NAMES:
        stat: Stat | None = getattr(record, name)
        data[name] = None if stat is None else [stat.mean, stat.minimum, stat.maximum]
    data.update(
        cell_min=record.cell_min,
        cell_max=record.cell_max,
        cell_delta=record.cell_delta,
        cells=list(record.cells),
        internal_temperature=record.internal_temperature,
        external_temperatures=list(record.external_temperatures),
        outputs=dict(record.outputs),
        outputs_on=sorted(record.outputs_on),
        dual_pv_level=record.dual_pv_level,
        counters=dict(record.counters),
        faults=sorted(record.faults),
        interlocks=sorted(record.interlocks),
        monitor_flags=sorted(record.monitor_flags),
    )
    return data


# ---------------------------------------------------------------------------------------------
# Encoding: fixed-width little-endian integers; the type's extreme value means "none".
# Values beyond a field's range are clipped to it (e.g. +-327 A at 10 mA resolution).
# ---------------------------------------------------------------------------------------------

STAT_NAMES = (
    "soc",
    "pack_voltage",
    "battery_current",
    "battery_power",
    "pv_current",
    "pv_power",
    "load_current",
    "load_power",
)
# (format, scale) per value: stored = round(value * scale)
_STAT_FORMATS: dict[str, tuple[str, float]] = {
    "soc": ("H", 100.0),  # 0.01 %
    "pack_voltage": ("H", 1000.0),  # mV, up to 65.5 V
    "battery_current": ("h", 100.0),  # 10 mA
    "battery_power": ("h", 1.0),  # W
    "pv_current": ("h", 100.0),
    "pv_power": ("h", 1.0),
    "load_current": ("h", 100.0),
    "load_power": ("h", 1.0),
}
_CELL = ("H", 1000.0)  # mV
_TEMPERATURE = ("h", 10.0)  # 0.1 degC
_COUNTER = ("I", 0.0)  # the scale depends on the unit: _COUNTER_SCALES
_COUNTER_SCALES = {name: 1000.0 if name.endswith("_ah") else 10.0 for name in COUNTER_NAMES}
_FIXED = struct.Struct(
    "<"
    + "".join(_STAT_FORMATS[name][0] * 3 for name in STAT_NAMES)
    + "HHH"  # cell min, max, delta
    + "h"  # internal temperature
    + "B"  # dual PV level (0: none)
    + "II"  # outputs: last-state mask, on-at-any-time mask (bit i = names[i])
    + "I" * len(COUNTER_NAMES)  # mAh (x1000) and 0.1 Wh (x10): 4.2 M Ah / 429 MWh
    + "BB"  # number of cells, number of external temperatures (follow as H / h each)
)
_LIMITS = {"H": (0, 0xFFFF), "h": (-0x8000, 0x7FFF), "I": (0, 0xFFFFFFFF), "B": (0, 0xFF)}
_MAX_OUTPUTS = 32


def _none_value(code: str) -> int:
    low, high = _LIMITS[code]
    return low if code == "h" else high  # signed: the lowest; unsigned: the highest


def _scaled(value: float | None, code: str, scale: float) -> int:
    if value is None or not math.isfinite(value):
        return _none_value(code)
    low, high = _LIMITS[code]
    # The sentinel is kept out of range of real values by one step.
    low, high = (low + 1, high) if code == "h" else (low, high - 1)
    return max(low, min(high, round(value * scale)))


_NONE_VALUES = {code: _none_value(code) for code in _LIMITS}


def _unscaled(raw: int, code: str, scale: float) -> float | None:
    return None if raw == _NONE_VALUES[code] else raw / scale


# Names and flag sets repeat across records: parse each distinct text once (reads of a month
# decode tens of thousands of records).
@functools.lru_cache(maxsize=256)
def _parse_names(text: str | None) -> tuple[str, ...]:
    return tuple(json.loads(text)) if text else ()


@functools.lru_cache(maxsize=256)
def _parse_flags(text: str | None) -> tuple[frozenset[str], frozenset[str], frozenset[str]]:
    flags: dict[str, list[str]] = json.loads(text) if text else {}
    faults, interlocks, monitor = (
        frozenset(flags.get(key, ())) for key in ("faults", "interlocks", "monitor_flags")
    )
    return faults, interlocks, monitor


def _mask(names: tuple[str, ...], on: Iterable[str]) -> int:
    index = {name: i for i, name in enumerate(names)}
    return sum(1 << index[name] for name in on if name in index)


def encode_values(record: Record, names: tuple[str, ...]) -> bytes:
    """The BLOB of one record; `names` are its output names in bit order."""
    values: list[int] = []
    for name in STAT_NAMES:
        code, scale = _STAT_FORMATS[name]
        stat: Stat | None = getattr(record, name)
        triple = (None, None, None) if stat is None else (stat.mean, stat.minimum, stat.maximum)
        values += [_scaled(value, code, scale) for value in triple]
    values += [_scaled(v, *_CELL) for v in (record.cell_min, record.cell_max, record.cell_delta)]
    values.append(_scaled(record.internal_temperature, *_TEMPERATURE))
    values.append(record.dual_pv_level or 0)
    values.append(_mask(names, (name for name, on in record.outputs.items() if on)))
    values.append(_mask(names, record.outputs_on))
    values += [
        _scaled(record.counters.get(name), _COUNTER[0], _COUNTER_SCALES[name])
        for name in COUNTER_NAMES
    ]
    cells, temperatures = record.cells[:255], record.external_temperatures[:255]
    values += [len(cells), len(temperatures)]
    tail = struct.pack(
        f"<{len(cells)}H{len(temperatures)}h",
        *(_scaled(v, *_CELL) for v in cells),
        *(_scaled(v, *_TEMPERATURE) for v in temperatures),
    )
    return _FIXED.pack(*values) + tail + _diversion_extension(record)


def _diversion_extension(record: Record) -> bytes:
    if not any(name in record.counters for name in DIVERSION_COUNTER_NAMES):
        return b""
    return _DIVERSION_EXTENSION.pack(
        _EXTENSION_DIVERSION,
        *(
            _scaled(record.counters.get(name), _COUNTER[0], 10.0)
            for name in DIVERSION_COUNTER_NAMES
        ),
    )


def _decoded_extension(data: bytes, offset: int) -> dict[str, float | None]:
    """The diversion counters after the cells, when the record has them."""
    if len(data) < offset + _DIVERSION_EXTENSION.size or data[offset] != _EXTENSION_DIVERSION:
        return {}
    raw = _DIVERSION_EXTENSION.unpack_from(data, offset)[1:]
    return {
        name: _unscaled(value, _COUNTER[0], 10.0)
        for name, value in zip(DIVERSION_COUNTER_NAMES, raw, strict=True)
    }


def _decode_record(row: tuple[Any, ...]) -> Record:
    start, duration, samples, missing, names_json, flags_json, data = row
    names = _parse_names(names_json)
    faults, interlocks, monitor_flags = _parse_flags(flags_json)
    values = _FIXED.unpack_from(data)
    stats: dict[str, Stat | None] = {}
    position = 0
    for name in STAT_NAMES:
        code, scale = _STAT_FORMATS[name]
        triple = [_unscaled(raw, code, scale) for raw in values[position : position + 3]]
        position += 3
        mean, low, high = triple
        stats[name] = None if mean is None or low is None or high is None else Stat(mean, low, high)
    cell_min, cell_max, cell_delta = (
        _unscaled(raw, *_CELL) for raw in values[position : position + 3]
    )
    internal, dual_pv, last_mask, any_mask = values[position + 3 : position + 7]
    position += 7
    counters = {
        name: _unscaled(raw, _COUNTER[0], _COUNTER_SCALES[name])
        for name, raw in zip(
            COUNTER_NAMES, values[position : position + len(COUNTER_NAMES)], strict=True
        )
    }
    cell_count, temperature_count = values[-2:]
    tail_format = f"<{cell_count}H{temperature_count}h"
    tail = struct.unpack_from(tail_format, data, _FIXED.size)
    counters.update(_decoded_extension(data, _FIXED.size + struct.calcsize(tail_format)))
    return Record(
        start=start,
        end=start + duration,
        samples=samples,
        missing=missing,
        **stats,
        cell_min=cell_min,
        cell_max=cell_max,
        cell_delta=cell_delta,
        cells=tuple(raw / _CELL[1] for raw in tail[:cell_count]),
        internal_temperature=_unscaled(internal, *_TEMPERATURE),
        external_temperatures=tuple(_unscaled(raw, *_TEMPERATURE) for raw in tail[cell_count:]),
        outputs={name: bool(last_mask >> i & 1) for i, name in enumerate(names)},
        outputs_on=frozenset(name for i, name in enumerate(names) if any_mask >> i & 1),
        dual_pv_level=dual_pv or None,
        counters={name: value for name, value in counters.items() if value is not None},
        faults=faults,
        interlocks=interlocks,
        monitor_flags=monitor_flags,
    )


def _flags_json(record: Record) -> str | None:
    flags = {
        key: sorted(values)
        for key, values in (
            ("faults", record.faults),
            ("interlocks", record.interlocks),
            ("monitor_flags", record.monitor_flags),
        )
        if values
    }
    return json.dumps(flags, sort_keys=True, separators=(",", ":")) if flags else None


# ---------------------------------------------------------------------------------------------
# The store
# ---------------------------------------------------------------------------------------------


class DataLogStore(SqliteFile):
    """The data log file. Thread-safe (one lock); use as a context manager.

    `read_only=True` opens an existing log without creating or changing anything (the CLI).
    """

    def __init__(
        self,
        path: Path,
        *,
        retention_days: int = DEFAULT_RETENTION_DAYS,
        interval_s: int | None = None,
        read_only: bool = False,
    ) -> None:
        self.path = path
        self.retention_days = retention_days
        super().__init__()
        self._string_ids: dict[str, int] = {}
        self._next_retention: float = -math.inf
        self._connection = _open(path, read_only=read_only)
        if not read_only:
            self._write_meta(interval_s)

    # -- writing --------------------------------------------------------------------------

    def append(self, record: Record) -> bool:
        """Write one record in its own transaction; durable when this returns.

        Returns False when a record with the same start exists (a restart within one
        interval): the first one is kept. Applies retention when an hour has passed.
        """
        inserted = self.append_many((record,)) == 1
        self.apply_retention_if_due(record.end)
        return inserted

    def append_many(self, records: Iterable[Record]) -> int:
        """Write records in one transaction (imports, benchmarks); the number inserted."""
        with self._lock:
            self._check_open()
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                try:
                    inserted = sum(self._insert(record) for record in records)
                except BaseException:
                    self._connection.execute("ROLLBACK")
                    self._string_ids.clear()  # ids made in the rolled-back transaction
                    raise
                self._connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DataLogError(f"{self.path}: cannot write a record: {exc}") from exc
        return inserted

    def apply_retention_if_due(self, now: float) -> int:
        if now < self._next_retention:
            return 0
        self._next_retention = now + _RETENTION_EVERY_S
        return self.apply_retention(now)

    def apply_retention(self, now: float) -> int:
        """Delete the records that started more than retention_days before `now`."""
        cutoff = math.floor(now) - self.retention_days * _DAY_S
        with self._lock:
            self._check_open()
            try:
                deleted = self._connection.execute(
                    "DELETE FROM records WHERE start < ?", (cutoff,)
                ).rowcount
                self._release_free_pages()
            except sqlite3.Error as exc:
                raise DataLogError(f"{self.path}: cannot delete old records: {exc}") from exc
        return deleted

    # -- reading --------------------------------------------------------------------------

    def records(self, start: float, end: float, limit: int = 1000) -> list[Record]:
        """Records starting in [start, end), oldest first, at most `limit` (a page).

        The next page starts at the last record's `start + 1`.
        """
        with self._lock:
            self._check_open()
            try:
                rows = self._connection.execute(
                    _SELECT, (math.ceil(start), math.ceil(end), limit)
                ).fetchall()
            except sqlite3.Error as exc:
                raise DataLogError(f"{self.path}: cannot read records: {exc}") from exc
        return [_decode_record(row) for row in rows]

    def iter_records(self, start: float, end: float, page: int = 1000) -> Iterator[Record]:
        """Every record in [start, end), read a page at a time (a year never sits in memory)."""
        while True:
            batch = self.records(start, end, page)
            yield from batch
            if len(batch) < page:
                return
            start = batch[-1].start + 1

    def first_time(self) -> int | None:
        """Start of the oldest record."""
        return self._scalar("SELECT MIN(start) FROM records")

    def last_time(self) -> int | None:
        """End of the newest record."""
        return self._scalar(
            "SELECT start + duration FROM records WHERE start = (SELECT MAX(start) FROM records)"
        )

    def count(self, start: float = -math.inf, end: float = math.inf) -> int:
        low = -(2**62) if math.isinf(start) else math.ceil(start)
        high = 2**62 if math.isinf(end) else math.ceil(end)
        return (
            self._scalar("SELECT COUNT(*) FROM records WHERE start >= ? AND start < ?", low, high)
            or 0
        )

    def info(self) -> DataLogInfo:
        meta = dict(self._rows("SELECT key, value FROM meta"))
        size = sum(
            candidate.stat().st_size
            for candidate in (self.path, self.path.with_name(self.path.name + "-wal"))
            if candidate.exists()
        )
        return DataLogInfo(
            path=self.path,
            count=self.count(),
            first_start=self.first_time(),
            last_end=self.last_time(),
            size_bytes=size,
            interval_s=int(meta["interval_s"]) if "interval_s" in meta else None,
            retention_days=int(meta["retention_days"]) if "retention_days" in meta else None,
        )

    # -- internals ------------------------------------------------------------------------

    def _insert(self, record: Record) -> int:
        names = tuple(record.outputs)[:_MAX_OUTPUTS]
        names_id = self._string_id(json.dumps(list(names))) if names else None
        flags = _flags_json(record)
        flags_id = self._string_id(flags) if flags is not None else None
        cursor = self._connection.execute(
            _INSERT,
            (
                record.start,
                record.end - record.start,
                record.samples,
                record.missing,
                names_id,
                flags_id,
                encode_values(record, names),
            ),
        )
        return cursor.rowcount

    def _string_id(self, text: str) -> int:
        """Id of a repeated string (output names, flag sets), added on first use."""
        known = self._string_ids.get(text)
        if known is not None:
            return known
        row = self._connection.execute("SELECT id FROM strings WHERE text = ?", (text,)).fetchone()
        if row is None:
            row = (
                self._connection.execute(
                    "INSERT INTO strings (text) VALUES (?)", (text,)
                ).lastrowid,
            )
        self._string_ids[text] = int(row[0])
        return int(row[0])

    def _release_free_pages(self) -> None:
        """Give pages back to the file system only when many are free: in steady state the
        hourly deletions free about a page, which the next records reuse."""
        free = self._connection.execute("PRAGMA freelist_count").fetchone()[0]
        if free > _VACUUM_MIN_FREE_PAGES:
            # executescript steps the pragma to completion: Python 3.11's execute() steps it
            # once, which frees a single page.
            release = free - _VACUUM_MIN_FREE_PAGES // 2
            self._connection.executescript(f"PRAGMA incremental_vacuum({release});")

    def _write_meta(self, interval_s: int | None) -> None:
        values = {"retention_days": str(self.retention_days)}
        if interval_s is not None:
            values["interval_s"] = str(interval_s)
        with self._lock:
            try:
                self._connection.execute("BEGIN IMMEDIATE")
                self._connection.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?) "
                    "ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                    values.items(),
                )
                self._connection.execute("COMMIT")
            except sqlite3.Error as exc:
                raise DataLogError(f"{self.path}: cannot write its settings: {exc}") from exc

    def _scalar(self, sql: str, *parameters: Any) -> int | None:
        rows = self._rows(sql, *parameters)
        return None if not rows or rows[0][0] is None else int(rows[0][0])

    def _rows(self, sql: str, *parameters: Any) -> list[Any]:
        with self._lock:
            self._check_open()
            try:
                return self._connection.execute(sql, parameters).fetchall()
            except sqlite3.Error as exc:
                raise DataLogError(f"{self.path}: cannot read: {exc}") from exc

    def _check_open(self) -> None:
        if self._closed:
            raise DataLogError(f"{self.path}: the data log is closed")


def _open(path: Path, *, read_only: bool) -> sqlite3.Connection:
    if read_only and not path.is_file():
        raise DataLogError(f"{path}: no data log there")
    try:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit transactions, each write says BEGIN/COMMIT itself.
        # check_same_thread=False: the agent writes from its writer thread; a lock serialises.
        connection = sqlite3.connect(
            f"file:{path}?mode=ro" if read_only else path,
            uri=read_only,
            isolation_level=None,
            check_same_thread=False,
        )
    except (OSError, sqlite3.Error) as exc:
        raise DataLogError(f"{path}: cannot open: {exc}") from exc
    try:
        connection.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
        _check_version(connection, path)
        if not read_only:
            _configure(connection, path)
    except sqlite3.Error as exc:
        connection.close()
        raise DataLogError(f"{path}: cannot open: {exc}") from exc
    except BaseException:
        connection.close()
        raise
    return connection


def _check_version(connection: sqlite3.Connection, path: Path) -> None:
    version = connection.execute("PRAGMA user_version").fetchone()[0]
    if version > DATABASE_VERSION:
        raise DataLogError(
            f"{path}: data log version {version} is newer than this agent's {DATABASE_VERSION}"
        )


def _configure(connection: sqlite3.Connection, path: Path) -> None:
    # Only takes effect on a new, empty database (before the first table): that is the point.
    connection.execute("PRAGMA auto_vacuum = INCREMENTAL")
    journal_mode = connection.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if str(journal_mode).lower() != "wal":
        raise DataLogError(f"{path}: cannot switch to the WAL journal (got {journal_mode})")
    connection.execute("PRAGMA synchronous=FULL")
    connection.execute("BEGIN IMMEDIATE")
    for statement in _SCHEMA:
        connection.execute(statement)
    # Version 0 is a new file; a later version would migrate here, in this transaction.
    connection.execute(f"PRAGMA user_version = {DATABASE_VERSION}")
    connection.execute("COMMIT")
