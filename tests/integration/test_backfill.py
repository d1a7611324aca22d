"""When the integration asks the agent for missed history, and what it does with the answers.

Real Home Assistant with its recorder, real mosquitto; the documented FakeAgent, plus a
`history/get` responder whose answers each test chooses. What gets imported, and that the sums
continue Home Assistant's own, is proven on a simulated week in test_backfill_week.py.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.core import HomeAssistant, callback
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.sbms.backfill import HistoryBackfill, storage_key
from custom_components.sbms.diagnostics import async_get_config_entry_diagnostics
from custom_components.sbms.history import HOUR_S, hour_start
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.integration.fake_agent import FakeAgent, example

ENTRY_ID = "box"


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: Any) -> None:
    """The recorder must be set up before `hass` exists (conftest's fixture asks for `hass`)."""


# request -> the answer's payload (a dict, or raw text for a malformed one)
Answer = Callable[[dict[str, Any]], dict[str, Any] | str]


def accepted_empty(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": request["request_id"],
        "command": "history/get",
        "status": "accepted",
        "errors": [],
        "timestamp": time.time(),
        "interval_s": 120,
        "records": [],
        "next_from": None,
    }


def rejected(request: dict[str, Any]) -> dict[str, Any]:
    return {
        "request_id": request["request_id"],
        "command": "history/get",
        "status": "rejected",
        "errors": [{"field": "history", "reason": "no data log on this box"}],
        "timestamp": time.time(),
    }


def malformed(request: dict[str, Any]) -> dict[str, Any]:
    answer = accepted_empty(request)
    record = example("history_result")["records"][0]
    record["soc"] = [43.7, 43.7]  # mean and min, no max
    answer["records"] = [record]
    return answer


class HistoryResponder:
    """The agent's `history/get` side: records each request and sends the chosen answer."""

    def __init__(self, hass: HomeAssistant, agent: FakeAgent) -> None:
        self.hass = hass
        self.agent = agent
        self.answer: Answer = accepted_empty
        self.requests: list[dict[str, Any]] = []

    async def start(self) -> None:
        await mqtt.async_subscribe(
            self.hass, f"{self.agent.prefix}/history/get", self._on_request, qos=1
        )
        await mqtt_settled(self.hass)

    @callback
    def _on_request(self, message: ReceiveMessage) -> None:
        request = json.loads(message.payload)
        self.requests.append(request)
        answer = self.answer(request)
        self.hass.async_create_task(self.agent.publish("history/result", answer, retain=False))


@pytest.fixture
async def responder(hass: HomeAssistant, agent: FakeAgent) -> HistoryResponder:
    history = HistoryResponder(hass, agent)
    await history.start()
    return history


def _stored(hass_storage: dict[str, Any], data: Any) -> None:
    hass_storage[storage_key(ENTRY_ID)] = {
        "version": 1,
        "minor_version": 1,
        "key": storage_key(ENTRY_ID),
        "data": data,
    }


def _backfill(hass: HomeAssistant) -> HistoryBackfill:
    entry = hass.config_entries.async_get_entry(ENTRY_ID)
    assert entry is not None
    backfill = entry.runtime_data.backfill
    assert backfill is not None
    return backfill


POSTPONED = "postponed to the next reconnection"


def _caught_up(hass: HomeAssistant, covered: float) -> bool:
    """The first state after setup has been seen (it moves `covered_until` and adds the gap
    since `covered`) and every gap is filled. `not pending` alone also holds before that
    state arrives, which a loaded machine showed: the assertions then ran before the run."""
    backfill = _backfill(hass)
    return (
        backfill.covered_until is not None
        and backfill.covered_until > covered
        and not backfill.pending
    )


async def _postponed(hass: HomeAssistant, caplog: pytest.LogCaptureFixture, times: int = 1) -> None:
    """Until the back-fill gave up on a gap `times` times: the answer was handled, not only
    asked for (the run is a background task that `async_block_till_done` does not wait for,
    and the answer comes back through the broker)."""
    await wait_for(hass, lambda: caplog.text.count(POSTPONED) >= times)


async def test_after_a_restart_the_missed_hours_are_asked_for_a_page_at_a_time(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    covered = time.time() - 3 * HOUR_S
    _stored(hass_storage, {"covered_until": covered, "pending": []})

    await setup_box(agent, entry_id=ENTRY_ID)
    await wait_for(hass, lambda: _caught_up(hass, covered))

    # From the hour Home Assistant stopped in to the hour it is back in, exclusive.
    assert len(responder.requests) == 1
    request = responder.requests[0]
    assert request["from"] == hour_start(covered)
    assert request["to"] == hour_start(time.time())
    assert request["limit"] == 120
    assert request["request_id"].startswith("ha-")
    backfill = _backfill(hass)
    assert backfill.covered_until == pytest.approx(time.time(), abs=30)
    assert backfill.last_fill is not None
    assert backfill.last_fill.records == 0


async def test_the_first_start_asks_for_nothing(
    hass: HomeAssistant,
    *,
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    await setup_box(agent, entry_id=ENTRY_ID)
    await hass.async_block_till_done()

    assert responder.requests == []
    assert _backfill(hass).covered_until == pytest.approx(time.time(), abs=30)


async def test_a_gap_inside_the_current_hour_needs_no_request(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    now = time.time()
    covered = max(hour_start(now), now - 10)
    _stored(hass_storage, {"covered_until": covered, "pending": []})

    await setup_box(agent, entry_id=ENTRY_ID)
    await wait_for(hass, lambda: _caught_up(hass, covered))

    # The hour the gap is in is Home Assistant's own: it compiles it from what it has.
    assert responder.requests == []


async def test_a_rejected_request_keeps_the_gap_until_the_next_reconnection(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    covered = time.time() - 2 * HOUR_S
    _stored(hass_storage, {"covered_until": covered, "pending": []})
    responder.answer = rejected

    await setup_box(agent, entry_id=ENTRY_ID)
    await _postponed(hass, caplog)

    assert len(responder.requests) == 1
    backfill = _backfill(hass)
    assert backfill.pending == [(covered, pytest.approx(time.time(), abs=30))]
    assert "no data log on this box" in caplog.text

    # The agent goes away and comes back: the first gap is asked for again, and now answered.
    responder.answer = accepted_empty
    await agent.set_online(False)
    await wait_for(hass, lambda: not backfill.coordinator.data.available)
    await agent.set_online(True)
    await wait_for(hass, lambda: not backfill.pending)
    assert responder.requests[1]["from"] == hour_start(covered)


async def test_a_malformed_answer_fails_at_once_naming_the_field(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    _stored(hass_storage, {"covered_until": time.time() - 2 * HOUR_S, "pending": []})
    responder.answer = malformed

    # With a request timeout longer than any wait here, giving up at all proves it gave up on
    # the answer, not on the timeout: no clock margin that a busy machine could break.
    with patch("custom_components.sbms.coordinator.REQUEST_TIMEOUT_S", 3600.0):
        await setup_box(agent, entry_id=ENTRY_ID)
        await _postponed(hass, caplog)

    assert "history.records[0].soc" in caplog.text
    assert len(responder.requests) == 1
    assert len(_backfill(hass).pending) == 1


async def test_an_agent_without_a_data_log_is_not_asked(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    covered = time.time() - 2 * HOUR_S
    _stored(hass_storage, {"covered_until": covered, "pending": []})
    agent.announce["capabilities"]["history"] = False
    await agent.publish("announce", agent.announce)

    await setup_box(agent, entry_id=ENTRY_ID)
    await wait_for(hass, lambda: _caught_up(hass, covered))

    assert responder.requests == []


@pytest.mark.parametrize(
    "data",
    [
        {"covered_until": "yesterday", "pending": []},
        {"pending": [[1, 2]]},
        {"covered_until": 1.0, "pending": [["a", "b"]]},
        ["not", "an", "object"],
    ],
)
async def test_a_damaged_stored_state_is_logged_and_started_afresh(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
    data: Any,
) -> None:
    _stored(hass_storage, data)
    with caplog.at_level(logging.WARNING):
        entry = await setup_box(agent, entry_id=ENTRY_ID)

    assert "Ignoring the stored back-fill state of SBMS shed" in caplog.text
    assert responder.requests == []
    assert entry.runtime_data.coordinator.data.available  # the box works on
    assert _backfill(hass).covered_until == pytest.approx(time.time(), abs=30)


async def test_diagnostics_say_what_is_covered_and_what_waits(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    covered = time.time() - 2 * HOUR_S
    _stored(hass_storage, {"covered_until": covered, "pending": []})
    responder.answer = rejected
    entry: MockConfigEntry = await setup_box(agent, entry_id=ENTRY_ID)
    await _postponed(hass, caplog)

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)

    backfill = diagnostics["statistics_backfill"]
    assert backfill["covered_until"] == pytest.approx(time.time(), abs=30)
    assert backfill["pending"][0][0] == covered
    assert backfill["last_fill"] is None


async def test_the_stored_state_is_forgotten_with_the_entry(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    entry = await setup_box(agent, entry_id=ENTRY_ID)
    await hass.config_entries.async_unload(entry.entry_id)
    await wait_for(hass, lambda: storage_key(ENTRY_ID) in hass_storage)  # written on unload

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert storage_key(ENTRY_ID) not in hass_storage


async def test_what_is_covered_is_saved_while_states_keep_coming(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    """A state every few seconds must not postpone the save for ever (a power cut would lose
    all that was covered since the last restart)."""
    await setup_box(agent, entry_id=ENTRY_ID)
    for _ in range(5):
        await agent.set_state(timestamp=time.time())
        await hass.async_block_till_done()

    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=31))
    await wait_for(hass, lambda: storage_key(ENTRY_ID) in hass_storage)

    stored = hass_storage[storage_key(ENTRY_ID)]["data"]
    assert stored["covered_until"] == pytest.approx(time.time(), abs=30)
    assert stored["pending"] == []


async def test_a_long_gap_is_asked_for_a_day_at_a_time(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
) -> None:
    covered = time.time() - 2.5 * 86400
    _stored(hass_storage, {"covered_until": covered, "pending": []})

    await setup_box(agent, entry_id=ENTRY_ID)
    await wait_for(hass, lambda: _caught_up(hass, covered))

    first, last = hour_start(covered), hour_start(time.time())
    assert [(r["from"], r["to"]) for r in responder.requests] == [
        (first, first + 86400),
        (first + 86400, first + 2 * 86400),
        (first + 2 * 86400, last),
    ]


async def test_a_fill_stopped_midway_resumes_at_the_day_it_stopped_in(
    hass: HomeAssistant,
    *,
    hass_storage: dict[str, Any],
    agent: FakeAgent,
    responder: HistoryResponder,
    setup_box: SetupBox,
    caplog: pytest.LogCaptureFixture,
) -> None:
    covered = time.time() - 2.5 * 86400
    _stored(hass_storage, {"covered_until": covered, "pending": []})
    # The first day is answered, then the agent refuses (its log file is being replaced).
    responder.answer = lambda request: (
        accepted_empty(request) if len(responder.requests) == 1 else rejected(request)
    )

    await setup_box(agent, entry_id=ENTRY_ID)
    await _postponed(hass, caplog)

    assert len(responder.requests) == 2
    first = hour_start(covered)
    assert _backfill(hass).pending[0][0] == first + 86400
    await hass.config_entries.async_unload(ENTRY_ID)
    await wait_for(hass, lambda: storage_key(ENTRY_ID) in hass_storage)
    assert hass_storage[storage_key(ENTRY_ID)]["data"]["pending"][0][0] == first + 86400
