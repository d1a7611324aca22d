"""Options flow: the agent's thresholds and output types, applied only when the agent accepts."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, InvalidData
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import CONF_PESSIMISTIC_SOC, DOMAIN
from custom_components.sbms.settings import (
    DUAL_PV,
    OUTPUT_TYPE_SETTINGS,
    SOC_ALARMS,
    TEMPERATURE,
    THRESHOLDS,
)
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent

TRANSLATIONS = Path(__file__).resolve().parents[2] / "custom_components/sbms/translations/en.json"


def _config_sets(fake: FakeAgent) -> list[dict[str, Any]]:
    """The `config` of every config/set the agent received (request ids left out)."""
    return [request["config"] for suffix, request in fake.requests if suffix == "config/set"]


def _reject(field: str, reason: str) -> Any:
    def responder(_suffix: str, _request: dict[str, Any]) -> list[dict[str, str]]:
        return [{"field": field, "reason": reason}]

    return responder


async def _open(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict[str, Any]:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == step
    return dict(result)


def _defaults(result: dict[str, Any]) -> dict[str, Any]:
    return {str(key): key.default() for key in result["data_schema"].schema}


async def _submit(hass: HomeAssistant, flow_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return dict(await hass.config_entries.options.async_configure(flow_id, values))


async def test_menu_offers_every_group(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert result["menu_options"] == [
        "thresholds",
        "soc_alarms",
        "temperature",
        "dual_pv",
        "outputs",
        "load_shedding",
    ]


SECTIONS = [
    (
        "thresholds",
        {
            "ovlo": 3.75,
            "hvd": 3.6,
            "eoc": 3.53,
            "hvd_reconnect": 3.4,
            "lvd_reconnect": 3.2,
            "lvd": 3.0,
            "uvlo": 2.5,
            "ovlo_delay_s": 1.0,
            "hvd_delay_s": 1.0,
            "lvd_delay_s": 5.0,
            "uvlo_delay_s": 1.0,
        },
        {"hvd": 3.55, "hvd_reconnect": 3.38, "lvd_delay_s": 10.0},
    ),
    (
        "soc_alarms",
        {"high": 95.0, "high_release": 90.0, "low_release": 25.0, "low": 20.0},
        {"low": 15.0},
    ),
    (
        "temperature",
        {
            "charge_min": 0.0,
            "charge_max": 45.0,
            "charge_hysteresis": 2.0,
            "discharge_min": -20.0,
            "discharge_max": 55.0,
            "internal_cutoff": 60.0,
            "internal_release": 50.0,
        },
        {"charge_min": 2.0, "charge_max": 40.0, "discharge_max": 50.0},
    ),
    (
        "dual_pv",
        {
            "imax": 50.0,
            "up_to_l2_fraction": 0.5,
            "up_to_l3_fraction": 0.66,
            "down_fraction": 1.2,
            "min_level_hold_s": 60.0,
        },
        {"imax": 40.0},
    ),
]


@pytest.mark.parametrize(("section", "in_force", "changes"), SECTIONS)
async def test_section_change_accepted(
    hass: HomeAssistant,
    *,
    agent: FakeAgent,
    setup_box: SetupBox,
    section: str,
    in_force: dict[str, float],
    changes: dict[str, float],
) -> None:
    entry = await setup_box(agent)
    coordinator = entry.runtime_data.coordinator
    revision = coordinator.data.config.revision
    result = await _open(hass, entry, section)
    assert _defaults(result) == in_force  # prefilled from the agent's config in force

    result = await _submit(hass, result["flow_id"], {**in_force, **changes})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [{section: changes}]  # one request, only the changed keys
    assert entry.options == {}  # nothing stored: the agent's config is the record
    await wait_for(hass, lambda: coordinator.data.config.revision == revision + 1)
    for key, value in changes.items():
        assert coordinator.data.config.value(section, key) == value


async def test_load_shedding_option_is_stored_and_kept_by_agent_settings(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """Home Assistant's own option (issue 16) lives in the entry; agent settings never touch
    it, and nothing about it goes to the agent."""
    entry = await setup_box(agent)
    result = await _open(hass, entry, "load_shedding")
    assert _defaults(result) == {CONF_PESSIMISTIC_SOC: False}
    result = await _submit(hass, result["flow_id"], {CONF_PESSIMISTIC_SOC: True})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options == {CONF_PESSIMISTIC_SOC: True}
    assert _config_sets(agent) == []
    result = await _open(hass, entry, "load_shedding")
    assert _defaults(result) == {CONF_PESSIMISTIC_SOC: True}  # prefilled from the entry
    hass.config_entries.options.async_abort(result["flow_id"])
    result = await _open(hass, entry, "soc_alarms")
    result = await _submit(hass, result["flow_id"], {**_defaults(result), "low": 15.0})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [{"soc_alarms": {"low": 15.0}}]
    assert entry.options == {CONF_PESSIMISTIC_SOC: True}


def _range(result: dict[str, Any], field: str) -> tuple[float, float]:
    config = result["data_schema"].schema[field].config
    return config["min"], config["max"]


async def test_forms_take_their_ranges_from_the_remote_window(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await _open(hass, entry, "thresholds")
    assert _range(result, "hvd") == (3.45, 3.6)
    assert _range(result, "lvd") == (3.0, 3.2)
    assert _range(result, "lvd_delay_s") == (1.0, 30.0)
    # Beyond the window: Home Assistant refuses it, nothing goes to the agent.
    with pytest.raises(InvalidData):
        await _submit(hass, result["flow_id"], {"hvd": 3.62})
    assert _config_sets(agent) == []

    result = await _open(hass, entry, "temperature")
    assert _range(result, "discharge_max") == (45.0, 55.0)
    assert _range(result, "charge_min") == (0.0, 10.0)


async def test_a_value_the_file_put_outside_the_window_can_stay(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """The agent accepts a setting left where the file put it, so the form does too."""
    agent.config["thresholds"]["ovlo"] = 3.78  # the window is 3.65-3.75
    await agent.publish_all()
    entry = await setup_box(agent)
    result = await _open(hass, entry, "thresholds")
    assert _range(result, "ovlo") == (3.65, 3.78)
    result = await _submit(hass, result["flow_id"], {"ovlo": 3.78, "hvd": 3.55})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [{"thresholds": {"hvd": 3.55}}]


async def test_forms_keep_their_own_ranges_without_a_window(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    del agent.config["remote_window"]["thresholds"]["hvd"]  # one setting the window omits
    await agent.publish_all()
    entry = await setup_box(agent)
    result = await _open(hass, entry, "thresholds")
    assert _range(result, "hvd") == (2.0, 4.3)
    assert _range(result, "lvd") == (3.0, 3.2)

    agent.as_older_agent()
    agent.config["config_revision"] += 1
    await agent.publish("config", agent.config)
    await wait_for(
        hass, lambda: "remote_window" not in entry.runtime_data.coordinator.data.config.data
    )
    result = await _open(hass, entry, "thresholds")
    assert _range(result, "lvd") == (2.0, 4.3)


async def test_unchanged_form_sends_nothing(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await _open(hass, entry, "thresholds")
    result = await _submit(hass, result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == []


async def test_rejected_change_shows_the_agents_reason_on_its_field(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    config_before = copy.deepcopy(agent.config)
    reason = "must be at least 0.1 V below thresholds.hvd, HVD hysteresis (got 3.5 and 3.6)"
    agent.responder = _reject("config.thresholds.hvd_reconnect", reason)
    result = await _open(hass, entry, "thresholds")
    result = await _submit(hass, result["flow_id"], {"hvd_reconnect": 3.5})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "thresholds"
    assert result["errors"] == {"hvd_reconnect": "rejected"}
    assert reason in result["description_placeholders"]["reason"]
    assert _defaults(result)["hvd_reconnect"] == 3.5  # the user's value, to correct it
    assert _config_sets(agent) == [{"thresholds": {"hvd_reconnect": 3.5}}]
    assert agent.config == config_before
    assert entry.runtime_data.coordinator.data.config.value("thresholds", "hvd_reconnect") == 3.4

    # Corrected and accepted on the same form.
    agent.responder = lambda _suffix, _request: []
    result = await _submit(hass, result["flow_id"], {"hvd_reconnect": 3.45})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent)[-1] == {"thresholds": {"hvd_reconnect": 3.45}}


async def test_rejection_of_a_field_not_on_the_form_goes_to_base(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    agent.responder = _reject("payload", "too large")
    result = await _open(hass, entry, "soc_alarms")
    result = await _submit(hass, result["flow_id"], {"high": 97.0})
    assert result["errors"] == {"base": "rejected"}
    assert result["description_placeholders"]["reason"] == "payload: too large"


async def test_agent_gone_while_the_form_is_open(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await _open(hass, entry, "temperature")
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.online)
    result = await _submit(hass, result["flow_id"], {"charge_max": 40.0})
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": "agent_unavailable"}
    assert _config_sets(agent) == []


async def test_options_abort_while_the_agent_is_offline(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.online)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "agent_offline"


async def test_options_abort_when_the_agent_takes_no_configuration(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.announce["capabilities"]["config_set"] = False
    await agent.publish("announce", agent.announce)
    entry = await setup_box(agent)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "config_set_not_supported"


async def test_options_abort_before_the_config_arrived(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    await agent.publish("config", "", retain=True)  # no retained config on the broker
    entry = agent.config_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.available)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "config_unknown"


async def test_options_abort_when_the_entry_is_not_loaded(
    hass: HomeAssistant, agent: FakeAgent
) -> None:
    entry = agent.config_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "not_loaded"
    assert hass.config_entries.async_entries(DOMAIN) == [entry]


# --- outputs --------------------------------------------------------------------------------


def _choices(result: dict[str, Any], field: str) -> list[str]:
    """The values a select field of a form offers."""
    return [
        option if isinstance(option, str) else option["value"]
        for option in result["data_schema"].schema[field].config["options"]
    ]


async def _pick_output(
    hass: HomeAssistant,
    entry: MockConfigEntry,
    output: str,
    outputs: tuple[str, ...] = ("extio3", "extio4", "extio5"),
) -> dict[str, Any]:
    """Open the outputs page (the fault output is not on it: it has no type to choose)."""
    result = await _open(hass, entry, "outputs")
    assert _choices(result, "output") == list(outputs)
    result = await _submit(hass, result["flow_id"], {"output": output})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "output_type"
    assert result["description_placeholders"]["output"] == output
    return result


@pytest.mark.parametrize(
    ("output", "types"),
    [
        ("extio3", ["0", "2", "4"]),
        ("extio4", ["0", "1", "3", "6"]),
        ("extio5", ["0", "1", "2", "3", "4"]),
    ],
)
async def test_output_type_offers_only_the_settable_types(
    hass: HomeAssistant, *, agent: FakeAgent, setup_box: SetupBox, output: str, types: list[str]
) -> None:
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, output)
    assert _choices(result, "output_type") == types
    forbidden = next(str(t) for t in range(7) if str(t) not in types)
    with pytest.raises(InvalidData):
        await _submit(hass, result["flow_id"], {"output_type": forbidden})
    assert _config_sets(agent) == []


async def test_an_older_agent_offers_every_output_and_type(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    agent.as_older_agent()
    await agent.publish_all()
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, "extio6", ("extio3", "extio4", "extio5", "extio6"))
    assert _choices(result, "output_type") == [str(t) for t in range(8)]  # 7: diversion
    assert _defaults(result) == {"output_type": "5"}
    # Its forms have no trip delays or discharge window: it would refuse keys it does not know.
    result = await _open(hass, entry, "thresholds")
    assert "lvd_delay_s" not in _defaults(result)
    result = await _open(hass, entry, "temperature")
    assert "discharge_min" not in _defaults(result)


async def test_no_outputs_page_when_no_output_has_a_type_to_choose(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    for output in agent.announce["outputs"]:
        if output["name"] != "extio6":
            output.update(wiring="none", settable_types=[0])
    await agent.publish_all()
    entry = await setup_box(agent)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert "outputs" not in result["menu_options"]


async def test_output_type_without_settings_is_sent_at_once(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    coordinator = entry.runtime_data.coordinator
    result = await _pick_output(hass, entry, "extio3")
    assert _defaults(result) == {"output_type": "2"}  # lvd in force
    result = await _submit(hass, result["flow_id"], {"output_type": "0"})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [{"outputs": {"extio3": {"type": 0}}}]
    await wait_for(
        hass,
        lambda: any(
            o["name"] == "extio3" and o["type"] == 0
            for o in coordinator.data.config.data["outputs"]
        ),
    )


async def test_output_type_with_its_settings(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, "extio5")
    result = await _submit(hass, result["flow_id"], {"output_type": "1"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "output_settings"
    assert result["description_placeholders"]["type"] == "hvd"
    assert _defaults(result) == {"hvd": 3.6, "hvd_reconnect": 3.4}
    result = await _submit(hass, result["flow_id"], {"hvd_reconnect": 3.38})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [
        {"outputs": {"extio5": {"type": 1}}, "thresholds": {"hvd_reconnect": 3.38}}
    ]


@pytest.mark.parametrize(
    ("output", "output_type", "fields"),
    [
        ("extio3", "2", {"lvd_reconnect": 3.2, "lvd": 3.0}),
        ("extio5", "3", {"high": 95.0, "high_release": 90.0}),
        ("extio5", "4", {"low_release": 25.0, "low": 20.0}),
        (
            "extio4",
            "6",
            {
                "imax": 50.0,
                "up_to_l2_fraction": 0.5,
                "up_to_l3_fraction": 0.66,
                "down_fraction": 1.2,
            },
        ),
    ],
)
async def test_each_output_type_shows_the_settings_it_uses(
    hass: HomeAssistant,
    *,
    agent: FakeAgent,
    setup_box: SetupBox,
    output: str,
    output_type: str,
    fields: dict[str, float],
) -> None:
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, output)
    result = await _submit(hass, result["flow_id"], {"output_type": output_type})
    assert result["step_id"] == "output_settings"
    assert _defaults(result) == fields


async def test_unchanged_output_type_sends_only_the_settings(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, "extio3")
    result = await _submit(hass, result["flow_id"], {"output_type": "2"})
    result = await _submit(hass, result["flow_id"], {"lvd": 3.1})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert _config_sets(agent) == [{"thresholds": {"lvd": 3.1}}]


async def test_rejected_output_type_shows_the_reason(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    reason = "extio3 is the only load output while loads are on"
    agent.responder = _reject("config.outputs.extio3.type", reason)
    result = await _pick_output(hass, entry, "extio3")
    result = await _submit(hass, result["flow_id"], {"output_type": "0"})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "output_type"
    assert result["errors"] == {"output_type": "rejected"}
    assert reason in result["description_placeholders"]["reason"]
    assert _defaults(result) == {"output_type": "0"}
    assert agent.config["outputs"][0]["type"] == 2  # unchanged on the agent


async def test_rejected_output_settings_show_the_reason(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    entry = await setup_box(agent)
    agent.responder = _reject("config.outputs.extio4.type", "type 6 needs an HVD output")
    result = await _pick_output(hass, entry, "extio4")
    result = await _submit(hass, result["flow_id"], {"output_type": "6"})
    result = await _submit(hass, result["flow_id"], {"imax": 30.0})
    assert result["step_id"] == "output_settings"
    assert result["errors"] == {"base": "rejected"}  # the type is not on this form
    assert "type 6 needs an HVD output" in result["description_placeholders"]["reason"]

    agent.responder = _reject("config.dual_pv.imax", "must be greater than 0")
    result = await _submit(hass, result["flow_id"], {"imax": 30.0})
    assert result["errors"] == {"imax": "rejected"}
    assert (
        _config_sets(agent) == [{"outputs": {"extio4": {"type": 6}}, "dual_pv": {"imax": 30.0}}] * 2
    )


async def test_output_type_falls_back_to_the_announce(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    """An output the config lists without a usable type shows its announced type."""
    agent.config["outputs"][2] = {"name": "extio5", "type": None}
    agent.config["outputs"].append("junk")
    agent.announce["outputs"][2]["type"] = 4
    await agent.publish_all()
    entry = await setup_box(agent)
    result = await _pick_output(hass, entry, "extio5")
    assert _defaults(result) == {"output_type": "4"}


def test_every_setting_on_a_form_has_a_label() -> None:
    """HA loads only en.json for a custom integration: a missing label shows a raw key."""
    steps = json.loads(TRANSLATIONS.read_text("utf-8"))["options"]["step"]
    forms = {
        "thresholds": THRESHOLDS,
        "soc_alarms": SOC_ALARMS,
        "temperature": TEMPERATURE,
        "dual_pv": DUAL_PV,
        "output_settings": tuple(s for group in OUTPUT_TYPE_SETTINGS.values() for s in group),
    }
    for step, settings in forms.items():
        assert {s.key for s in settings} <= set(steps[step]["data"]), step
    assert set(steps["init"]["menu_options"]) == {
        "thresholds",
        "soc_alarms",
        "temperature",
        "dual_pv",
        "outputs",
        "load_shedding",
    }
    assert set(steps["load_shedding"]["data"]) == {CONF_PESSIMISTIC_SOC}


def test_every_form_field_is_described() -> None:
    """Every field of the config, options and subentry forms has a data_description."""
    translations = json.loads(TRANSLATIONS.read_text("utf-8"))
    forms = {
        f"{flow}.{step_id}": step
        for flow in ("config", "options")
        for step_id, step in translations[flow]["step"].items()
    } | {
        f"config_subentries.{kind}.{step_id}": step
        for kind, subentry in translations["config_subentries"].items()
        for step_id, step in subentry["step"].items()
    }
    assert len(forms) > 10
    for name, step in forms.items():
        assert set(step.get("data_description", {})) == set(step.get("data", {})), name
