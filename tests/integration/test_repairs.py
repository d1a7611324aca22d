"""Repair issues, raised and cleared by what the agent does: unsupported protocol and cell
imbalance, the two a user can act on. An agent offline for long and a rejected change are
no repair issues (repairs.py says why)."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from pathlib import Path

import pytest
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.sbms.const import DOMAIN
from custom_components.sbms.coordinator import AgentRejectedError, SbmsCoordinator
from tests.helpers.hass import SetupBox, mqtt_settled, wait_for
from tests.integration.fake_agent import FakeAgent

EN_JSON = Path(__file__).resolve().parents[2] / "custom_components" / "sbms" / "translations"
T0 = 1780308000.0


def _issue(hass: HomeAssistant, key: str, entry: MockConfigEntry) -> ir.IssueEntry | None:
    return ir.async_get(hass).async_get_issue(DOMAIN, f"{key}_{entry.entry_id}")


def _placeholders_in_translation(key: str) -> set[str]:
    issue = json.loads((EN_JSON / "en.json").read_text("utf-8"))["issues"][key]
    return set(re.findall(r"\{(\w+)\}", issue["title"] + issue["description"]))


def _check_translation(issue: ir.IssueEntry) -> None:
    """Every placeholder the translation uses is filled (HA shows raw braces otherwise)."""
    assert issue.translation_key is not None
    needed = _placeholders_in_translation(issue.translation_key)
    assert needed <= set(issue.translation_placeholders or {})


def _passes(hass: HomeAssistant, minutes: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(minutes=minutes))


# --- no notices a user cannot act on -------------------------------------------------------


async def test_offline_for_long_and_a_rejected_change_raise_no_issue(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    agent.responder = lambda suffix, request: [
        {"field": "config.thresholds.lvd", "reason": "must be above thresholds.uvlo"}
    ]
    with pytest.raises(AgentRejectedError) as caught:
        await coordinator.async_set_config({"thresholds": {"lvd": 2.0}})
    assert "must be above thresholds.uvlo" in str(caught.value)  # the caller has the reason

    await agent.set_online(False)
    await wait_for(hass, lambda: not coordinator.data.online)
    _passes(hass, 60)
    await hass.async_block_till_done()
    assert [key for (domain, key) in ir.async_get(hass).issues if domain == DOMAIN] == []
    translations = json.loads((EN_JSON / "en.json").read_text("utf-8"))["issues"]
    assert set(translations) == {"unsupported_protocol", "cell_imbalance"}


# --- protocol version ----------------------------------------------------------------------


async def test_unsupported_protocol_raises_an_issue_and_entities_go_unavailable(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    newer = {**agent.announce, "protocol_version": 2, "cells": "shape changed"}
    await agent.publish("announce", newer)
    await wait_for(hass, lambda: _issue(hass, "unsupported_protocol", entry) is not None)

    issue = _issue(hass, "unsupported_protocol", entry)
    assert issue is not None
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["version"] == "2"
    assert issue.translation_placeholders["supported"] == "1"
    _check_translation(issue)
    assert not coordinator.data.available
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    shown = [hass.states.get(e.entity_id) for e in entities if not e.disabled]
    non_connectivity = [s for s in shown if s is not None and s.domain != "binary_sensor"]
    assert non_connectivity
    assert all(s.state == STATE_UNAVAILABLE for s in non_connectivity)
    # Its state is not read while the protocol is unknown.
    soc_before = agent.state["soc"]
    await agent.set_state(soc=1.0)
    await mqtt_settled(hass)
    assert coordinator.data.state is not None
    assert coordinator.data.state.soc == soc_before
    assert coordinator.data.announce.protocol_version == 1  # the known announce is kept

    await agent.publish("announce", agent.announce)
    await wait_for(hass, lambda: _issue(hass, "unsupported_protocol", entry) is None)
    assert coordinator.data.available


# --- cell imbalance ------------------------------------------------------------------------


async def _states(agent: FakeAgent, *deltas: tuple[float, float]) -> None:
    """Publish states with (seconds after T0, cell delta)."""
    for offset, delta in deltas:
        await agent.set_state(timestamp=T0 + offset, cell_delta=delta)


async def test_cell_imbalance_for_30_minutes_raises_an_issue_cleared_with_hysteresis(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    await _states(agent, (0, 0.12), (1000, 0.15), (1799, 0.11))
    await wait_for(hass, lambda: coordinator.data.state.timestamp == T0 + 1799)  # type: ignore[union-attr]
    assert _issue(hass, "cell_imbalance", entry) is None  # 29 min 59 s: not yet

    await _states(agent, (1800, 0.125))
    await wait_for(hass, lambda: _issue(hass, "cell_imbalance", entry) is not None)
    issue = _issue(hass, "cell_imbalance", entry)
    assert issue is not None
    assert issue.translation_placeholders is not None
    assert issue.translation_placeholders["delta_mv"] == "125"
    assert issue.translation_placeholders["threshold_mv"] == "100"
    _check_translation(issue)

    # Between the clear level (80 mV) and the threshold: the issue stays.
    await _states(agent, (1900, 0.09))
    await wait_for(hass, lambda: coordinator.data.state.timestamp == T0 + 1900)  # type: ignore[union-attr]
    assert _issue(hass, "cell_imbalance", entry) is not None

    await _states(agent, (2000, 0.07))
    await wait_for(hass, lambda: _issue(hass, "cell_imbalance", entry) is None)


async def test_imbalance_that_recovers_in_between_starts_over(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    await _states(agent, (0, 0.12), (1000, 0.05), (1200, 0.12), (2000, 0.12))
    await wait_for(hass, lambda: coordinator.data.state.timestamp == T0 + 2000)  # type: ignore[union-attr]
    assert _issue(hass, "cell_imbalance", entry) is None  # only 800 s since it came back


async def test_stale_measurements_do_not_count_as_imbalance(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    agent.state["measurement_ok"] = False
    await _states(agent, (0, 0.3), (3600, 0.3))
    await wait_for(hass, lambda: coordinator.data.state.timestamp == T0 + 3600)  # type: ignore[union-attr]
    assert _issue(hass, "cell_imbalance", entry) is None
