"""Back-fill of long-term statistics from the agent's data log, after Home Assistant missed data.

While the box is live (agent online, broker connected, a state received) the time of the
latest state is remembered as `covered_until` (stored, so it survives a restart). When the
box turns live again, after a restart of Home Assistant or a lost agent or broker, the time
since `covered_until` is a gap: its complete hours are asked of the agent (`history/get`,
paged), folded into hourly mean/min/max and counter sums (history.py) and imported into the
recorder as the sensors' own statistics.

Only hours without a row are written, so nothing Home Assistant recorded itself is rewritten:
the hours the gap began and ended in keep Home Assistant's partial rows. Energy sums continue
Home Assistant's last row before each hole, so its own rows after the gap (which continue
from that row too) follow without a step and no energy is counted twice. A gap that cannot be
filled now (agent offline, a request unanswered) stays stored and is tried again at the next
reconnection or start.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, Protocol

from homeassistant.components.recorder.models import (
    StatisticData,
    StatisticMeanType,
    StatisticMetaData,
)
from homeassistant.components.recorder.statistics import (
    async_import_statistics,
    get_metadata,
    statistics_during_period,
)
from homeassistant.components.sensor.const import UNIT_CONVERTERS, SensorDeviceClass
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import get_instance
from homeassistant.helpers.storage import Store
from homeassistant.util import dt as dt_util

from .const import DOMAIN, LOGGER
from .coordinator import AgentRequestError, SbmsCoordinator
from .history import (
    CounterFn,
    HourCounter,
    HourlyFolder,
    HourSum,
    MeasurementFn,
    fill_sums,
    hour_start,
)
from .identity import entity_unique_id
from .models import Announce, ProtocolError

STORAGE_VERSION: Final = 1
# The largest page the agent sends (docs/protocol.md): 120 records, about 100 KiB.
PAGE_LIMIT: Final = 120
# How far before a gap to look for the row an energy sum continues from.
BASE_LOOKBACK_S: Final = 2 * 86400
# Gaps waiting to be filled; the oldest are dropped beyond this (each is one outage).
MAX_PENDING_GAPS: Final = 32
SAVE_DELAY_S: Final = 30.0
# A gap is filled a day at a time (720 records of 2 minutes: 6 pages).
WINDOW_S: Final = 86400


def storage_key(entry_id: str) -> str:
    return f"{DOMAIN}.backfill.{entry_id}"


class HistorySensor(Protocol):
    """What the back-fill reads of a sensor's description (sensor.py's): handed in with
    `box_sensors` by `__init__.py`, so this module never imports the sensor platform, which
    imports the runtime data that holds the back-fill."""

    @property
    def key(self) -> str: ...
    @property
    def native_unit_of_measurement(self) -> str | None: ...
    @property
    def device_class(self) -> SensorDeviceClass | None: ...
    @property
    def history_reading_fn(self) -> MeasurementFn | None: ...
    @property
    def history_counter_fn(self) -> CounterFn | None: ...


# The sensors a box has, as (description, unique-id suffix): sensor.py's `box_sensors`.
SensorsFn = Callable[[Announce], Iterable[tuple[HistorySensor, str]]]


@dataclass(frozen=True, slots=True)
class Target:
    """One sensor whose statistics can be filled: its entity and what the log holds for it."""

    entity_id: str
    description: HistorySensor

    @property
    def is_counter(self) -> bool:
        return self.description.history_counter_fn is not None


@dataclass(frozen=True, slots=True)
class FillReport:
    """What one gap's back-fill did, for the log and diagnostics."""

    start: float
    end: float
    records: int
    hours: int  # hours imported, summed over statistics
    statistics: int  # statistics that got at least one hour

    def plus(self, part: FillReport) -> FillReport:
        """This report extended by the next part of the same gap."""
        return FillReport(
            self.start,
            self.end,
            self.records + part.records,
            self.hours + part.hours,
            max(self.statistics, part.statistics),
        )


class HistoryBackfill:
    """Remembers what Home Assistant has of one box and fills what it missed."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        coordinator: SbmsCoordinator,
        sensors: SensorsFn,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.coordinator = coordinator
        self._sensors = sensors
        self.covered_until: float | None = None
        self.pending: list[tuple[float, float]] = []
        self.last_fill: FillReport | None = None
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, storage_key(entry.entry_id)
        )
        self._live = False
        self._running = False
        self._save_requested_at = float("-inf")  # monotonic
        self._unsubscribe: CALLBACK_TYPE | None = None

    async def async_start(self) -> None:
        self._restore(await self._store.async_load())
        self._unsubscribe = self.coordinator.async_add_listener(self._on_update)

    async def async_stop(self) -> None:
        """Unloading: what is covered is written now, not when the save timer fires."""
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        await self._store.async_save(self._stored())

    def diagnostics(self) -> dict[str, Any]:
        return {
            "covered_until": self.covered_until,
            "pending": [list(gap) for gap in self.pending],
            "last_fill": None if self.last_fill is None else vars_of(self.last_fill),
        }

    # --- what Home Assistant has ------------------------------------------------------------

    def _restore(self, stored: Any) -> None:
        """A damaged file must not stop the integration: it is logged and started afresh."""
        if stored is None:
            return
        try:
            covered = stored["covered_until"]
            pending = [(float(start), float(end)) for start, end in stored["pending"]]
            self.covered_until = None if covered is None else float(covered)
        except (KeyError, TypeError, ValueError) as err:
            LOGGER.warning("Ignoring the stored back-fill state of %s: %r", self.entry.title, err)
            return
        self.pending = [gap for gap in pending if gap[1] > gap[0]]

    def _stored(self) -> dict[str, Any]:
        return {"covered_until": self.covered_until, "pending": self.pending}

    def _save(self) -> None:
        self._store.async_delay_save(self._stored, SAVE_DELAY_S)

    @callback
    def _on_update(self) -> None:
        data = self.coordinator.data
        live = data.available and data.state is not None
        now = dt_util.utcnow().timestamp()
        if live and not self._live:
            if self.covered_until is not None and now > self.covered_until:
                self._add_gap(self.covered_until, now)
            self._start_run()
        self._live = live
        if live:
            self.covered_until = now
            # At most one save request per delay: a request within the delay would postpone
            # the pending write again, and with a state every 30 s it would never happen.
            if time.monotonic() - self._save_requested_at >= SAVE_DELAY_S:
                self._save_requested_at = time.monotonic()
                self._save()

    def _add_gap(self, start: float, end: float) -> None:
        self.pending.append((start, end))
        del self.pending[:-MAX_PENDING_GAPS]

    def _start_run(self) -> None:
        if self._running or not self.pending:
            return
        self._running = True
        self.entry.async_create_background_task(
            self.hass, self._async_run(), f"{DOMAIN} back-fill {self.coordinator.agent_id}"
        )

    # --- filling ------------------------------------------------------------------------

    async def _async_run(self) -> None:
        try:
            await self._async_fill_pending()
        finally:
            self._running = False

    async def _async_fill_pending(self) -> None:
        if not self.coordinator.data.announce.history:
            LOGGER.debug("%s keeps no data log: gaps stay in the statistics", self.entry.title)
            self.pending.clear()
            return
        # The recorder compiles the periods it missed at start first: checking for rows
        # after its queue drained means its own rows are seen and left alone.
        await get_instance(self.hass).async_block_till_done()
        while self.pending:
            start, end = self.pending[0]
            try:
                report = await self._async_fill_gap(start, end)
            except (AgentRequestError, ProtocolError) as err:
                LOGGER.warning(
                    "Back-fill of %s from %s to %s postponed to the next reconnection: %s",
                    self.entry.title,
                    _iso(start),
                    _iso(end),
                    err,
                )
                return
            self.pending.pop(0)
            self._save()
            self.last_fill = report
            if report.hours:
                LOGGER.info(
                    "%s: filled %d hours of %d statistics from %d records of the agent's "
                    "data log (%s to %s)",
                    self.entry.title,
                    report.hours,
                    report.statistics,
                    report.records,
                    _iso(start),
                    _iso(end),
                )

    async def _async_fill_gap(self, start: float, end: float) -> FillReport:
        """The gap's complete hours, a day at a time: each day is fetched, imported and noted
        as done before the next, so memory stays small, no request spans more than a day,
        and a restart in the middle resumes where it stopped."""
        first, last = hour_start(start), hour_start(end)  # the hour `end` is in is HA's own
        report = FillReport(start, end, 0, 0, 0)
        window = first
        while window < last:
            window_end = min(window + WINDOW_S, last)
            report = report.plus(await self._async_fill(window, window_end))
            self.pending[0] = (window_end, end)
            self._save()
            # The next day's sums continue this day's rows: they must be in the database.
            await get_instance(self.hass).async_block_till_done()
            window = window_end
        return report

    async def _async_fill(self, first: int, last: int) -> FillReport:
        """Hours [first, last) of every sensor that misses them."""
        targets = self._targets()
        if not targets:
            return FillReport(first, last, 0, 0, 0)
        folder = HourlyFolder(
            {t.entity_id: _reading_fn(t) for t in targets if not t.is_counter},
            {t.entity_id: _counter_fn(t) for t in targets if t.is_counter},
        )
        await self._async_fetch(first, last, folder)
        ids = {target.entity_id for target in targets}
        recorder = get_instance(self.hass)
        metadata = await recorder.async_add_executor_job(
            lambda: get_metadata(self.hass, statistic_ids=ids)
        )
        rows = await recorder.async_add_executor_job(
            lambda: statistics_during_period(
                self.hass,
                dt_util.utc_from_timestamp(first - BASE_LOOKBACK_S),
                dt_util.utc_from_timestamp(last),
                ids,
                "hour",
                None,
                {"state", "sum", "mean"},
            )
        )
        hours = statistics = 0
        for target in targets:
            imported = self._import(target, folder, metadata, rows.get(target.entity_id, []), first)
            hours += imported
            statistics += bool(imported)
        return FillReport(first, last, folder.records, hours, statistics)

    def _targets(self) -> list[Target]:
        """The enabled sensors of this box the data log has values for."""
        registry = er.async_get(self.hass)
        targets = []
        for description, suffix in self._sensors(self.coordinator.data.announce):
            if description.history_reading_fn is None and description.history_counter_fn is None:
                continue
            unique_id = entity_unique_id(self.coordinator.serial, description.key, suffix)
            entity_id = registry.async_get_entity_id("sensor", DOMAIN, unique_id)
            entry = registry.async_get(entity_id) if entity_id else None
            if entry is not None and not entry.disabled:
                targets.append(Target(entry.entity_id, description))
        return targets

    async def _async_fetch(self, first: int, last: int, folder: HourlyFolder) -> None:
        """Every record of [first, last), a page at a time, folded as it arrives."""
        start: float | None = first
        while start is not None and start < last:
            answer = await self.coordinator.async_history(start, last, PAGE_LIMIT)
            folder.add(answer.records)
            if answer.next_from is not None and answer.next_from <= start:
                raise ProtocolError(f"history.next_from: {answer.next_from} does not move on")
            start = answer.next_from

    def _import(
        self,
        target: Target,
        folder: HourlyFolder,
        metadata: Mapping[str, tuple[int, StatisticMetaData]],
        rows: Iterable[Mapping[str, Any]],
        first: int,
    ) -> int:
        """Import the hours `target` misses; returns how many. Statistics Home Assistant never
        kept (no metadata: excluded from the recorder, or new) are not started here."""
        if (found := metadata.get(target.entity_id)) is None:
            return 0
        meta = found[1]
        convert = _converter(target.description, meta["unit_of_measurement"])
        if convert is None:
            LOGGER.debug("%s: cannot convert to %s", target.entity_id, meta["unit_of_measurement"])
            return 0
        existing = {int(row["start"]): row for row in rows}
        if target.is_counter:
            if not meta["has_sum"]:
                return 0
            data = _sum_rows(folder.counters(target.entity_id), existing, convert, first)
        else:
            if meta.get("mean_type", StatisticMeanType.ARITHMETIC) is StatisticMeanType.NONE:
                return 0
            data = _mean_rows(folder, target.entity_id, existing, convert, first)
        if data:
            # The metadata as the recorder keeps it, so importing changes none of it.
            import_meta: Any = {key: value for key, value in meta.items() if key != "has_mean"}
            async_import_statistics(self.hass, import_meta, data)
        return len(data)


def _mean_rows(
    folder: HourlyFolder,
    entity_id: str,
    existing: Mapping[int, Any],
    convert: Callable[[float], float],
    first: int,
) -> list[StatisticData]:
    return [
        StatisticData(
            start=dt_util.utc_from_timestamp(hour.start),
            mean=convert(hour.reading.mean),
            min=convert(hour.reading.min),
            max=convert(hour.reading.max),
        )
        for hour in folder.readings(entity_id)
        if hour.start >= first and hour.start not in existing
    ]


def _sum_rows(
    counters: list[HourCounter],
    existing: Mapping[int, Mapping[str, Any]],
    convert: Callable[[float], float],
    first: int,
) -> list[StatisticData]:
    base = [
        HourSum(start, float(row["state"]), float(row["sum"]))
        for start, row in existing.items()
        if row.get("state") is not None and row.get("sum") is not None
    ]
    hours = [
        HourCounter(hour.start, convert(hour.state))
        for hour in counters
        if hour.start >= first and hour.start not in existing
    ]
    return [
        StatisticData(start=dt_util.utc_from_timestamp(row.start), state=row.state, sum=row.sum)
        for row in fill_sums(base, hours)
    ]


def _reading_fn(target: Target) -> MeasurementFn:
    assert target.description.history_reading_fn is not None
    return target.description.history_reading_fn


def _counter_fn(target: Target) -> CounterFn:
    assert target.description.history_counter_fn is not None
    return target.description.history_counter_fn


def _converter(description: HistorySensor, unit: str | None) -> Callable[[float], float] | None:
    """From the agent's unit to the unit the statistics are kept in (kWh, mV, °F ...)."""
    native = description.native_unit_of_measurement
    if unit == native:
        return lambda value: value
    converter = UNIT_CONVERTERS.get(description.device_class)
    if converter is None or not {native, unit} <= converter.VALID_UNITS:
        return None
    return converter.converter_factory(native, unit)


def vars_of(report: FillReport) -> dict[str, Any]:
    return {
        "start": _iso(report.start),
        "end": _iso(report.end),
        "records": report.records,
        "hours": report.hours,
        "statistics": report.statistics,
    }


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, dt_util.UTC).isoformat(timespec="seconds")


async def async_start_backfill(
    hass: HomeAssistant, entry: ConfigEntry, coordinator: SbmsCoordinator, sensors: SensorsFn
) -> HistoryBackfill | None:
    """Start remembering what this box's statistics hold, and filling what they miss; None
    without the recorder (no long-term statistics to fill)."""
    if "recorder" not in hass.config.components:
        return None
    backfill = HistoryBackfill(hass, entry, coordinator, sensors)
    await backfill.async_start()
    entry.async_on_unload(backfill.async_stop)
    return backfill
