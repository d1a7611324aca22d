"""Waiting on Home Assistant and its real MQTT integration in tests (imports Home Assistant:
for tests/integration only)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Awaitable, Callable
from unittest.mock import patch

from homeassistant.components import mqtt
from homeassistant.components.mqtt.models import ReceiveMessage
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr
from pytest_homeassistant_custom_component.common import MockConfigEntry

from tests.helpers.mqtt_broker import MosquittoBroker

# How long a wait may take before the test fails: a deadline for a broken test, not a timing
# margin (a wait returns as soon as what it waits for happened), so generous for a busy machine.
WAIT_S = 30.0


async def wait_for(
    hass: HomeAssistant, predicate: Callable[[], bool], *, timeout_s: float = WAIT_S
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


SetupBox = Callable[..., Awaitable[MockConfigEntry]]


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
