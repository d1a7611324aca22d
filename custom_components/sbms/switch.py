"""Switch entities of an SBMS battery box.

"Hold <output> off": on means the agent holds that output off (a `force_off` hold, for the
"Hold duration" number's time); off means the output is back under automatic control
(`cancel_force_off`). Nothing here can switch an output on: the agent's protection always
decides, and a hold only ever takes a source or load away. The fault output has no hold.

Two configuration switches follow the agent's settings: the max-SoC charge limit and whether
lockouts latch until cleared.

Every switch shows what the agent reports (its state's `forced_off`, its configuration in
force), never the wish: after a command it changes when the agent's next message says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import HOLD_DURATION_MAX_H
from .coordinator import HoldDuration, SbmsCoordinator
from .entity import SbmsEntity
from .loads_manager import SwitchedLoadsManager
from .models import AgentConfig
from .number import holdable_outputs
from .runtime_data import SbmsConfigEntry

# Every change goes through the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1

HOLD_SECONDS_MAX = round(HOLD_DURATION_MAX_H * 3600)  # 604800, the agent's force_off limit


@dataclass(frozen=True, kw_only=True)
class SbmsConfigSwitchEntityDescription(SwitchEntityDescription):
    """A switch backed by one true/false setting of the agent's configuration."""

    value_fn: Callable[[AgentConfig], bool | None]
    changes_fn: Callable[[bool], dict[str, Any]]
    entity_category: EntityCategory | None = EntityCategory.CONFIG


def _flag(value: Any) -> bool | None:
    return value if isinstance(value, bool) else None


CONFIG_SWITCHES: tuple[SbmsConfigSwitchEntityDescription, ...] = (
    # Only ever more conservative: charging stops below 100 % except the daily full charge.
    SbmsConfigSwitchEntityDescription(
        key="max_soc_enabled",
        translation_key="max_soc_enabled",
        value_fn=lambda config: _flag(config.value("max_soc", "enabled")),
        changes_fn=lambda on: {"max_soc": {"enabled": on}},
    ),
    SbmsConfigSwitchEntityDescription(
        key="lockouts_latch",
        translation_key="lockouts_latch",
        value_fn=lambda config: _flag(config.data.get("lockouts_latch")),
        changes_fn=lambda on: {"lockouts_latch": on},
        entity_registry_enabled_default=False,
    ),
)

HOLD_OFF = SwitchEntityDescription(key="hold_off", translation_key="hold_off")


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Hold switches for the outputs a hold fits; setting switches if the agent takes them."""
    runtime = entry.runtime_data
    coordinator = runtime.coordinator
    announce = coordinator.data.announce
    entities: list[SwitchEntity] = [
        SbmsHoldOffSwitch(coordinator, HOLD_OFF, output, runtime.hold)
        for output in holdable_outputs(announce)
    ]
    if announce.config_set:
        entities += [SbmsConfigSwitch(coordinator, description) for description in CONFIG_SWITCHES]
    async_add_entities(entities)
    async_add_entities(
        [
            SbmsSwitchedLoadsSwitch(coordinator, LOAD_SHEDDING, runtime.shedding),
            SbmsSwitchedLoadsSwitch(coordinator, SURPLUS_LOADS, runtime.surplus),
        ]
    )


class SbmsHoldOffSwitch(SbmsEntity, SwitchEntity):
    """On while the agent holds this output off."""

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        description: SwitchEntityDescription,
        output: str,
        hold: HoldDuration,
    ) -> None:
        super().__init__(coordinator, description, key_suffix=f"_{output}")
        self._output = output
        self._hold = hold
        self._attr_translation_placeholders = {"output": output}

    @property
    def is_on(self) -> bool | None:
        state = self.coordinator.data.state
        return None if state is None else self._output in state.forced_off

    async def async_turn_on(self, **kwargs: Any) -> None:
        """Hold the output off; the agent refuses it for an output that must not be held."""
        await self.coordinator.async_command(
            "force_off", output=self._output, seconds=self._hold_seconds()
        )

    async def async_turn_off(self, **kwargs: Any) -> None:
        """Give the output back to automatic control (it is not switched on by this)."""
        await self.coordinator.async_command("cancel_force_off", output=self._output)

    def _hold_seconds(self) -> int:
        """The "Hold duration" number's value (the box's runtime data keeps it), in seconds
        within what force_off takes."""
        return min(max(round(self._hold.hours * 3600), 1), HOLD_SECONDS_MAX)


class SbmsConfigSwitch(SbmsEntity, SwitchEntity):
    """A true/false setting of the agent's configuration in force."""

    entity_description: SbmsConfigSwitchEntityDescription

    @property
    def is_on(self) -> bool | None:
        config = self.coordinator.data.config
        return None if config is None else self.entity_description.value_fn(config)

    async def async_turn_on(self, **kwargs: Any) -> None:
        await self.coordinator.async_set_config(self.entity_description.changes_fn(True))

    async def async_turn_off(self, **kwargs: Any) -> None:
        await self.coordinator.async_set_config(self.entity_description.changes_fn(False))


# The master switches of load shedding and of surplus loads (issue 19), Home Assistant settings
# kept across restarts. Off, nothing is switched: what shedding switched off stays off, what
# surplus loads switched on stays on.
LOAD_SHEDDING = SwitchEntityDescription(
    key="load_shedding", translation_key="load_shedding", entity_category=EntityCategory.CONFIG
)
SURPLUS_LOADS = SwitchEntityDescription(
    key="surplus_loads", translation_key="surplus_loads", entity_category=EntityCategory.CONFIG
)


class SbmsSwitchedLoadsSwitch(SbmsEntity, SwitchEntity):
    """The master switch of one kind of switched loads (loads_manager.py)."""

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        description: SwitchEntityDescription,
        manager: SwitchedLoadsManager[Any, Any, Any],
    ) -> None:
        super().__init__(coordinator, description)
        self._manager = manager

    @property
    def is_on(self) -> bool:
        return self._manager.enabled

    async def async_turn_on(self, **kwargs: Any) -> None:
        self._manager.async_set_enabled(True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        self._manager.async_set_enabled(False)

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._manager.async_add_listener(self.async_write_ha_state))
