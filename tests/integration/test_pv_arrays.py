"""PV energy per array (issue 20): on a dual-PV box the integration adds one energy counter
per array from the state's `pv_arrays_wh`, which Home Assistant's Energy dashboard takes as
solar sources (its own validation, with the recorder, finds nothing to say)."""

from __future__ import annotations

from typing import Any

import pytest
from homeassistant.components.energy import data as energy_data
from homeassistant.components.energy import validate as energy_validate
from homeassistant.components.sensor import ATTR_STATE_CLASS, SensorDeviceClass, SensorStateClass
from homeassistant.const import (
    ATTR_DEVICE_CLASS,
    ATTR_UNIT_OF_MEASUREMENT,
    STATE_UNAVAILABLE,
    UnitOfEnergy,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.components.recorder.common import (
    async_wait_recording_done,
    do_adhoc_statistics,
)

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(recorder_mock: Any, enable_custom_integrations: Any) -> None:
    """The recorder must be set up before `hass` exists (conftest's fixture asks for `hass`)."""


def _dual_pv(agent: FakeAgent) -> None:
    """The documented box with extio5 as the dual-PV secondary array."""
    agent.announce["outputs"][2] = {
        "name": "extio5",
        "type": 6,
        "type_name": "dual_pv",
        "wiring": "charge",
        "settable_types": [0, 1, 3, 6],
    }
    agent.state.update(
        dual_pv_level=3,
        outputs={**agent.state["outputs"], "extio5": True},
        pv_arrays_wh={"extio4": 2650.4, "extio5": 5299.7},
    )


def _entity(hass: HomeAssistant, array: str) -> str:
    found = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, unique_id(f"pv_array_energy_{array}")
    )
    assert found is not None, f"no PV energy sensor for {array}"
    return found


async def test_one_energy_counter_per_array_accepted_by_the_energy_dashboard(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    _dual_pv(agent)
    await agent.publish_all()
    await setup_box(agent)
    ids = {array: _entity(hass, array) for array in ("extio4", "extio5")}
    for array, expected in (("extio4", "2.6504"), ("extio5", "5.2997")):
        state = hass.states.get(ids[array])
        assert state is not None
        assert state.state == expected
        assert state.name == f"SBMS shed PV energy {array}"
        assert state.attributes[ATTR_DEVICE_CLASS] == SensorDeviceClass.ENERGY
        assert state.attributes[ATTR_STATE_CLASS] == SensorStateClass.TOTAL_INCREASING
        assert state.attributes[ATTR_UNIT_OF_MEASUREMENT] == UnitOfEnergy.KILO_WATT_HOUR
    entry = er.async_get(hass).async_get(ids["extio4"])
    assert entry is not None
    assert entry.options["sensor"]["suggested_display_precision"] == 2

    # The Energy dashboard reads statistics: compile the 5 minutes holding these states.
    await async_wait_recording_done(hass)
    now = dt_util.utcnow()
    do_adhoc_statistics(
        hass, start=now.replace(minute=now.minute - now.minute % 5, second=0, microsecond=0)
    )
    await async_wait_recording_done(hass)
    assert await async_setup_component(hass, "energy", {})
    manager = await energy_data.async_get_manager(hass)
    await manager.async_update(
        {
            "energy_sources": [
                {
                    "type": "solar",
                    "stat_energy_from": ids["extio4"],
                    "config_entry_solar_forecast": None,
                },
                {
                    "type": "solar",
                    "stat_energy_from": ids["extio5"],
                    "config_entry_solar_forecast": None,
                },
            ]
        }
    )
    validation = await energy_validate.async_validate(hass)
    assert validation.as_dict()["energy_sources"] == [[], []]

    # An agent from before issue 20 sends no per-array counter: unavailable, not 0.
    del agent.state["pv_arrays_wh"]
    await agent.publish("state", agent.state)
    await wait_for(hass, lambda: hass.states.get(ids["extio5"]).state == STATE_UNAVAILABLE)  # type: ignore[union-attr]


async def test_no_per_array_counter_with_one_array(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    await setup_box(agent)
    registry = er.async_get(hass)
    assert not [
        entry
        for entry in er.async_entries_for_config_entry(registry, agent.config_entry().entry_id)
        if "pv_array_energy" in (entry.unique_id or "")
    ]
    assert registry.async_get_entity_id("sensor", DOMAIN, unique_id("pv_energy")) is not None
