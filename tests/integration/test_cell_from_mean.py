"""Each cell's distance from the pack's mean (issue 20): what the dashboard colours the cell
gauges by, in mV, off by default like the cell voltages."""

from __future__ import annotations

from homeassistant.const import ATTR_UNIT_OF_MEASUREMENT, STATE_UNAVAILABLE
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import SetupBox, wait_for
from tests.integration.fake_agent import FakeAgent, unique_id


def _entity_id(hass: HomeAssistant, cell: int) -> str:
    found = er.async_get(hass).async_get_entity_id(
        "sensor", DOMAIN, unique_id(f"cell_from_mean_{cell}")
    )
    assert found is not None
    return found


async def _enable(hass: HomeAssistant, entry: MockConfigEntry, cells: int) -> None:
    registry = er.async_get(hass)
    for cell in range(1, cells + 1):
        entity = registry.async_get(_entity_id(hass, cell))
        assert entity is not None
        assert entity.disabled_by is er.RegistryEntryDisabler.INTEGRATION
        registry.async_update_entity(entity.entity_id, disabled_by=None)
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()


async def test_each_cell_from_the_mean_in_millivolts(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    cells = [3.30, 3.31, 3.32, 3.33, 3.34, 3.35, 3.36, 3.37]  # mean 3.335 V
    agent.state.update(cells=cells, cell_min=3.30, cell_max=3.37, cell_delta=0.07)
    await agent.publish_all()
    entry = await setup_box(agent)
    await _enable(hass, entry, 8)
    ids = [_entity_id(hass, cell) for cell in range(1, 9)]
    await wait_for(
        hass,
        lambda: all(
            (state := hass.states.get(entity)) is not None and state.state != STATE_UNAVAILABLE
            for entity in ids
        ),
    )
    states = [hass.states.get(entity) for entity in ids]
    assert [float(s.state) for s in states if s is not None] == [
        -35.0,
        -25.0,
        -15.0,
        -5.0,
        5.0,
        15.0,
        25.0,
        35.0,
    ]
    first = states[0]
    assert first is not None
    assert first.attributes[ATTR_UNIT_OF_MEASUREMENT] == "mV"
    assert first.name == "SBMS shed Cell 1 from mean"
    # Not a live reading while the agent says its measurement is stale.
    await agent.set_state(measurement_ok=False)
    await wait_for(hass, lambda: hass.states.get(ids[0]).state == STATE_UNAVAILABLE)  # type: ignore[union-attr]


async def test_a_cell_a_fraction_of_a_millivolt_from_the_mean_reads_0_not_minus_0(
    hass: HomeAssistant, agent: FakeAgent, setup_box: SetupBox
) -> None:
    cells = [3.4057, 3.4063, 3.4060, 3.4060, 3.4060, 3.4060, 3.4060, 3.4060]  # mean 3.406 V
    agent.state.update(cells=cells, cell_min=3.4057, cell_max=3.4063, cell_delta=0.0006)
    await agent.publish_all()
    entry = await setup_box(agent)
    await _enable(hass, entry, 8)
    first = _entity_id(hass, 1)
    await wait_for(
        hass,
        lambda: (state := hass.states.get(first)) is not None and state.state != STATE_UNAVAILABLE,
    )
    states = [hass.states.get(_entity_id(hass, cell)) for cell in range(1, 9)]
    assert [s.state for s in states if s is not None] == ["0.0"] * 8
