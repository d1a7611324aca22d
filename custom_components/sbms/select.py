"""Select entities of an SBMS battery box: the type (function) of each EXTIO output.

The option shown is the type in the agent's configuration in force. Choosing another one sends
`config/set`; the agent validates it (e.g. dual PV needs an HVD output) and the entity changes
only when the agent republishes its configuration.

The options are the types the agent announces as settable for the output
(`settable_types`, which follow what the box's configuration file says the output is wired
to), so Home Assistant never offers a load type for a charge relay. An older agent that does
not announce them gets all seven types, and its own rules decide as before. The agent still
checks every change; a rejection comes back as an error carrying its reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from homeassistant.components.select import DOMAIN as SELECT_DOMAIN
from homeassistant.components.select import SelectEntity, SelectEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import DOMAIN, OUTPUT_TYPE_NAMES
from .coordinator import SbmsCoordinator, SbmsData
from .entity import SbmsEntity
from .identity import entity_unique_id
from .models import OutputInfo
from .runtime_data import SbmsConfigEntry
from .settings import output_type_in_force


def configured_output_type(data: SbmsData, output: str) -> int | None:
    """The output's type in the configuration in force, else as announced, else None."""
    return output_type_in_force(data.config, data.announce, output)


# Every change goes through the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1


@dataclass(frozen=True, kw_only=True)
class SbmsSelectEntityDescription(SelectEntityDescription):
    """A select that reads the agent's data for one output and writes a config change."""

    value_fn: Callable[[SbmsData, str], str | None]
    changes_fn: Callable[[str, str], dict[str, Any]]
    # The options this output may take; the description's `options` lists every known one.
    options_fn: Callable[[SbmsData, str], list[str]]


def output_type_options(data: SbmsData, output: str) -> list[str]:
    """The output's settable types by name, in type order, with the type in force added if
    the agent's file gave it one a remote client may not (so the state is never unknown)."""
    announced = data.announce.output(output)
    types = set(announced.remote_types) if announced is not None else set()
    if (current := configured_output_type(data, output)) is not None:
        types.add(current)
    return [OUTPUT_TYPE_NAMES[number] for number in sorted(types)]


OUTPUT_TYPE = SbmsSelectEntityDescription(
    key="output_type",
    translation_key="output_type",
    entity_category=EntityCategory.CONFIG,
    options=list(OUTPUT_TYPE_NAMES),
    options_fn=output_type_options,
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
    """One output-type select per output that has a type to choose, when the agent takes
    remote changes.

    An output whose wiring allows a single type (the fault output, an output wired to
    nothing) gets no select: a control with one option can change nothing, and its type is
    the configuration file's to set on the box. A select such an output had before (an older
    agent offered every type) is removed from the registry rather than left behind as "no
    longer provided".
    """
    coordinator = entry.runtime_data.coordinator
    announce = coordinator.data.announce
    if not announce.config_set:
        return
    selectable = [output for output in announce.outputs if output.type_choice]
    _remove_fixed_outputs(hass, coordinator, [o for o in announce.outputs if not o.type_choice])
    async_add_entities(
        SbmsOutputSelect(coordinator, OUTPUT_TYPE, output.name) for output in selectable
    )


def _remove_fixed_outputs(
    hass: HomeAssistant, coordinator: SbmsCoordinator, outputs: list[OutputInfo]
) -> None:
    """Drop the registry entries of selects for outputs whose type cannot be chosen."""
    registry = er.async_get(hass)
    for output in outputs:
        unique_id = entity_unique_id(coordinator.serial, OUTPUT_TYPE.key, f"_{output.name}")
        if entity_id := registry.async_get_entity_id(SELECT_DOMAIN, DOMAIN, unique_id):
            registry.async_remove(entity_id)


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
    def options(self) -> list[str]:
        return self.entity_description.options_fn(self.coordinator.data, self._output)

    @property
    def current_option(self) -> str | None:
        return self.entity_description.value_fn(self.coordinator.data, self._output)

    async def async_select_option(self, option: str) -> None:
        """Ask the agent; a rejection raises with its reason and the option stays as it was."""
        await self.coordinator.async_set_config(
            self.entity_description.changes_fn(self._output, option)
        )
