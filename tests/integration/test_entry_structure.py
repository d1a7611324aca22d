"""How an entry is held: its runtime data (nothing in `hass.data`), its identity (the announced
serial, migrated from the agent-id ids of version 1), the entry data it keeps, the one settings
catalogue that numbers and the settings form share, and an agent client free of Home
Assistant."""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components.number import ATTR_MAX, ATTR_MIN, ATTR_STEP
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er

from custom_components import sbms
from custom_components.sbms import ENTRY_MINOR_VERSION, ENTRY_VERSION
from custom_components.sbms.const import CONF_AGENT_ID, CONF_SERIAL, CONF_TOPIC_PREFIX, DOMAIN
from custom_components.sbms.runtime_data import SbmsRuntimeData
from custom_components.sbms.settings import SETTINGS
from tests.helpers.hass import SetupBox, box_device, wait_for
from tests.integration.fake_agent import DEVICE_IDENTIFIER, SERIAL, FakeAgent, unique_id

PACKAGE = Path(sbms.__file__).parent

# Entities of the box as version 1 registered them: `<agent_id>_<key><suffix>`.
LEGACY_ENTITIES = {
    ("sensor", "shed_soc"): "sensor.my_battery_soc",
    ("sensor", "shed_cell_voltage_3"): "sensor.sbms_shed_cell_3_voltage",
    ("binary_sensor", "shed_connected"): "binary_sensor.sbms_shed_agent_connected",
    ("select", "shed_output_type_extio4"): "select.sbms_shed_extio4_type",
    ("switch", "shed_hold_off_extio3"): "switch.sbms_shed_hold_extio3_off",
    ("number", "shed_threshold_hvd"): "number.sbms_shed_hvd",
}


async def test_an_entry_of_version_1_and_its_entities_move_to_serial_ids(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    entry = agent.legacy_config_entry()
    entry.add_to_hass(hass)
    device = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id,
        identifiers={(DOMAIN, "shed")},
        name="SBMS shed",
        serial_number=SERIAL,
    )
    registry = er.async_get(hass)
    for (platform, old_id), entity_id in LEGACY_ENTITIES.items():
        created = registry.async_get_or_create(
            platform,
            DOMAIN,
            old_id,
            config_entry=entry,
            device_id=device.id,
            suggested_object_id=entity_id.split(".", 1)[1],
        )
        assert created.entity_id == entity_id

    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()

    assert entry.state is ConfigEntryState.LOADED
    assert (entry.version, entry.minor_version) == (ENTRY_VERSION, ENTRY_MINOR_VERSION)
    assert entry.unique_id == SERIAL
    # What identifies the agent stays; the announce is no longer cached in the entry.
    assert dict(entry.data) == {
        CONF_AGENT_ID: "shed",
        CONF_TOPIC_PREFIX: "sbms/shed",
        CONF_SERIAL: SERIAL,
    }
    moved = box_device(hass, DEVICE_IDENTIFIER)
    assert moved is not None
    assert moved.id == device.id  # the same device, with the serial as identifier
    assert box_device(hass, (DOMAIN, "shed")) is None
    for (platform, old_id), entity_id in LEGACY_ENTITIES.items():
        new_id = unique_id(old_id.removeprefix("shed_"))
        # The registry entry (and its user-chosen entity id) is the running entity's.
        assert registry.async_get_entity_id(platform, DOMAIN, new_id) == entity_id
        assert registry.async_get_entity_id(platform, DOMAIN, old_id) is None

    def soc() -> str | None:
        state = hass.states.get("sensor.my_battery_soc")
        return None if state is None else state.state

    await wait_for(hass, lambda: soc() == str(agent.state["soc"]))
    # No second entity was made beside the migrated one.
    soc_entities = [
        e
        for e in er.async_entries_for_config_entry(registry, entry.entry_id)
        if e.domain == "sensor" and e.unique_id.endswith("_soc")
    ]
    assert [e.entity_id for e in soc_entities] == ["sensor.my_battery_soc"]


async def test_a_version_1_entry_of_a_box_already_set_up_is_not_migrated(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    """Two entries for one box (one of version 2 already): the old one stays as it was
    rather than taking the other's ids."""
    current = agent.config_entry()
    current.add_to_hass(hass)
    legacy = agent.legacy_config_entry()
    legacy.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(legacy.entry_id)
    assert legacy.state is ConfigEntryState.MIGRATION_ERROR
    assert legacy.version == 1
    assert "announce" in legacy.data


async def test_an_entry_from_a_newer_integration_is_not_set_up(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    entry = agent.config_entry(version=ENTRY_VERSION + 1)
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.MIGRATION_ERROR


async def test_the_entry_owns_its_runtime_and_hass_data_holds_nothing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    runtime = entry.runtime_data
    assert isinstance(runtime, SbmsRuntimeData)
    assert runtime.shedding.coordinator is runtime.coordinator
    assert runtime.backfill is None  # no recorder in this test: nothing to fill
    assert DOMAIN not in hass.data
    assert not [key for key in hass.data if str(key).startswith(f"{DOMAIN}_")]


async def test_a_new_announce_is_runtime_data_not_entry_data(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    data_before = dict(entry.data)
    coordinator = entry.runtime_data.coordinator
    await agent.publish("announce", {**agent.announce, "agent_version": "0.2.0"})
    await wait_for(hass, lambda: coordinator.data.announce.agent_version == "0.2.0")
    assert dict(entry.data) == data_before
    device = box_device(hass, DEVICE_IDENTIFIER)
    assert device is not None
    assert device.sw_version == "0.2.0"


async def test_another_box_under_the_entrys_topics_is_not_taken_for_it(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    entry = agent.config_entry()
    await agent.publish("announce", {**agent.announce, "serial": "rpi-another-box"})
    entry.add_to_hass(hass)
    assert not await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.SETUP_ERROR
    assert entry.reason is not None


# --- one settings catalogue -------------------------------------------------------------------


def _form_selector(flow_result: Any, key: str) -> dict[str, Any]:
    for marker, selector in flow_result["data_schema"].schema.items():
        if marker == key:
            return dict(selector.config)
    raise AssertionError(f"no field {key}")


@pytest.mark.parametrize(
    ("page", "number_key", "setting"),
    [
        ("thresholds", "threshold_hvd", "thresholds.hvd"),
        ("thresholds", "threshold_lvd_delay_s", "thresholds.lvd_delay_s"),
        ("soc_alarms", "soc_alarm_low", "soc_alarms.low"),
        ("temperature", "temperature_charge_max", "temperature.charge_max"),
    ],
)
async def test_the_number_and_the_form_read_the_same_catalogue(
    hass: HomeAssistant,
    *,
    agent: FakeAgent,
    setup_box: SetupBox,
    page: str,
    number_key: str,
    setting: str,
) -> None:
    entry = await setup_box(agent)
    entity_id = er.async_get(hass).async_get_entity_id("number", DOMAIN, unique_id(number_key))
    assert entity_id is not None
    state = hass.states.get(entity_id)
    assert state is not None

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": page}
    )
    assert result["type"] is FlowResultType.FORM
    catalogue = SETTINGS[setting]
    field = _form_selector(result, catalogue.key)

    window = agent.config["remote_window"][catalogue.section][catalogue.key]
    assert (state.attributes[ATTR_MIN], state.attributes[ATTR_MAX]) == tuple(window)
    assert (field["min"], field["max"]) == tuple(window)
    assert state.attributes[ATTR_STEP] == field["step"] == catalogue.step
    assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == field["unit_of_measurement"]
    hass.config_entries.options.async_abort(result["flow_id"])


def test_cell_voltages_step_by_one_millivolt_everywhere() -> None:
    assert {SETTINGS[f"thresholds.{key}"].step for key in ("hvd", "lvd", "ovlo", "uvlo")} == {0.001}


# --- the agent client ----------------------------------------------------------------------


def test_the_agent_client_and_payload_models_import_nothing_of_home_assistant() -> None:
    for module in ("agent_client.py", "models.py", "const.py", "identity.py"):
        tree = ast.parse((PACKAGE / module).read_text("utf-8"))
        imported = [
            node.module or ""
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.level == 0
        ] + [
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
        ]
        assert not [name for name in imported if name.startswith("homeassistant")], module
