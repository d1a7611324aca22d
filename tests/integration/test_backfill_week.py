"""Issue 8: simulated days, Home Assistant stopped for six hours in the middle, no gap after.

Real parts: the simulated 8S box and the real agent code (controller, aggregator, data log,
`HistoryReader`, payload builders) make four days of records and states; a real mosquitto
carries them; two Home Assistant instances in turn, with the real recorder on one SQLite file,
compile their own statistics from the states they receive and, after the restart, import what
the integration back-fills. Home Assistant's wall clock (state timestamps, `dt_util.utcnow`) is
simulated and moved by the test; the event loop and the MQTT clients keep real time, so the
broker connection lives while days pass in a minute (freezegun freezes the loop's clock
too and loses the connection).

The test plays the agent's MQTT side itself (retained announce, status and config, a state
every 5 minutes while Home Assistant runs, answers to `history/get` from the data log), because
the real agent cannot run days in seconds against a wall clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import time
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from unittest.mock import patch

import aiomqtt
import pytest
from homeassistant import loader
from homeassistant.components.recorder.statistics import statistics_during_period
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.recorder import get_instance
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_test_home_assistant,
)
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from custom_components.sbms import ENTRY_MINOR_VERSION, ENTRY_VERSION
from custom_components.sbms.const import CONF_AGENT_ID, CONF_SERIAL, CONF_TOPIC_PREFIX, DOMAIN
from edge_agent.control.model import ControlReport
from edge_agent.datalog.aggregator import DataAggregator
from edge_agent.mqtt.payloads import (
    announce_payload,
    config_payload,
    encode,
    history_result_payload,
    state_payload,
)
from edge_agent.mqtt.topics import Topics
from edge_agent.runtime.history import HistoryReader
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.data_log import DataLogStore, Record
from tests.helpers.hass import connect_mqtt, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker

pytestmark = pytest.mark.slow

AGENT_ID = "week"
SERIAL = "SIM-WEEK"
INTERVAL_S = 120
STEP_S = 300  # a state, and one short-term statistics period, every 5 minutes
HOUR = 3600
START = int(BoxSpec().start)  # the simulated box starts at 2026-06-01 00:00 UTC
# Home Assistant joins at the start of day 3 (the box has run two days: its counters are well
# under way), not at the box's start: the days before add minutes of run time and nothing to
# what is asserted, which is about the gap and the sums across it.
HA_START = START + 2 * 86400
STOP = START + 3 * 86400 + 12 * HOUR + 20 * 60  # Home Assistant stops at 12:20 on day 4
RESTART = STOP + 6 * HOUR  # ... and is back six hours later, at 18:20
END = START + 4 * 86400 + 6 * HOUR  # ... and runs until 06:00 on day 5
GAP_HOURS = range(STOP // HOUR * HOUR + HOUR, RESTART // HOUR * HOUR, HOUR)  # 13:00 to 17:00


class SimulatedClock:
    """Home Assistant's wall clock in this test: where the week is, moved by the test."""

    def __init__(self, at: float) -> None:
        self.at = at

    def move_to(self, at: float) -> None:
        self.at = at

    def time(self) -> float:
        return self.at

    def utcnow(self) -> datetime:
        return datetime.fromtimestamp(self.at, UTC)


class _TimeModule:
    """`time` as homeassistant.core sees it: `time()` is the simulated clock (it stamps states
    and events), everything else (monotonic, sleep) the real module. Entities stamp their
    states with `homeassistant.helpers.entity.timer`, patched alike."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock

    def time(self) -> float:
        return self._clock.time()

    def __getattr__(self, name: str) -> Any:
        return getattr(time, name)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """This test makes its own Home Assistant instances (conftest's fixture needs `hass`)."""


@pytest.fixture
def persistent_database() -> bool:
    """One SQLite file for both Home Assistant instances, as across a real restart."""
    return True


@pytest.fixture
def enable_missing_statistics() -> bool:
    """At start the recorder compiles the periods it missed, as a real one does."""
    return True


@dataclasses.dataclass
class SimulatedWeek:
    """The agent's side of the week: its data log, and its state at every 5-minute step."""

    log_path: Path
    records: list[Record]
    states: dict[int, bytes]  # step time -> state payload
    announce: dict[str, Any]
    config: dict[str, Any]


def _simulate_week(directory: Path) -> SimulatedWeek:
    spec = BoxSpec.for_cells(8)
    config = simulated_config(spec)
    config = dataclasses.replace(
        config,
        agent_id=AGENT_ID,
        timing=dataclasses.replace(config.timing, sample_interval_s=30.0),
        control=dataclasses.replace(config.control, stale_after_s=120.0),
    )
    system = SimulatedSystem(spec, config)
    aggregator = DataAggregator(INTERVAL_S)
    records: list[Record] = []
    states: dict[int, bytes] = {}

    def collect(report: ControlReport) -> None:
        if (record := aggregator.add(report)) is not None:
            records.append(record)
        if round(report.timestamp) % STEP_S == 0:
            states[round(report.timestamp)] = encode(state_payload(report))

    system.run(END - START + INTERVAL_S, on_report=collect)
    path = directory / "data_log.db"
    with DataLogStore(path) as store:
        for record in records:
            store.append(record)
        stored = store.records(0, 2**40, limit=10**6)  # as the agent serves them: quantized
    topics = Topics("sbms", AGENT_ID)
    announce = announce_payload(config, "simulator", SERIAL, [], topics=topics, history=True)
    return SimulatedWeek(path, stored, states, announce, config_payload(config, 1))


@pytest.fixture(scope="module")
def week(tmp_path_factory: pytest.TempPathFactory) -> SimulatedWeek:
    return _simulate_week(tmp_path_factory.mktemp("week"))


class AgentSide:
    """The agent's MQTT side over its own client: retained topics, states, history answers."""

    def __init__(self, broker: MosquittoBroker, week: SimulatedWeek) -> None:
        self.broker = broker
        self.week = week
        self.topics = Topics("sbms", AGENT_ID)
        self.reader = HistoryReader(week.log_path, INTERVAL_S)
        self.requests: list[dict[str, Any]] = []
        self._client: aiomqtt.Client | None = None

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[AgentSide]:
        client = aiomqtt.Client(self.broker.host, self.broker.port, identifier="week-agent")
        async with client:
            self._client = client
            await client.subscribe(self.topics.history_get, qos=1)
            answering = asyncio.create_task(self._answer(client))
            await client.publish(self.topics.announce, encode(self.week.announce), 1, True)
            await client.publish(self.topics.config, encode(self.week.config), 1, True)
            await client.publish(self.topics.status, b"online", 1, True)
            try:
                yield self
            finally:
                answering.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await answering
                self.reader.close()

    async def publish_state(self, at: int) -> None:
        assert self._client is not None
        await self._client.publish(self.topics.state, self.week.states[at], 1, True)

    async def _answer(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            payload = bytes(message.payload) if isinstance(message.payload, bytes) else b""
            self.requests.append(json.loads(payload))
            result = await self.reader.answer(payload)
            answer = history_result_payload(
                result.request_id, result.errors, dt_util.utcnow().timestamp(), page=result.page
            )
            await client.publish(self.topics.history_result, encode(answer), 1, False)


@contextlib.asynccontextmanager
async def home_assistant(
    config_dir: Path, recorder: Any, broker: MosquittoBroker
) -> AsyncIterator[HomeAssistant]:
    """A Home Assistant with the recorder on the shared file and MQTT on the test broker."""
    async with async_test_home_assistant(config_dir=str(config_dir)) as hass:
        hass.data.pop(loader.DATA_CUSTOM_COMPONENTS)
        async with recorder(hass):
            await connect_mqtt(hass, broker, discovery=False)
            try:
                yield hass
            finally:
                # As Home Assistant's stop does, minus the MQTT client it leaves to the fixture
                # in tests: unloaded here, or it would go on receiving the next instance's data.
                for config_entry in reversed(hass.config_entries.async_entries()):
                    await hass.config_entries.async_unload(config_entry.entry_id)
                await hass.async_stop(force=True)


async def _add_box(hass: HomeAssistant, week: SimulatedWeek) -> MockConfigEntry:
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="SBMS week",
        unique_id=week.announce["serial"],
        entry_id="week_entry",
        data={
            CONF_AGENT_ID: AGENT_ID,
            CONF_TOPIC_PREFIX: f"sbms/{AGENT_ID}",
            CONF_SERIAL: week.announce["serial"],
        },
        version=ENTRY_VERSION,
        minor_version=ENTRY_MINOR_VERSION,
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
    return entry


async def _run_until(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    agent: AgentSide,
    clock: SimulatedClock,
    *,
    start: int,
    end: int,
) -> None:
    """Live Home Assistant from `start` to `end`: a state every 5 minutes, then the recorder
    compiles the period that ended (as its own timer would, 10 s after the period)."""
    for at in range(start, end + 1, STEP_S):
        clock.move_to(at)
        await agent.publish_state(at)
        await wait_for(hass, lambda at=at: _state_time(entry) == at)  # type: ignore[misc]
        do_adhoc_statistics(hass, start=datetime.fromtimestamp(at - STEP_S, UTC))
        if at % HOUR == 0:
            await async_wait_recording_done(hass)
    await async_wait_recording_done(hass)


def _state_time(entry: MockConfigEntry) -> float | None:
    state = entry.runtime_data.coordinator.data.state
    return None if state is None else state.timestamp


def _entity_ids(hass: HomeAssistant) -> dict[str, str]:
    registry = er.async_get(hass)
    return {
        entity.unique_id.removeprefix(f"{SERIAL}_"): entity.entity_id
        for entity in registry.entities.values()
        if entity.platform == DOMAIN and entity.domain == "sensor"
    }


def _hour_records(records: list[Record], hour: int) -> list[Record]:
    return [r for r in records if hour <= r.start < hour + HOUR]


@pytest.fixture
def clock() -> Iterator[SimulatedClock]:
    simulated = SimulatedClock(HA_START)
    with (
        patch("homeassistant.core.time", _TimeModule(simulated)),
        patch("homeassistant.helpers.entity.timer", simulated.time),
        patch.object(dt_util, "utcnow", simulated.utcnow),
    ):
        yield simulated


async def test_a_six_hour_stop_is_back_filled_from_the_agents_log(
    mqtt_broker: MosquittoBroker,
    async_test_recorder: Any,
    week: SimulatedWeek,
    clock: SimulatedClock,
    tmp_path: Path,
) -> None:
    config_dir = tmp_path / "config"
    config_dir.mkdir()
    agent = AgentSide(mqtt_broker, week)
    async with agent.running():
        # Day 3 to day 4 at 12:20: Home Assistant live, compiling its own statistics.
        clock.move_to(HA_START + STEP_S)
        await agent.publish_state(HA_START + STEP_S)
        async with home_assistant(config_dir, async_test_recorder, mqtt_broker) as hass:
            entry = await _add_box(hass, week)
            await _run_until(hass, entry, agent, clock, start=HA_START + STEP_S, end=STOP)
            ids = _entity_ids(hass)
            before = await get_instance(hass).async_add_executor_job(
                _hourly, hass, set(ids.values())
            )
        assert not agent.requests  # nothing missed yet: no back-fill

        # Six hours without Home Assistant; the agent logs on. Back at 18:20.
        clock.move_to(RESTART)
        await agent.publish_state(RESTART)
        async with home_assistant(config_dir, async_test_recorder, mqtt_broker) as hass:
            entry = await _add_box(hass, week)
            await wait_for(hass, lambda: bool(agent.requests), timeout_s=20)
            await _wait_backfill_done(hass, entry)
            await _run_until(hass, entry, agent, clock, start=RESTART + STEP_S, end=END)
            assert _entity_ids(hass) == ids
            stats = await get_instance(hass).async_add_executor_job(
                _hourly, hass, set(ids.values())
            )

    # The agent was asked for the missed hours only, a page at a time.
    assert agent.requests[0]["from"] == STOP // HOUR * HOUR
    assert agent.requests[-1]["to"] == RESTART // HOUR * HOUR
    assert all(request["limit"] == 120 for request in agent.requests)
    assert len(agent.requests) == 2  # 12:00 to 18:00: 180 records, pages of 120 and 60

    # Home Assistant's own rows are untouched, the partial hour it stopped in included.
    for entity_id, rows in before.items():
        for hour, row in rows.items():
            assert stats[entity_id][hour] == row, (entity_id, hour)
    assert all(hour not in before[ids["voltage"]] for hour in GAP_HOURS)
    _check_gap_means(stats, ids, week.records)
    _check_energy_is_continuous(stats, ids, week)


async def _wait_backfill_done(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    backfill = entry.runtime_data.backfill
    assert backfill is not None
    await wait_for(hass, lambda: not backfill.pending, timeout_s=30)
    await async_wait_recording_done(hass)


def _hourly(hass: HomeAssistant, ids: set[str]) -> dict[str, dict[int, dict[str, Any]]]:
    rows = statistics_during_period(
        hass,
        dt_util.utc_from_timestamp(START),
        dt_util.utc_from_timestamp(END),
        ids,
        "hour",
        None,
        {"mean", "min", "max", "state", "sum"},
    )
    return {entity_id: {int(row["start"]): dict(row) for row in r} for entity_id, r in rows.items()}


def _check_gap_means(
    stats: dict[str, dict[int, dict[str, Any]]], ids: dict[str, str], records: list[Record]
) -> None:
    """Every gap hour of a measurement is the agent's records of that hour, exactly."""
    for key, field in (("voltage", "pack_voltage"), ("soc", "soc"), ("pv_power", "pv_power")):
        hours = stats[ids[key]]
        for hour in GAP_HOURS:
            in_hour = [getattr(r, field) for r in _hour_records(records, hour)]
            assert len(in_hour) == 30
            expected_mean = sum(s.mean for s in in_hour) / len(in_hour)
            assert hours[hour]["mean"] == pytest.approx(expected_mean, abs=1e-6), (key, hour)
            assert hours[hour]["min"] == pytest.approx(min(s.minimum for s in in_hour), abs=1e-6)
            assert hours[hour]["max"] == pytest.approx(max(s.maximum for s in in_hour), abs=1e-6)
        # The sun was up: the hours are not all alike (a flat line would pass the shape).
        assert len({round(hours[hour]["mean"], 3) for hour in GAP_HOURS}) > 1
    # The cells: the log keeps each cell's mean and the extremes; statistics in V and in mV.
    for hour in GAP_HOURS:
        in_hour = _hour_records(records, hour)
        lowest = stats[ids["cell_min"]][hour]
        assert lowest["min"] == pytest.approx(min(r.cell_min or 9.0 for r in in_hour), abs=1e-6)
        spread = stats[ids["cell_delta"]][hour]  # the sensor shows millivolts
        assert spread["max"] == pytest.approx(max(r.cell_delta or 0.0 for r in in_hour) * 1000)
        assert spread["mean"] == pytest.approx(
            sum(max(r.cells) - min(r.cells) for r in in_hour) / len(in_hour) * 1000, abs=1e-6
        )


def _check_energy_is_continuous(
    stats: dict[str, dict[int, dict[str, Any]]], ids: dict[str, str], week: SimulatedWeek
) -> None:
    """The energy of every hour is counted once: the hourly changes of the sum are the rise of
    the counter the row ends on, across the gap, so there is no step and no double count."""
    for key, counter in (("pv_energy", "pv_wh"), ("load_energy", "load_wh")):
        hours = stats[ids[key]]
        starts = sorted(hours)
        # Every hour has a row: Home Assistant's own or back-filled.
        assert starts == list(range(starts[0], starts[-1] + HOUR, HOUR)), key
        ends_at = {hour: _row_counter_kwh(week, hour, counter) for hour in starts}
        for hour in starts:
            assert hours[hour]["state"] == pytest.approx(ends_at[hour], abs=1e-4), (key, hour)
        for hour in starts[1:]:
            change = hours[hour]["sum"] - hours[hour - HOUR]["sum"]
            expected = ends_at[hour] - ends_at[hour - HOUR]
            assert change == pytest.approx(expected, abs=1e-4), (key, hour)
        total = hours[starts[-1]]["sum"] - hours[starts[0]]["sum"]
        assert total == pytest.approx(ends_at[starts[-1]] - ends_at[starts[0]], abs=1e-4)
        assert total > 1.0  # kWh: days of sun and loads, not an empty comparison


def _row_counter_kwh(week: SimulatedWeek, hour: int, counter: str) -> float:
    """The counter an hour's row ends on: for a back-filled hour the agent's at the end of the
    hour; for Home Assistant's own the last state it compiled in the hour (the state at :55,
    or at 12:15 in the hour it stopped in: the state at 12:20 opened a period never compiled)."""
    if hour in GAP_HOURS:
        return _hour_records(week.records, hour)[-1].counters[counter] / 1000
    last_state = min(hour + HOUR - STEP_S, STOP - STEP_S) if hour < STOP else hour + HOUR - STEP_S
    return float(json.loads(week.states[last_state])["counters"][counter]) / 1000
