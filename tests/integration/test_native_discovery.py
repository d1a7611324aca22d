"""The agent's native MQTT discovery, read by a real Home Assistant through a real mosquitto.

Home Assistant's own `mqtt` integration (no sbms integration) connects to a mosquitto
subprocess; the real agent (control loop on the simulated box, MQTT link with
`ha_discovery: true`) runs as tasks in the same event loop. Everything asserted is what Home
Assistant made of the payload: registries, states, availability and its log.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntryState
from homeassistant.const import (
    STATE_OFF,
    STATE_ON,
    STATE_UNAVAILABLE,
    STATE_UNKNOWN,
    EntityCategory,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

import edge_agent
from edge_agent.config.link import MqttSettings, PublishSettings
from edge_agent.mqtt.ha_discovery import ORIGIN_URL, discovery_payload
from edge_agent.mqtt.payloads import MODEL
from edge_agent.mqtt.topics import Topics
from edge_agent.runtime.loop import run_agent
from edge_agent.runtime.remote import RemoteControl
from edge_agent.runtime.service import Identity, build_link
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec
from tests.helpers.mqtt_broker import MosquittoBroker

AGENT_ID = "shed"
SERIAL = "sim-1"
TOPICS = Topics("sbms", AGENT_ID)
DISCOVERY_TOPIC = f"homeassistant/device/{AGENT_ID}/config"
DEVICE_ID = f"sbms_{AGENT_ID}"
WAIT_S = 20.0  # a safety net against hanging, never a measurement
SPEED = 20.0  # simulated seconds per real second


@pytest.fixture
def broker(socket_enabled: None, tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(broker: MosquittoBroker) -> None:
    """Overrides the package's autouse fixture on purpose, for two reasons.

    Native discovery is for users *without* the sbms integration, so it stays out (its
    manifest would also start an sbms discovery flow on the agent's announce). And this puts
    the broker before `hass`, so the broker outlives Home Assistant's MQTT client.
    """


# ---------------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------------


async def _eventually(
    what: str, check: Callable[[], bool], explain: Callable[[], object] = lambda: ""
) -> None:
    deadline = time.monotonic() + WAIT_S
    while not check():
        assert time.monotonic() < deadline, f"never happened: {what} {explain()}"
        await asyncio.sleep(0.05)


def _system(box: BoxSpec | None = None) -> SimulatedSystem:
    """The simulated box, publishing every sample. With the default policy a quiet box can
    stay silent for a while, and a subscriber added after HA's entities already subscribed to
    `state` gets no retained copy (HA does not resubscribe a topic it already has)."""
    box = box or BoxSpec()
    config = dataclasses.replace(
        simulated_config(box), agent_id=AGENT_ID, publish=PublishSettings.every_sample()
    )
    return SimulatedSystem(box, config)


class RunningAgent:
    """The real agent: what `serve()` wires (control loop on the simulated clock, MQTT link
    with discovery on), minus its signal handlers, which would outlive the test's loop."""

    def __init__(self, broker: MosquittoBroker, system: SimulatedSystem) -> None:
        self._broker = broker
        self._system = system
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Future[Any]] = []

    def start(self) -> None:
        settings = MqttSettings(
            host=self._broker.host,
            port=self._broker.port,
            agent_id=AGENT_ID,
            backoff_initial_s=0.1,
            backoff_max_s=0.5,
            ha_discovery=True,
        )
        system = self._system
        remote = RemoteControl(system.agent, system.config, None, system.box.now)
        link = build_link(settings, remote, Identity("simulator", SERIAL))
        loop = run_agent(
            system.agent,
            SimulatedClock(system.box, SPEED),
            system.config.timing.sample_interval_s,
            self._stop,
            on_report=link.offer_report,
        )
        self._tasks = [asyncio.ensure_future(link.run(self._stop)), asyncio.ensure_future(loop)]

    async def stop(self) -> None:
        """Stop as on SIGTERM: the link says "offline" and disconnects."""
        self._stop.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            await asyncio.wait_for(asyncio.gather(*tasks), WAIT_S)


@contextlib.asynccontextmanager
async def _mqtt(hass: HomeAssistant, broker: MosquittoBroker) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant's real MQTT integration: discovery on, default prefix, birth message on.
    Unloaded at the end while the broker still runs, so teardown finds no client left."""
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={mqtt.CONF_BROKER: broker.host, "port": broker.port},
        version=mqtt.CONFIG_ENTRY_VERSION,
        minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
    )
    entry.add_to_hass(hass)
    with patch("homeassistant.config.async_hass_config_yaml", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert await mqtt.async_wait_for_mqtt_client(hass)
    try:
        yield entry
    finally:
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


class Topic:
    """Messages Home Assistant's MQTT client receives on one topic."""

    def __init__(self) -> None:
        self.payloads: list[str] = []

    @callback
    def received(self, message: mqtt.ReceiveMessage) -> None:
        payload = message.payload
        self.payloads.append(payload if isinstance(payload, str) else payload.decode())

    @property
    def latest(self) -> dict[str, Any]:
        loaded: dict[str, Any] = json.loads(self.payloads[-1])
        return loaded


@contextlib.asynccontextmanager
async def _subscribed(hass: HomeAssistant, topic: str) -> AsyncIterator[Topic]:
    """Subscribed through Home Assistant's client: our callback runs in the same dispatch as
    the entities', so between two awaits the recorded state and the entities' agree."""
    seen = Topic()
    unsubscribe = await mqtt.async_subscribe(hass, topic, seen.received, qos=1)
    try:
        yield seen
    finally:
        unsubscribe()


def _entity_id(hass: HomeAssistant, platform: str, key: str) -> str:
    entity_id = er.async_get(hass).async_get_entity_id(platform, mqtt.DOMAIN, f"{DEVICE_ID}_{key}")
    assert entity_id is not None, f"no {platform} with unique id {DEVICE_ID}_{key}"
    return entity_id


def _number(hass: HomeAssistant, key: str) -> float:
    state = hass.states.get(_entity_id(hass, "sensor", key))
    assert state is not None, key
    return float(state.state)


def _expected_components() -> dict[str, dict[str, Any]]:
    _, payload = discovery_payload(_system().config, TOPICS, SERIAL, "simulator")
    components: dict[str, dict[str, Any]] = payload["cmps"]
    return components


def _registered(hass: HomeAssistant) -> bool:
    registry = er.async_get(hass)
    return all(
        registry.async_get_entity_id(component["p"], mqtt.DOMAIN, unique_id) is not None
        for unique_id, component in _expected_components().items()
    )


# Home Assistant 2025.4's MQTT discovery sets up the sensor and binary_sensor platforms side by
# side when one device message brings both, and its own check then reports the second forward
# as "not awaited". HA's code, not the payload (any device with two platforms triggers it).
_KNOWN_HA_WARNING = "calls async_forward_entry_setups for integration mqtt"


def _log_problems(caplog: pytest.LogCaptureFixture) -> list[str]:
    """Home Assistant's warnings and errors, but the known one above. (The agent's own are
    expected here: the test breaks its I2C bus.)"""
    return [
        f"{record.levelname} {record.name}: {record.getMessage()}"
        for record in caplog.records
        if record.levelno >= logging.WARNING
        and record.name.startswith("homeassistant")
        and _KNOWN_HA_WARNING not in record.getMessage()
    ]


# ---------------------------------------------------------------------------------------------
# The test
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "agent_first",
    [
        pytest.param(False, id="agent-joins-a-running-home-assistant"),
        pytest.param(True, id="home-assistant-starts-beside-a-running-agent"),
    ],
)
async def test_home_assistant_builds_the_device_from_the_agents_discovery(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    caplog: pytest.LogCaptureFixture,
    agent_first: bool,
) -> None:
    caplog.set_level(logging.INFO)
    # HA logs each device discovery (with the origin it parsed) at debug level only.
    caplog.set_level(logging.DEBUG, logger="homeassistant.components.mqtt.discovery")
    system = _system()
    components = _expected_components()
    agent = RunningAgent(broker, system)
    try:
        if agent_first:
            agent.start()
        async with (
            _mqtt(hass, broker) as entry,
            _subscribed(hass, TOPICS.state) as state_topic,
            _subscribed(hass, DISCOVERY_TOPIC) as discovery,
        ):
            if not agent_first:
                agent.start()
            await _eventually("every discovered entity registered", lambda: _registered(hass))
            await _eventually(
                "sensors agree with the latest state message",
                lambda: bool(state_topic.payloads) and _sensors_match(hass, state_topic.latest),
                lambda: (
                    state_topic.payloads
                    and (_sensor_mismatches(hass, state_topic.latest), state_topic.latest)
                ),
            )
            await _eventually(
                "binary sensors agree with the latest state message",
                lambda: _binary_sensors_match(hass, state_topic.latest),
            )
            _assert_device(hass, entry)
            _assert_entity_ids(hass)
            _assert_sensor_classes(hass)
            _assert_cells_disabled(hass, system.config.control.cell_count)
            if agent_first:
                # Home Assistant's own birth message, sent when it connected, reached the agent.
                await _eventually(
                    "the agent heard Home Assistant's birth message",
                    lambda: any("Home Assistant came online" in m for m in caplog.messages),
                )

            # A birth message (Home Assistant restarted): the agent sends its discovery again
            # (the retained one arrived when we subscribed); the entities stay as they were.
            await _eventually("retained discovery", lambda: len(discovery.payloads) >= 1)
            count = len(discovery.payloads)
            await mqtt.async_publish(hass, "homeassistant/status", "online", qos=1, retain=False)
            await _eventually("discovery again", lambda: len(discovery.payloads) > count)
            assert json.loads(discovery.payloads[-1])["cmps"] == components
            await hass.async_block_till_done()
            _assert_entity_ids(hass)
            await _eventually(
                "sensors still agree after the rediscovery",
                lambda: _sensors_match(hass, state_topic.latest),
                lambda: (_sensor_mismatches(hass, state_topic.latest), state_topic.latest),
            )

            # The I2C bus fails: the state repeats the last good values with measurement_ok
            # false; HA shows the measured sensors as unknown and the problem sensor on.
            system.box.bus.fail_all()
            await _eventually("a measurement failure shown", lambda: _shows_failure(hass))
            assert state_topic.latest["measurement_ok"] is False
            assert state_topic.latest["voltage"] is not None  # stale, hidden by the template
            assert _number(hass, "soc") == pytest.approx(state_topic.latest["soc"])

            # The agent says "offline" on its way out: every entity becomes unavailable.
            await agent.stop()
            await _eventually(
                "every enabled entity unavailable",
                lambda: _enabled_states(hass) == {STATE_UNAVAILABLE},
            )
    finally:
        await agent.stop()

    origin = (
        f"Processing device discovery for '{AGENT_ID}' from external application sbms-agent,"
        f" version: {edge_agent.__version__}, support URL: {ORIGIN_URL}"
    )
    assert origin in caplog.messages
    assert _log_problems(caplog) == []


async def test_a_tank_read_on_xt2_is_one_entity(
    hass: HomeAssistant, broker: MosquittoBroker
) -> None:
    """Issue 20: the demo's box (`--simulate --heater`) reads its water tank on xT2; Home
    Assistant showed that reading twice, as External temperature 2 and Heater tank
    temperature. Only the tank's entity is offered, with the state's reading."""
    system = _system(
        BoxSpec(
            wiring=OutputWiring(heat_primary_pin=5),
            heat=HeatPathSpec(tank=WaterTankSpec(draws=()), tank_sensor_on_xt2=True),
        )
    )
    assert system.config.control.diversion.tank_temperature == "external2"
    registry = er.async_get(hass)

    def tank_shown(state: dict[str, Any]) -> bool:
        entity_id = registry.async_get_entity_id(
            "sensor", mqtt.DOMAIN, f"{DEVICE_ID}_temperature_heater_tank"
        )
        shown = hass.states.get(entity_id) if entity_id is not None else None
        tank = state["temperatures"]["heater_tank"]
        if shown is None or tank is None or shown.state in (STATE_UNKNOWN, STATE_UNAVAILABLE):
            return False
        return float(shown.state) == pytest.approx(tank)

    agent = RunningAgent(broker, system)
    try:
        async with (
            _mqtt(hass, broker),
            _subscribed(hass, TOPICS.state) as state_topic,
            _subscribed(hass, DISCOVERY_TOPIC) as discovery,
        ):
            agent.start()
            await _eventually(
                "the tank's temperature shown",
                lambda: bool(state_topic.payloads) and tank_shown(state_topic.latest),
            )
            latest = state_topic.latest["temperatures"]
            assert latest["external2"] == latest["heater_tank"]  # the state keeps both keys
            # Every discovery the agent sent (at connect, and again once xT2 read) is known.
            assert discovery.payloads
            for payload in discovery.payloads:
                names = {c["name"] for c in json.loads(payload)["cmps"].values()}
                assert "Heater tank temperature" in names
                assert "External temperature 2" not in names
            assert (
                registry.async_get_entity_id(
                    "sensor", mqtt.DOMAIN, f"{DEVICE_ID}_temperature_external2"
                )
                is None
            )
            await agent.stop()
    finally:
        await agent.stop()


def _assert_entity_ids(hass: HomeAssistant) -> None:
    """Home Assistant 2025.4 does not know `default_entity_id` (its discovery schemas drop
    unknown keys silently) and builds the entity id from the device and entity names, "SBMS shed"
    + "Pack voltage" -> sensor.sbms_shed_pack_voltage; versions that know it (2025.10 on, every
    2026.x) take the key. The agent sends that same name-based id, so both give one id."""
    registry = er.async_get(hass)
    for unique_id, component in _expected_components().items():
        entity_id = registry.async_get_entity_id(component["p"], mqtt.DOMAIN, unique_id)
        name = component["name"].lower().replace(" ", "_")
        assert entity_id == f"{component['p']}.sbms_{AGENT_ID}_{name}", unique_id
        assert entity_id == component["default_entity_id"], unique_id
    assert _entity_id(hass, "sensor", "soc") == "sensor.sbms_shed_soc"
    assert _entity_id(hass, "sensor", "voltage") == "sensor.sbms_shed_pack_voltage"


def _sensors_match(hass: HomeAssistant, state: dict[str, Any]) -> bool:
    return not _sensor_mismatches(hass, state)


def _sensor_mismatches(hass: HomeAssistant, state: dict[str, Any]) -> dict[str, object]:
    """Each number Home Assistant shows that is not the one in the agent's state message."""
    expected = {
        "soc": state["soc"],
        "soc_uncertainty": state["soc_uncertainty"],  # a number from a DIY box (issue 16)
        "voltage": state["voltage"],
        "battery_power": state["battery_power"],
        "cell_min": state["cell_min"],
        "cell_max": state["cell_max"],
        "battery_in_energy": state["counters"]["battery_in_wh"] / 1000,
        "battery_out_energy": state["counters"]["battery_out_wh"] / 1000,
        "load_energy": state["counters"]["load_wh"] / 1000,
        "pv_energy": state["counters"]["pv_wh"] / 1000,
    }
    mismatches: dict[str, object] = {}
    for key, value in expected.items():
        ha_state = hass.states.get(_entity_id(hass, "sensor", key))
        shown = None if ha_state is None else ha_state.state
        if shown in (None, STATE_UNKNOWN, STATE_UNAVAILABLE) or float(
            shown  # type: ignore[arg-type]
        ) != pytest.approx(value, abs=1e-4):
            mismatches[key] = (shown, value)
    return mismatches


def _binary_sensors_match(hass: HomeAssistant, state: dict[str, Any]) -> bool:
    def on_off(flag: bool) -> str:
        return STATE_ON if flag else STATE_OFF

    expected = {
        "charge_allowed": on_off(state["charge_allowed"]),
        "load_allowed": on_off(state["load_allowed"]),
        "problem": on_off(bool(state["faults"])),
        **{f"output_{name}": on_off(on) for name, on in state["outputs"].items()},
    }
    for key, value in expected.items():
        ha_state = hass.states.get(_entity_id(hass, "binary_sensor", key))
        if ha_state is None or ha_state.state != value:
            return False
    return True


def _shows_failure(hass: HomeAssistant) -> bool:
    unmeasured = ("voltage", "battery_power", "cell_min", "cell_max")
    states = [hass.states.get(_entity_id(hass, "sensor", key)) for key in unmeasured]
    problem = hass.states.get(_entity_id(hass, "binary_sensor", "problem"))
    return (
        all(state is not None and state.state == STATE_UNKNOWN for state in states)
        and problem is not None
        and problem.state == STATE_ON
    )


def _assert_sensor_classes(hass: HomeAssistant) -> None:
    expected = {
        "soc": ("battery", "measurement", "%"),
        "soc_uncertainty": (None, "measurement", "%"),
        "voltage": ("voltage", "measurement", "V"),
        "battery_power": ("power", "measurement", "W"),
        "cell_min": ("voltage", "measurement", "V"),
        "cell_max": ("voltage", "measurement", "V"),
        # What the Energy dashboard asks of an energy sensor.
        "battery_in_energy": ("energy", "total_increasing", "kWh"),
        "battery_out_energy": ("energy", "total_increasing", "kWh"),
        "load_energy": ("energy", "total_increasing", "kWh"),
        "pv_energy": ("energy", "total_increasing", "kWh"),
    }
    for key, (device_class, state_class, unit) in expected.items():
        state = hass.states.get(_entity_id(hass, "sensor", key))
        assert state is not None
        attributes = state.attributes
        assert (
            attributes.get("device_class"),
            attributes.get("state_class"),
            attributes.get("unit_of_measurement"),
        ) == (device_class, state_class, unit), key
    problem = hass.states.get(_entity_id(hass, "binary_sensor", "problem"))
    assert problem is not None
    assert problem.attributes.get("device_class") == "problem"


def _assert_device(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    devices = dr.async_entries_for_config_entry(dr.async_get(hass), entry.entry_id)
    assert len(devices) == 1
    device = devices[0]
    assert device.identifiers == {(mqtt.DOMAIN, DEVICE_ID)}
    assert device.name == f"SBMS {AGENT_ID}"
    assert (device.manufacturer, device.model) == ("DIY", MODEL)
    assert device.sw_version == edge_agent.__version__
    assert device.serial_number == SERIAL
    entities = er.async_entries_for_device(
        er.async_get(hass), device.id, include_disabled_entities=True
    )
    assert {entity.unique_id for entity in entities} == set(_expected_components())


def _assert_cells_disabled(hass: HomeAssistant, cell_count: int) -> None:
    registry = er.async_get(hass)
    for index in range(1, cell_count + 1):
        entity_id = _entity_id(hass, "sensor", f"cell_{index}")
        entity = registry.async_get(entity_id)
        assert entity is not None
        assert entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        assert entity.entity_category is EntityCategory.DIAGNOSTIC
        assert hass.states.get(entity_id) is None  # a disabled entity has no state


def _enabled_states(hass: HomeAssistant) -> set[str]:
    states: set[str] = set()
    for unique_id, component in _expected_components().items():
        if component.get("en") is False:
            continue
        entity_id = er.async_get(hass).async_get_entity_id(component["p"], mqtt.DOMAIN, unique_id)
        state = hass.states.get(entity_id) if entity_id is not None else None
        states.add(state.state if state is not None else "missing")
    return states
