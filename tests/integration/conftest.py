"""Home Assistant fixtures for the integration tests (pytest-homeassistant-custom-component).

The tests run Home Assistant's real `mqtt` integration against a real mosquitto that each test
starts on a free port; nothing about MQTT is mocked.
"""

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.integration.fake_agent import FakeAgent
from tests.mqtt_broker import MosquittoBroker

# pytest-homeassistant-custom-component logs every SQL statement of the recorder at INFO: a
# week of statistics would be megabytes of it in CI's output.
logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)
# Its `caplog` fixture puts the root logger at DEBUG, and the recorder's thread then logs every
# event it writes; lines logged during teardown escape pytest's capture into CI's output.
logging.getLogger("homeassistant.components.recorder").setLevel(logging.INFO)


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """HA ignores custom_components/ in tests unless this fixture is requested."""


@pytest.fixture
def mqtt_broker(socket_enabled: Any, tmp_path: Path) -> Iterator[MosquittoBroker]:
    """A real mosquitto. Request it before `hass` so it outlives Home Assistant's client."""
    with MosquittoBroker(tmp_path / "broker") as broker:
        yield broker


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], *, timeout_s: float = 10.0
) -> None:
    """Let Home Assistant and the broker work until `predicate()` holds."""
    async with asyncio.timeout(timeout_s):
        while True:
            await hass.async_block_till_done()
            if predicate():
                return
            await asyncio.sleep(0.02)


async def mqtt_settled(hass: HomeAssistant) -> None:
    """Wait until every subscription made so far is active at the broker.

    Home Assistant batches subscriptions; a retained probe subscribed last arrives only after
    the batch holding it (and every earlier one) reached the broker.
    """
    topic = f"test/probe/{uuid.uuid4().hex}"
    seen: list[ReceiveMessage] = []
    await mqtt.async_publish(hass, topic, "probe", qos=1, retain=True)

    @callback
    def arrived(message: ReceiveMessage) -> None:
        seen.append(message)

    unsubscribe = await mqtt.async_subscribe(hass, topic, arrived, qos=1)
    try:
        await wait_for(hass, lambda: bool(seen))
    finally:
        unsubscribe()
        await mqtt.async_publish(hass, topic, "", qos=1, retain=True)


async def connect_mqtt(
    hass: HomeAssistant, broker: MosquittoBroker, *, discovery: bool = True
) -> MockConfigEntry:
    """Set up Home Assistant's real MQTT integration on `broker` and wait until connected."""
    entry = MockConfigEntry(
        domain=mqtt.DOMAIN,
        data={"broker": broker.host, "port": broker.port, "discovery": discovery},
        version=mqtt.CONFIG_ENTRY_VERSION,
        minor_version=mqtt.CONFIG_ENTRY_MINOR_VERSION,
    )
    entry.add_to_hass(hass)
    with patch("homeassistant.config.async_hass_config_yaml", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(hass, lambda: mqtt.is_connected(hass))
    return entry


@pytest.fixture
async def mqtt_ready(
    mqtt_broker: MosquittoBroker, hass: HomeAssistant
) -> AsyncIterator[MockConfigEntry]:
    """Home Assistant's real MQTT integration connected to the test broker."""
    # The YAML patch stays for the test: a reload of the MQTT entry reads configuration.yaml.
    with patch("homeassistant.config.async_hass_config_yaml", return_value={}):
        entry = await connect_mqtt(hass, mqtt_broker)
        yield entry
        # Unload MQTT before the broker stops, so its client leaves no reconnect loop behind.
        if entry.state is ConfigEntryState.LOADED:
            await hass.config_entries.async_unload(entry.entry_id)
            await hass.async_block_till_done()


@pytest.fixture
async def agent(hass: HomeAssistant, mqtt_ready: MockConfigEntry) -> AsyncIterator[FakeAgent]:
    """A documented agent `shed` on the broker, answering requests, retained topics published."""
    fake = FakeAgent(hass)
    await fake.start_answering()
    await fake.publish_all()
    await mqtt_settled(hass)
    yield fake
    fake.stop_answering()


SetupBox = Callable[..., Awaitable[MockConfigEntry]]


@pytest.fixture
def setup_box(hass: HomeAssistant) -> SetupBox:
    """Set up the `sbms` entry of a fake agent and wait until its retained data arrived."""

    async def setup(fake: FakeAgent, **overrides: Any) -> MockConfigEntry:
        entry = fake.config_entry(**overrides)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await wait_for(
            hass,
            lambda: (
                entry.runtime_data.data.state is not None
                and entry.runtime_data.data.config is not None
            ),
        )
        return entry

    return setup


def box_device(hass: HomeAssistant, identifier: tuple[str, str]) -> dr.DeviceEntry | None:
    """The device with this identifier. `DeviceRegistry.async_get_device` is refused from
    Home Assistant 2026.x (identifiers are no longer unique across config entries) and its
    replacements are absent in 2025.4: a scan of the registry works on both."""
    registry = dr.async_get(hass)
    # Iterating `devices` gives ids on 2025.4 and entries on 2026.x (where `.values()` and the
    # mapping lookups are refused); `async_get(id)` works on both.
    devices = [
        registry.async_get(item) if isinstance(item, str) else item for item in registry.devices
    ]
    found = [device for device in devices if device and identifier in device.identifiers]
    assert len(found) <= 1, f"{len(found)} devices with identifier {identifier}"
    return found[0] if found else None
