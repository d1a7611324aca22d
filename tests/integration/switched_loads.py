"""What the tests of load shedding and of surplus loads share (the managers share
`loads_manager.py`, their forms a subentry flow): the managers' clock moved by the test, the
loads' service calls recorded, input_booleans as loads, a subentry of either kind and its
flow, and the entities they read.

The fixtures `clock` and `stored_clock` are in conftest.py.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from homeassistant.config_entries import SOURCE_USER
from homeassistant.const import EVENT_CALL_SERVICE
from homeassistant.core import Event, HomeAssistant, callback
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id

# What the `clock` fixture patches: the one clock of both managers.
MANAGERS_CLOCK = "custom_components.sbms.loads_manager._now"


class Clock:
    """The managers' clock, ahead of real time by `offset` seconds."""

    def __init__(self) -> None:
        self.offset = 0.0

    def now(self) -> float:
        return time.time() + self.offset

    def advance(self, hass: HomeAssistant, seconds: float) -> None:
        self.offset += seconds
        async_fire_time_changed(hass, dt_util.utc_from_timestamp(self.now()))


class Calls:
    """turn_on/turn_off service calls of the loads, in order."""

    def __init__(self) -> None:
        self.log: list[tuple[str, str]] = []

    @callback
    def record(self, event: Event[Any]) -> None:
        entity = event.data.get("service_data", {}).get("entity_id")
        if event.data["domain"] == "input_boolean":
            self.log.append((event.data["service"], entity))

    def take(self) -> list[tuple[str, str]]:
        taken, self.log = self.log, []
        return taken


async def input_boolean_loads(hass: HomeAssistant, names: Iterable[str], *, on: bool) -> Calls:
    """input_booleans as loads, all on or all off; every switching of them is recorded."""
    names = list(names)
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {name: {} for name in names}}
    )
    if on:
        for name in names:
            await hass.services.async_call(
                "input_boolean", "turn_on", {"entity_id": f"input_boolean.{name}"}, blocking=True
            )
    calls = Calls()
    hass.bus.async_listen(EVENT_CALL_SERVICE, calls.record)
    return calls


def subentry(
    subentry_type: str, subentry_id: str, entity_id: str, data: dict[str, Any]
) -> dict[str, Any]:
    """A load of either kind as a config subentry (`data` beyond the entity)."""
    return {
        "subentry_id": subentry_id,
        "subentry_type": subentry_type,
        "title": subentry_id.capitalize(),
        "unique_id": entity_id,
        "data": {"entity_id": entity_id, **data},
    }


def state(hass: HomeAssistant, entity_id: str) -> str:
    current = hass.states.get(entity_id)
    assert current is not None, entity_id
    return current.state


@dataclass(frozen=True)
class Kind:
    """One kind of switched loads as the tests see it: its per-load sensors' key, its master
    switch's key and its bus event."""

    state_key: str
    switch_key: str
    event: str

    def load_sensor(self, hass: HomeAssistant, subentry_id: str) -> str:
        return box_entity(hass, "sensor", f"{self.state_key}_{subentry_id}")

    def master_switch(self, hass: HomeAssistant) -> str:
        return box_entity(hass, "switch", self.switch_key)

    def events_of(self, hass: HomeAssistant) -> list[dict[str, Any]]:
        return events_of(hass, self.event)


async def box_with_input_booleans(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox, input_booleans: dict[str, Any]
) -> MockConfigEntry:
    """The input_booleans a form may choose, and the box set up."""
    assert await async_setup_component(hass, "input_boolean", {"input_boolean": input_booleans})
    return await setup_box(agent)


def box_entity(hass: HomeAssistant, platform: str, key: str) -> str:
    """The entity id of the box's entity `key` (a per-load sensor's key ends with its id)."""
    entity_id = er.async_get(hass).async_get_entity_id(platform, DOMAIN, unique_id(key))
    assert entity_id is not None
    return entity_id


def events_of(hass: HomeAssistant, event_type: str) -> list[dict[str, Any]]:
    """The data of every `event_type` fired from now on."""
    seen: list[dict[str, Any]] = []
    hass.bus.async_listen(event_type, lambda event: seen.append(dict(event.data)))
    return seen


async def start_flow(
    hass: HomeAssistant, entry: MockConfigEntry, subentry_type: str, **context: Any
) -> dict[str, Any]:
    """A new subentry flow of `subentry_type` (a reconfigure one with its context)."""
    result = await hass.config_entries.subentries.async_init(
        (entry.entry_id, subentry_type), context={"source": SOURCE_USER, **context}
    )
    return dict(result)


async def submit(hass: HomeAssistant, flow_id: str, values: dict[str, Any]) -> dict[str, Any]:
    return dict(await hass.config_entries.subentries.async_configure(flow_id, values))


async def reloaded(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    """Wait for the box the saved subentry reloaded."""
    await hass.async_block_till_done()
    await wait_for(hass, lambda: entry.runtime_data.coordinator.data.state is not None)
