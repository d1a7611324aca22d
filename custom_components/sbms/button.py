"""Button entities of an SBMS battery box: the agent's one-shot commands.

A button exists only when the agent announces its command. Pressing sends `cmd/<name>`; the
agent decides whether it is safe (zero-current calibration is refused under load, a lockout
clears only once its condition is gone) and a refusal comes back as an error with its reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from homeassistant.components.button import ButtonEntity, ButtonEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .entity import SbmsEntity
from .runtime_data import SbmsConfigEntry

# Every press goes to the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class SbmsButtonEntityDescription(ButtonEntityDescription):
    """A button that sends one argument-less agent command."""

    command: str


BUTTONS: tuple[SbmsButtonEntityDescription, ...] = (
    # Tells the SoC estimator the pack is full now (a soc_sync event follows).
    SbmsButtonEntityDescription(
        key="mark_full",
        translation_key="mark_full",
        command="mark_full",
    ),
    # Learns the current-sense offset; only right with no current flowing, hence config.
    SbmsButtonEntityDescription(
        key="zero_current",
        translation_key="zero_current",
        command="zero_current",
        entity_category=EntityCategory.CONFIG,
    ),
    SbmsButtonEntityDescription(
        key="clear_fault",
        translation_key="clear_fault",
        command="clear_fault",
    ),
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """A button for each announced command that has one."""
    coordinator = entry.runtime_data.coordinator
    commands = coordinator.data.announce.commands
    async_add_entities(
        SbmsButton(coordinator, description)
        for description in BUTTONS
        if description.command in commands
    )


class SbmsButton(SbmsEntity, ButtonEntity):
    """Sends one command to the agent."""

    entity_description: SbmsButtonEntityDescription

    async def async_press(self) -> None:
        """Raises with the agent's reason when it refuses."""
        await self.coordinator.async_command(self.entity_description.command)
