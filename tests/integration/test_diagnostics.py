"""Diagnostics through Home Assistant's HTTP API: complete, JSON, and redacted."""

from __future__ import annotations

import json

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.components.diagnostics import (
    get_diagnostics_for_config_entry,
)
from pytest_homeassistant_custom_component.typing import ClientSessionGenerator

from custom_components.sbms.diagnostics import TO_REDACT
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent
from tests.integration.test_sensor import DATASHEET_CURVE, real_config_payload

REDACTED = "**REDACTED**"


async def test_diagnostics_show_the_box_and_redact_identifiers(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    hass_client: ClientSessionGenerator,
) -> None:
    # An agent that leaks broker settings into `config` (the protocol forbids it) must not
    # have them end up in a bug report.
    agent.config["mqtt"] = {"host": "10.0.0.2", "username": "sbms", "password": "hunter2"}
    await agent.publish("config", agent.config)
    # What the agent dropped of a request flood is there for a bug report.
    link_stats = {
        "requests_received": 12,
        "requests_dropped": 3000,
        "dropped_by_kind": {"config_set": 2990, "queue_full": 10},
    }
    entry = await setup_box(agent)
    await wait_for(hass, lambda: "mqtt" in entry.runtime_data.coordinator.data.config.data)
    await agent.set_state(link_stats=link_stats)
    await wait_for(
        hass,
        lambda: (
            (state := entry.runtime_data.coordinator.data.state) is not None
            and state.link_stats == link_stats
        ),
    )

    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    text = json.dumps(diag)
    assert agent.announce["serial"] not in text
    assert "hunter2" not in text
    assert "10.0.0.2" not in text
    assert diag["announce"]["serial"] == REDACTED
    assert diag["entry"]["data"]["serial"] == REDACTED
    assert diag["config"]["mqtt"] == REDACTED
    # Everything else is there as the agent sent it.
    assert diag["entry"]["data"]["agent_id"] == "shed"
    assert diag["announce"]["cells"] == 8
    assert diag["announce"]["commands"] == sorted(agent.announce["capabilities"]["commands"])
    assert diag["state"]["soc"] == agent.state["soc"]
    assert diag["state"]["cells"] == agent.state["cells"]
    assert diag["state"]["counters"]["pv_wh"] == agent.state["counters"]["pv_wh"]
    assert diag["state"]["link_stats"] == link_stats
    assert diag["state"]["source_stats"] is None
    assert diag["config"]["thresholds"] == agent.config["thresholds"]
    # What each output switches and may become, and the remote window, are not secrets.
    assert [(o["name"], o["wiring"], o["settable_types"]) for o in diag["announce"]["outputs"]] == [
        ("extio3", "load", [0, 2, 4]),
        ("extio4", "charge", [0, 1, 3, 6]),
        ("extio5", "signal", [0, 1, 2, 3, 4]),
        ("extio6", "fault", [5]),
    ]
    assert diag["config"]["remote_window"] == agent.config["remote_window"]
    assert diag["config"]["outputs"][3]["wiring"] == "fault"
    assert diag["availability"] == {
        "available": True,
        "online": True,
        "broker_connected": True,
        "protocol_supported": True,
    }
    assert diag["repair_issues"] == []
    # The documented box's file gives no curve: its SoC reads the built-in one near empty.
    assert diag["soc_estimate"] == {"ocv_curve": "built_in", "empty_soc": None}


async def test_diagnostics_say_which_curve_the_soc_reads(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    hass_client: ClientSessionGenerator,
) -> None:
    """Issue 16: the real agent's config with the cells' curve; none for a stock SBMS0."""
    entry = await setup_box(agent)
    await agent.publish("config", real_config_payload(10, ocv_curve=DATASHEET_CURVE))
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.config.revision == 10)

    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diag["soc_estimate"] == {"ocv_curve": "configured", "empty_soc": None}
    assert diag["config"]["battery"]["ocv_curve"] == DATASHEET_CURVE


async def test_diagnostics_of_a_stock_sbms_have_no_soc_estimate(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    hass_client: ClientSessionGenerator,
) -> None:
    agent.announce["source"] = "sbms0"
    await agent.publish_all()
    entry = await setup_box(agent)

    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diag["soc_estimate"] is None


async def test_diagnostics_of_an_offline_box_with_an_issue(
    hass: HomeAssistant,
    agent: FakeAgent,
    setup_box: SetupBox,
    hass_client: ClientSessionGenerator,
) -> None:
    entry = await setup_box(agent)
    agent.announce["protocol_version"] = 2
    await agent.publish("announce", agent.announce)
    await agent.set_online(False)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.online)
    await wait_for(hass, lambda: not entry.runtime_data.coordinator.data.protocol_supported)

    diag = await get_diagnostics_for_config_entry(hass, hass_client, entry)

    assert diag["availability"]["available"] is False
    assert diag["availability"]["online"] is False
    assert diag["availability"]["protocol_supported"] is False
    assert diag["repair_issues"] == ["unsupported_protocol"]


def test_redaction_covers_serial_and_credentials() -> None:
    assert {"serial", "serial_number", "mqtt", "password", "username"} <= TO_REDACT
