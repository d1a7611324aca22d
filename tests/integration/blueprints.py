"""What the tests of the two blueprints share (optional load shedding, surplus loads): the
file's shape read without Home Assistant, the blueprint installed where Home Assistant looks
for it, an automation made from it, time moved on, and the loads' states."""

from __future__ import annotations

import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from homeassistant.components import automation
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util
from pytest_homeassistant_custom_component.common import async_fire_time_changed

ROOT = Path(__file__).resolve().parents[2]
BLUEPRINTS = ROOT / "blueprints" / "automation"


class _InputLoader(yaml.SafeLoader):
    """Reads `!input name` tags as plain text, to check the file's shape without HA."""


_InputLoader.add_constructor("!input", lambda loader, node: f"!input {node.value}")


def blueprint_meta(path: str) -> dict[str, Any]:
    """The `blueprint:` block of `blueprints/automation/<path>`."""
    data = yaml.load((BLUEPRINTS / path).read_text("utf-8"), Loader=_InputLoader)
    meta: dict[str, Any] = data["blueprint"]
    return meta


async def install_blueprint(hass: HomeAssistant, config_dir: Path, path: str) -> None:
    """The blueprint copied into a fresh configuration directory, and `homeassistant` set up."""
    hass.config.config_dir = str(config_dir)
    target = Path(hass.config.path(f"blueprints/automation/{path}"))
    target.parent.mkdir(parents=True)
    shutil.copy(BLUEPRINTS / path, target)
    assert await async_setup_component(hass, "homeassistant", {})


async def set_up_automation(
    hass: HomeAssistant, automation_id: str, alias: str, path: str, inputs: dict[str, Any]
) -> dict[str, Any]:
    """An automation from the installed blueprint `path` with `inputs`; its configuration."""
    config = {
        "id": automation_id,
        "alias": alias,
        "use_blueprint": {"path": path, "input": inputs},
    }
    assert await async_setup_component(hass, automation.DOMAIN, {automation.DOMAIN: [config]})
    await hass.async_block_till_done()
    return config


def states_of(hass: HomeAssistant, entity_ids: list[str]) -> list[str]:
    states = [hass.states.get(entity_id) for entity_id in entity_ids]
    return [state.state if state is not None else "missing" for state in states]


async def later(hass: HomeAssistant, seconds: float) -> None:
    async_fire_time_changed(hass, dt_util.utcnow() + timedelta(seconds=seconds))
    await hass.async_block_till_done()
