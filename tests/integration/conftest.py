"""Home Assistant fixtures for the integration tests (pytest-homeassistant-custom-component).

The tests run Home Assistant's real `mqtt` integration against a real mosquitto that each test
starts on a free port; nothing about MQTT is mocked.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any
from unittest.mock import patch

import pytest
from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.helpers.hass import SetupBox, connect_mqtt, mqtt_settled, wait_for
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.integration.fake_agent import FakeAgent
from tests.integration.switched_loads import MANAGERS_CLOCK, Clock

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
                entry.runtime_data.coordinator.data.state is not None
                and entry.runtime_data.coordinator.data.config is not None
            ),
        )
        return entry

    return setup


@pytest.fixture
def clock() -> Iterator[Clock]:
    """The clock of the load-shedding and surplus-load managers, moved by the test."""
    clock = Clock()
    with patch(MANAGERS_CLOCK, clock.now):
        yield clock


@pytest.fixture
def stored_clock(clock: Clock, hass_storage: dict[str, Any]) -> tuple[Clock, dict[str, Any]]:
    """The clock and Home Assistant's (in-memory) storage, for the restart tests."""
    return clock, hass_storage
