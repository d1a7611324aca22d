"""The Energy dashboard's own validation takes the diverted energy (issue 19) as an individual
device's consumption. With the recorder, which must start before Home Assistant."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy import validate as energy_validate
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent
from tests.integration.test_diversion_entities import diversion, diversion_present, find, publish


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: Any) -> None:
    """The recorder first (energy validation reads its statistics metadata), then ours."""


async def test_the_energy_dashboard_accepts_diverted_energy_as_a_device_consumption(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    assert await async_setup_component(hass, "energy", {})
    await setup_box(agent)
    await publish(hass, agent, diversion=diversion())
    await wait_for(hass, lambda: diversion_present(hass))
    diverted = find(hass, "diverted_energy")
    assert diverted is not None
    # The statistics of the period holding the state: what the dashboard reads.
    await async_wait_recording_done(hass)
    now = dt_util.utcnow()
    do_adhoc_statistics(
        hass, start=now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    )
    await async_wait_recording_done(hass)
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update({"device_consumption": [{"stat_consumption": diverted}]})
    await hass.async_block_till_done()
    result = (await energy_validate.async_validate(hass)).as_dict()
    assert result["device_consumption"] == [[]]
