"""Select entities of an SBMS battery box: the type (function) of each EXTIO output.

The option shown is the type in the agent's configuration in force. Choosing another one sends
`config/set`; the agent validates it (e.g. dual PV needs an HVD output) and the entity changes
only when the agent republishes its configuration. The fault output is not locked here: the
agent owns the output rules, and a rejection comes back as an error carrying its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import OUTPUT_TYPE_NAMES
from .coordinator import SbmsConfigEntry, SbmsCoordinator, SbmsData
from .entity import SbmsEntity

# Every change goes through the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1


def configured_output_type(data: SbmsData, output: str) -> int | None:
    """The output's type in the configuration in force, else as announced, else None."""
    if data.config is not None:
        for item in data.config.data.get("outputs", []):
            if isinstance(item, dict) and item.get("name") == output:
                return _output_type(item.get("type"))
    announced = data.announce.output(output)
    return announced.type if announced is not None else None


def _output_type(value: Any) -> int | None:
    """A valid type number, None for anything else (a malformed configuration)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < len(OUTPUT_TYPE_NAMES) else None


@dataclass(frozen=True, kw_only=True)
class SbmsSelectEntityDescription(SelectEntityDescription):
    """A select that reads the agent's data for one output and writes a config change."""

    value_fn: Callable[[SbmsData, str], str | None]
    changes_fn: Callable[[str, str], dict[str, Any]]


OUTPUT_TYPE = SbmsSelectEntityDescription(
    key="output_type",
    translation_key="output_type",
    entity_category=EntityCategory.CONFIG,
    options=list(OUTPUT_TYPE_NAMES),
    value_fn=lambda data, output: (
        None
        if (output_type := configured_output_type(data, output)) is None
        else OUTPUT_TYPE_NAMES[output_type]
    ),
    changes_fn=lambda output, option: {
        "outputs": {output: {"type": OUTPUT_TYPE_NAMES.index(option)}}
    },
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """One output-type select per announced output, when the agent takes remote changes."""
    coordinator = entry.runtime_data
    announce = coordinator.data.announce
    if not announce.config_set:
        return
    async_add_entities(
        SbmsOutputSelect(coordinator, OUTPUT_TYPE, output.name) for output in announce.outputs
    )


class SbmsOutputSelect(SbmsEntity, SelectEntity):
    """The type of one EXTIO output, as the agent has it."""

    entity_description: SbmsSelectEntityDescription

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        description: SbmsSelectEntityDescription,
        output: str,
    ) -> None:
        super().__init__(coordinator, description, key_suffix=f"_{output}")
        self._output = output
        self._attr_translation_placeholders = {"output": output}

    @property
    def current_option(self) -> str | None:
        return self.entity_description.value_fn(self.coordinator.data, self._output)

    async def async_select_option(self, option: str) -> None:
        """Ask the agent; a rejection raises with its reason and the option stays as it was."""
        await self.coordinator.async_set_config(
            self.entity_description.changes_fn(self._output, option)
        )
