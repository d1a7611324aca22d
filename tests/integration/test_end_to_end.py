"""End to end, nothing mocked on the path: the real agent (a subprocess on the simulated box)
-> a real mosquitto -> Home Assistant's real MQTT integration -> the sbms integration.

The box is found by MQTT discovery of its retained announce and added through the config
flow; entities are compared with what the agent publishes (read by a separate subscription);
changes go through a number entity, the options flow and a button, and must come back from
the agent; stopping the agent makes the entities unavailable.

The agent runs as a subprocess so its own event loop, threads and signal handling stay out of
Home Assistant's (whose teardown fails a test that leaves tasks or timers behind).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import STATE_OFF, STATE_ON, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.config_flow import CONF_OUTPUT, CONF_OUTPUT_TYPE
from custom_components.sbms.const import CONF_SERIAL, DOMAIN
from custom_components.sbms.coordinator import SbmsCoordinator
from custom_components.sbms.identity import entity_unique_id
from tests.helpers.hass import mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker

AGENT_ID = "e2e"
PREFIX = f"sbms/{AGENT_ID}"
ROOT = Path(__file__).resolve().parents[2]
WAIT_S = 30.0  # a safety net against hanging, never a measurement
SPEED = 20.0  # simulated seconds per real second: a state at least every 1.5 s


class AgentProcess:
    """`sbms-agent --simulate` publishing to the test broker."""

    def __init__(self, broker: MosquittoBroker, log: Path) -> None:
        self._broker = broker
        self._log_path = log
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        command = [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--simulate",
            "--agent-id",
            AGENT_ID,
            "--mqtt-host",
            self._broker.host,
            "--mqtt-port",
            str(self._broker.port),
            "--speed",
            str(SPEED),
            "--start-hour",
            "11",  # midday: the sun charges, so the readings move
            "--quiet",
        ]
        with self._log_path.open("wb") as log:
            self.process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)

    def stop(self) -> None:
        """SIGTERM, as systemd stops it: the agent says "offline" and disconnects."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

    def log(self) -> str:
        return self._log_path.read_text(errors="replace")


@pytest.fixture
def agent_process(mqtt_broker: MosquittoBroker, tmp_path: Path) -> Iterator[AgentProcess]:
    agent = AgentProcess(mqtt_broker, tmp_path / "agent.log")
    yield agent
    agent.stop()


class Retained:
    """The agent's own payloads, read by a subscription of the test (not the integration)."""

    def __init__(self) -> None:
        self.latest: dict[str, dict[str, Any]] = {}
        self.status: str | None = None

    @callback
    def on_message(self, message: ReceiveMessage) -> None:
        suffix = message.topic.removeprefix(f"{PREFIX}/")
        if suffix == "status":
            self.status = str(message.payload)
        elif suffix in {"state", "config", "announce"} and message.payload:
            self.latest[suffix] = json.loads(message.payload)


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


def _number(hass: HomeAssistant, entity_id: str) -> float | None:
    text = _value(hass, entity_id)
    try:
        return float(text) if text is not None else None
    except ValueError:
        return None


async def _discover_and_confirm(hass: HomeAssistant) -> MockConfigEntry:
    """The agent's retained announce starts the sbms flow; the user confirms it."""

    def flows() -> list[Any]:
        return hass.config_entries.flow.async_progress_by_handler(DOMAIN)

    await wait_for(hass, lambda: bool(flows()), timeout_s=WAIT_S)
    (flow,) = flows()
    assert flow["context"]["source"] == "mqtt"
    assert flow["step_id"] == "discovery_confirm"
    assert flow["context"]["unique_id"]  # the serial the agent announced

    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry = result["result"]
    assert entry.unique_id == entry.data[CONF_SERIAL]
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    coordinator: SbmsCoordinator = entry.runtime_data.coordinator
    await wait_for(
        hass,
        lambda: coordinator.data.available and coordinator.data.state is not None,
        timeout_s=WAIT_S,
    )
    return entry  # type: ignore[no-any-return]


async def _change_output_type_in_the_flow(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """extio3, wired to the loads: LVD (2) -> low SoC (4), with its alarm level, as a user
    would (the types offered follow its wiring)."""
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "outputs"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_OUTPUT: "extio3"}
    )
    assert result["step_id"] == "output_type"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_OUTPUT_TYPE: "4"}
    )
    assert result["step_id"] == "output_settings"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"low": 15.0, "low_release": 22.0}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY, result.get("errors")


async def test_agent_to_home_assistant_end_to_end(
    hass: HomeAssistant,
    mqtt_ready: MockConfigEntry,
    agent_process: AgentProcess,
) -> None:
    seen = Retained()
    unsubscribe = await mqtt.async_subscribe(hass, f"{PREFIX}/#", seen.on_message, qos=1)
    try:
        await mqtt_settled(hass)
        agent_process.start()
        try:
            # The one cell sensor checked below is off by default: enabled as a user would,
            # before the entry exists (the registry entry is taken over when the entity is
            # added); its unique id starts with the serial the agent announces.
            await wait_for(hass, lambda: "announce" in seen.latest, timeout_s=WAIT_S)
            serial = seen.latest["announce"]["serial"]
            er.async_get(hass).async_get_or_create(
                "sensor", DOMAIN, entity_unique_id(serial, "cell_voltage", "_1")
            )
            entry = await _discover_and_confirm(hass)
            await _check_values(hass, seen)
            await _check_threshold_change(hass, entry, seen)
            await _check_output_type_change(hass, entry, seen)
            await _check_mark_full(hass)
            await _check_agent_stop(hass, entry, agent_process, seen)
        except BaseException:
            print(agent_process.log())
            raise
        assert await hass.config_entries.async_unload(entry.entry_id)
    finally:
        unsubscribe()


async def _check_values(hass: HomeAssistant, seen: Retained) -> None:
    """SoC, pack voltage and cells as the agent last published them."""
    soc = _entity_id(hass, "sensor", "soc")
    voltage = _entity_id(hass, "sensor", "voltage")
    cell_min = _entity_id(hass, "sensor", "cell_min")
    cell_max = _entity_id(hass, "sensor", "cell_max")
    cell_1 = _entity_id(hass, "sensor", "cell_voltage_1")
    uncertainty = _entity_id(hass, "sensor", "soc_uncertainty")

    def matches() -> bool:
        state = seen.latest.get("state")
        return state is not None and (
            _number(hass, soc) == state["soc"]
            and _number(hass, uncertainty) == state["soc_uncertainty"]
            and _number(hass, voltage) == state["voltage"]
            and _number(hass, cell_min) == state["cell_min"]
            and _number(hass, cell_max) == state["cell_max"]
            and _number(hass, cell_1) == state["cells"][0]
        )

    await wait_for(hass, matches, timeout_s=WAIT_S)
    state = seen.latest["state"]
    assert state["measurement_ok"] is True
    assert 3.0 < state["cells"][0] < 3.7  # a real simulated LFP cell, not a default
    # The estimator's band (issue 16) reaches Home Assistant as a number.
    assert isinstance(state["soc_uncertainty"], float)
    assert 0 < state["soc_uncertainty"] <= 50
    assert isinstance(_number(hass, uncertainty), float)


async def _check_threshold_change(
    hass: HomeAssistant, entry: MockConfigEntry, seen: Retained
) -> None:
    """A number entity sends config/set; the agent republishes its config; the entity follows."""
    hvd = _entity_id(hass, "number", "threshold_hvd")
    # The retained config reaches Home Assistant's new subscription after its debounce, maybe
    # after the states checked above: waited for, not assumed.
    await wait_for(hass, lambda: _number(hass, hvd) == 3.6)
    assert seen.latest["config"]["thresholds"]["hvd"] == 3.6
    revision = seen.latest["config"]["config_revision"]
    await hass.services.async_call(
        "number", "set_value", {"entity_id": hvd, "value": 3.58}, blocking=True
    )
    await wait_for(hass, lambda: seen.latest["config"]["config_revision"] > revision)
    assert seen.latest["config"]["thresholds"]["hvd"] == 3.58
    await wait_for(hass, lambda: _number(hass, hvd) == 3.58)


async def _check_output_type_change(
    hass: HomeAssistant, entry: MockConfigEntry, seen: Retained
) -> None:
    """The options flow changes an EXTIO type; the agent applies it and announces it."""
    await _change_output_type_in_the_flow(hass, entry)
    await wait_for(hass, lambda: seen.latest["announce"]["outputs"][0]["type"] == 4)
    # `config` and `announce` are separate messages: either may arrive first.
    await wait_for(hass, lambda: seen.latest["config"]["outputs"][0]["type"] == 4)
    assert seen.latest["config"]["soc_alarms"]["low"] == 15.0
    assert seen.latest["config"]["soc_alarms"]["low_release"] == 22.0
    # The box follows the new announce (a reload: the output's entities change).
    await wait_for(
        hass,
        lambda: (
            entry.state is ConfigEntryState.LOADED
            and entry.runtime_data.coordinator.data.announce.output("extio3").type == 4
            and entry.runtime_data.coordinator.data.available
        ),
        timeout_s=WAIT_S,
    )
    select = _entity_id(hass, "select", "output_type_extio3")
    await wait_for(hass, lambda: _value(hass, select) == "low_soc")
    # extio5 switches nothing on this box: no type choice for it at all.
    registry = er.async_get(hass)
    assert (
        registry.async_get_entity_id("select", DOMAIN, _unique_id(hass, "output_type_extio5"))
        is None
    )


async def _check_mark_full(hass: HomeAssistant) -> None:
    soc = _entity_id(hass, "sensor", "soc")
    await wait_for(hass, lambda: _number(hass, soc) is not None, timeout_s=WAIT_S)
    assert _number(hass, soc) != 100.0
    await hass.services.async_call(
        "button", "press", {"entity_id": _entity_id(hass, "button", "mark_full")}, blocking=True
    )
    await wait_for(hass, lambda: _number(hass, soc) == 100.0, timeout_s=WAIT_S)


async def _check_agent_stop(
    hass: HomeAssistant, entry: MockConfigEntry, agent: AgentProcess, seen: Retained
) -> None:
    connected = _entity_id(hass, "binary_sensor", "connected")
    soc = _entity_id(hass, "sensor", "soc")
    assert _value(hass, connected) == STATE_ON
    agent.stop()
    assert agent.process is not None
    assert agent.process.returncode == 0
    await wait_for(hass, lambda: seen.status == "offline", timeout_s=WAIT_S)
    await wait_for(hass, lambda: _value(hass, soc) == STATE_UNAVAILABLE)
    assert _value(hass, connected) == STATE_OFF
    assert not entry.runtime_data.coordinator.data.available
