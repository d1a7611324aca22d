"""A stock SBMS0 end to end: a simulated SBMS writes its data log to a pseudo-terminal, the real
agent reads it (`source: sbms0`) and publishes to a real mosquitto, and Home Assistant finds the
box by MQTT discovery and shows it: the same read-only entities as a DIY box, and nothing that
would pretend to control an SBMS whose control stays in its own microcontroller."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import CONF_SERIAL, DOMAIN
from custom_components.sbms.identity import entity_unique_id
from tests.helpers.hass import wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.helpers.sbms0 import SimulatedSbms

AGENT_ID = "stock-sbms"
WAIT_S = 30.0  # a safety net against hanging, never a measurement
CONTROL_PLATFORMS = ("select", "number", "button", "switch")


@pytest.fixture
def stock_agent(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`sbms-agent --config` with `source: sbms0` reading a simulated SBMS on a pty."""
    link = tmp_path / "ttySBMS"
    sbms = SimulatedSbms(link)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"agent_id: {AGENT_ID}\n"
        "battery: {cells: 8, capacity_ah: 200}\n"
        f"source: {{type: sbms0, serial: {{port: '{link}'}}, stale_after_s: 2}}\n"
        f"storage: {{state_path: '{tmp_path / 'state.db'}'}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {mqtt_broker.port}}}\n"
    )
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "--config", str(config), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        yield agent
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.communicate(timeout=30)
        sbms.close()


def _unique_id(hass: HomeAssistant, key: str) -> str:
    """The unique id of the box's entity `key`: from the serial the real agent announced."""
    (entry,) = hass.config_entries.async_entries(DOMAIN)
    return entity_unique_id(entry.data[CONF_SERIAL], key)


def _entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, _unique_id(hass, key))
    assert entity_id is not None, f"no {platform} entity {key}"
    return entity_id


def _value(hass: HomeAssistant, entity_id: str) -> str | None:
    state = hass.states.get(entity_id)
    return None if state is None else state.state


async def _discover_and_confirm(hass: HomeAssistant) -> MockConfigEntry:
    def flows() -> list[Any]:
        return hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    await wait_for(hass, lambda: bool(flows()), timeout_s=WAIT_S)
    (flow,) = flows()
    assert flow["context"]["unique_id"]  # the serial the agent announced
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: MockConfigEntry = result["result"]
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    return entry


async def test_a_stock_sbms_appears_in_home_assistant_read_only(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    stock_agent: subprocess.Popen[bytes],
) -> None:
    entry = await _discover_and_confirm(hass)
    announce = entry.runtime_data.coordinator.data.announce
    assert (announce.source, announce.cells, announce.config_set) == ("sbms0", 8, False)
    assert announce.commands == frozenset()

    soc = _entity_id(hass, "sensor", "soc")
    cell_min = _entity_id(hass, "sensor", "cell_min")
    # The simulated SBMS sends the test frame: SoC 77 %, cell 1 at 3.321 V, PV and load on.
    await wait_for(hass, lambda: _value(hass, soc) == "77.0", timeout_s=WAIT_S)
    assert _value(hass, cell_min) is not None
    assert float(str(_value(hass, cell_min))) <= 3.321
    assert _value(hass, _entity_id(hass, "binary_sensor", "output_pv")) == STATE_ON
    assert _value(hass, _entity_id(hass, "binary_sensor", "output_load")) == STATE_ON
    # The SBMS's own SoC comes without an uncertainty (issue 16): no such sensor.
    assert not er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, _unique_id(hass, "soc_uncertainty")
    )

    # Nothing that talks to the SBMS: no selects, numbers, buttons or switches for it. Load
    # shedding and surplus loads are Home Assistant's own (they switch household loads) and
    # work for any box.
    entities = er.async_entries_for_config_entry(er.async_get(hass), entry.entry_id)
    controls = sorted(e.unique_id for e in entities if e.domain in CONTROL_PLATFORMS)
    assert controls == sorted(_unique_id(hass, key) for key in ("load_shedding", "surplus_loads"))

    # The options flow says why instead of offering forms the SBMS would ignore.
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "config_set_not_supported"

    stock_agent.send_signal(signal.SIGTERM)
    stock_agent.communicate(timeout=30)
    assert stock_agent.returncode == 0
    await wait_for(hass, lambda: _value(hass, soc) == STATE_UNAVAILABLE, timeout_s=WAIT_S)
    assert await hass.config_entries.async_unload(entry.entry_id)
