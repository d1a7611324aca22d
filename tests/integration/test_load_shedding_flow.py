"""Configuring optional loads in the UI: one config subentry per load, added and changed through
its subentry flow; bad combinations are refused in the form, and saving reloads the box so the
load's sensor and the shedding follow."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN, SUBENTRY_LOAD
from custom_components.sbms.shedding_manager import LOAD_STATE_KEY
from tests.helpers.hass import SetupBox
from tests.integration.fake_agent import FakeAgent, unique_id
from tests.integration.switched_loads import (
    box_with_input_booleans,
    reloaded,
    start_flow,
    submit,
)

GOOD = {
    "entity_id": "input_boolean.heater",
    "priority": 3,
    "shed_below": 35,
    "restore_above": 55,
    "min_off_time": 10,
    "min_on_time": 2,
}


@pytest.fixture
async def box(hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox) -> MockConfigEntry:
    return await box_with_input_booleans(
        hass, agent, setup_box, {"heater": {"name": "Water heater"}, "ac": {}}
    )


async def start(hass: HomeAssistant, entry: MockConfigEntry, **context: Any) -> dict[str, Any]:
    return await start_flow(hass, entry, SUBENTRY_LOAD, **context)


def sensor_ids(hass: HomeAssistant, entry: MockConfigEntry) -> set[str]:
    prefix = unique_id(f"{LOAD_STATE_KEY}_")
    return {
        entity.unique_id.removeprefix(prefix)
        for entity in er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
        if entity.unique_id.startswith(prefix)
    }


async def test_adding_a_load_creates_its_subentry_and_sensor(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await submit(hass, result["flow_id"], GOOD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Water heater"
    (subentry,) = box.subentries.values()
    assert subentry.subentry_type == SUBENTRY_LOAD
    assert subentry.unique_id == "input_boolean.heater"
    assert dict(subentry.data) == GOOD
    await reloaded(hass, box)
    assert sensor_ids(hass, box) == {subentry.subentry_id}
    (load,) = box.runtime_data.shedding.loads
    assert (load.priority, load.shed_below, load.restore_above) == (3, 35.0, 55.0)
    assert (load.min_off_s, load.min_on_s) == (600.0, 120.0)
    entity_id = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, unique_id(f"{LOAD_STATE_KEY}_{subentry.subentry_id}")
    )
    assert entity_id is not None
    sensor = hass.states.get(entity_id)
    assert sensor is not None
    assert sensor.attributes["friendly_name"] == "SBMS shed Load shedding Water heater"


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"restore_above": 35}, {"restore_above": "restore_not_above_shed"}),
        ({"restore_above": 20}, {"restore_above": "restore_not_above_shed"}),
        ({"shed_below": 100, "restore_above": 100}, {"shed_below": "invalid_soc"}),
        ({"priority": 2.5}, {"priority": "invalid_priority"}),
    ],
)
async def test_bad_combinations_are_refused_in_the_form(
    hass: HomeAssistant, box: MockConfigEntry, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    result = await start(hass, box)
    result = await submit(hass, result["flow_id"], {**GOOD, **changes})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert not box.subentries
    result = await submit(hass, result["flow_id"], GOOD)  # corrected: accepted
    assert result["type"] is FlowResultType.CREATE_ENTRY
    # The save reloads the box: wait for it here (left pending, the teardown waited about
    # 55 s for it, every case).
    await reloaded(hass, box)
    assert len(box.subentries) == 1


async def test_the_same_entity_cannot_be_added_twice(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    await submit(hass, result["flow_id"], GOOD)
    await reloaded(hass, box)
    result = await start(hass, box)
    result = await submit(hass, result["flow_id"], {**GOOD, "priority": 9})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"entity_id": "load_already_configured"}
    assert len(box.subentries) == 1


async def test_reconfigure_changes_the_load_and_reloads_the_box(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    await submit(hass, result["flow_id"], GOOD)
    await reloaded(hass, box)
    (subentry_id,) = box.subentries
    result = dict(
        await hass.config_entries.subentries.async_init(
            (box.entry_id, SUBENTRY_LOAD),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
        )
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "reconfigure"
    result = await submit(hass, result["flow_id"], {**GOOD, "restore_above": 30})
    assert result["errors"] == {"restore_above": "restore_not_above_shed"}
    changed = {**GOOD, "entity_id": "input_boolean.ac", "shed_below": 20, "restore_above": 70}
    result = await submit(hass, result["flow_id"], changed)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await reloaded(hass, box)
    (load,) = box.runtime_data.shedding.loads
    assert (load.entity_id, load.shed_below, load.restore_above) == ("input_boolean.ac", 20, 70)
    assert box.subentries[subentry_id].title == "ac"
    assert sensor_ids(hass, box) == {subentry_id}
