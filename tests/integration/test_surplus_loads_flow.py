"""Configuring surplus loads in the UI (issue 19): a subentry type of its own beside the optional
loads; bad values are refused in the form and nothing is saved, a load is either shed-able or a
surplus load (each form names the entity it refuses), saving reloads the box."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.config_entries import SOURCE_RECONFIGURE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.translation import async_get_translations
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN, SUBENTRY_LOAD, SUBENTRY_SURPLUS_LOAD
from custom_components.sbms.surplus_manager import SURPLUS_STATE_KEY
from tests.helpers.hass import SetupBox
from tests.integration.fake_agent import FakeAgent, unique_id
from tests.integration.switched_loads import (
    box_with_input_booleans,
    reloaded,
    start_flow,
    submit,
)

GOOD = {
    "entity_id": "input_boolean.boiler",
    "priority": 7,
    "min_soc": 92,
    "max_discharge_power": 150,
    "discharge_time": 90,
    "min_on_time": 5,
    "min_off_time": 10,
}
SHED = {
    "entity_id": "input_boolean.boiler",
    "priority": 3,
    "shed_below": 35,
    "restore_above": 55,
    "min_off_time": 10,
    "min_on_time": 2,
}


@pytest.fixture
async def box(hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox) -> MockConfigEntry:
    return await box_with_input_booleans(
        hass, agent, setup_box, {"boiler": {"name": "Boiler"}, "pump": {}}
    )


async def start(
    hass: HomeAssistant, entry: MockConfigEntry, subentry_type: str = SUBENTRY_SURPLUS_LOAD
) -> dict[str, Any]:
    return await start_flow(hass, entry, subentry_type)


async def error_text(hass: HomeAssistant, subentry_type: str, key: str, entity: str) -> str:
    """The form's error as the frontend shows it: the translation with its placeholder."""
    strings = await async_get_translations(hass, "en", "config_subentries", [DOMAIN])
    text = strings[f"component.{DOMAIN}.config_subentries.{subentry_type}.error.{key}"]
    return text.replace("{entity}", entity)


async def test_adding_a_surplus_load_creates_its_subentry_sensor_and_switch(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    result = await submit(hass, result["flow_id"], GOOD)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "Boiler"
    (subentry,) = box.subentries.values()
    assert subentry.subentry_type == SUBENTRY_SURPLUS_LOAD
    assert dict(subentry.data) == GOOD
    await reloaded(hass, box)
    (load,) = box.runtime_data.surplus.loads
    assert (load.priority, load.min_soc, load.max_discharge_w, load.discharge_s) == (
        7,
        92.0,
        150.0,
        90.0,
    )
    assert (load.min_on_s, load.min_off_s) == (300.0, 600.0)
    assert box.runtime_data.shedding.loads == ()
    registry = er.async_get(hass)
    sensor = registry.async_get_entity_id(
        "sensor", DOMAIN, unique_id(f"{SURPLUS_STATE_KEY}_{subentry.subentry_id}")
    )
    assert sensor is not None
    assert hass.states.get(sensor).attributes["friendly_name"] == "SBMS shed Surplus load Boiler"  # type: ignore[union-attr]
    assert registry.async_get_entity_id("switch", DOMAIN, unique_id("surplus_loads")) is not None


@pytest.mark.parametrize(
    ("changes", "errors"),
    [
        ({"priority": 2.5}, {"priority": "invalid_priority"}),
        ({"min_soc": 100}, {"min_soc": "invalid_soc"}),
    ],
)
async def test_bad_values_are_refused_and_nothing_is_saved(
    hass: HomeAssistant, box: MockConfigEntry, changes: dict[str, Any], errors: dict[str, str]
) -> None:
    result = await start(hass, box)
    result = await submit(hass, result["flow_id"], {**GOOD, **changes})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == errors
    assert not box.subentries
    assert box.runtime_data.surplus.loads == ()
    result = await submit(hass, result["flow_id"], GOOD)  # corrected: accepted
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_a_shed_able_load_cannot_also_be_a_surplus_load_and_the_error_names_it(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box, SUBENTRY_LOAD)
    assert (await submit(hass, result["flow_id"], SHED))["type"] is FlowResultType.CREATE_ENTRY
    await reloaded(hass, box)
    result = await start(hass, box)
    result = await submit(hass, result["flow_id"], GOOD)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"entity_id": "load_is_shed"}
    assert result["description_placeholders"] == {"entity": "input_boolean.boiler"}
    text = await error_text(hass, SUBENTRY_SURPLUS_LOAD, "load_is_shed", "input_boolean.boiler")
    assert text.startswith("input_boolean.boiler is already an optional load")
    assert [s.subentry_type for s in box.subentries.values()] == [SUBENTRY_LOAD]
    # Another entity is fine.
    result = await submit(hass, result["flow_id"], {**GOOD, "entity_id": "input_boolean.pump"})
    assert result["type"] is FlowResultType.CREATE_ENTRY


async def test_a_surplus_load_cannot_also_be_shed_able_and_the_error_names_it(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    assert (await submit(hass, result["flow_id"], GOOD))["type"] is FlowResultType.CREATE_ENTRY
    await reloaded(hass, box)
    result = await start(hass, box, SUBENTRY_LOAD)
    result = await submit(hass, result["flow_id"], SHED)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"entity_id": "load_is_surplus"}
    text = await error_text(hass, SUBENTRY_LOAD, "load_is_surplus", "input_boolean.boiler")
    assert text.startswith("input_boolean.boiler is already a surplus load")
    assert len(box.subentries) == 1
    assert box.runtime_data.shedding.loads == ()


async def test_the_same_entity_cannot_be_a_surplus_load_twice(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box)
    await submit(hass, result["flow_id"], GOOD)
    await reloaded(hass, box)
    result = await start(hass, box)
    result = await submit(hass, result["flow_id"], {**GOOD, "priority": 1})
    assert result["errors"] == {"entity_id": "load_already_configured"}
    assert len(box.subentries) == 1


async def test_reconfigure_changes_the_load_and_refuses_a_shed_able_one(
    hass: HomeAssistant, box: MockConfigEntry
) -> None:
    result = await start(hass, box, SUBENTRY_LOAD)
    await submit(hass, result["flow_id"], {**SHED, "entity_id": "input_boolean.pump"})
    await reloaded(hass, box)
    result = await start(hass, box)
    await submit(hass, result["flow_id"], GOOD)
    await reloaded(hass, box)
    (subentry_id,) = [
        key for key, sub in box.subentries.items() if sub.subentry_type == SUBENTRY_SURPLUS_LOAD
    ]
    result = dict(
        await hass.config_entries.subentries.async_init(
            (box.entry_id, SUBENTRY_SURPLUS_LOAD),
            context={"source": SOURCE_RECONFIGURE, "subentry_id": subentry_id},
        )
    )
    assert result["step_id"] == "reconfigure"
    result = await submit(hass, result["flow_id"], {**GOOD, "entity_id": "input_boolean.pump"})
    assert result["errors"] == {"entity_id": "load_is_shed"}
    assert box.subentries[subentry_id].data["entity_id"] == "input_boolean.boiler"
    result = await submit(hass, result["flow_id"], {**GOOD, "min_soc": 80})
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    await reloaded(hass, box)
    (load,) = box.runtime_data.surplus.loads
    assert load.min_soc == 80.0
