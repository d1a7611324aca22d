"""Base class of every SBMS entity: one device per battery box, unique ids from its serial."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .coordinator import SbmsCoordinator
from .identity import device_identifier, entity_unique_id


class SbmsEntity(CoordinatorEntity[SbmsCoordinator]):
    """An entity of one battery box, unavailable while its agent is offline."""

    _attr_has_entity_name = True

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        description: EntityDescription,
        *,
        key_suffix: str = "",
    ) -> None:
        """`key_suffix` tells apart the entities one description makes per cell or output."""
        super().__init__(coordinator)
        self.entity_description = description
        self._attr_unique_id = entity_unique_id(coordinator.serial, description.key, key_suffix)
        self._attr_device_info = DeviceInfo(identifiers={device_identifier(coordinator.serial)})

    @property
    def available(self) -> bool:
        return self._agent_available()

    def _agent_available(self) -> bool:
        return super().available and self.coordinator.data.available

    def _state_available(self, *, measured: bool) -> bool:
        """Available with a state to read; a measured value also needs a good measurement,
        because while measurements fail the agent repeats the last good reading."""
        state = self.coordinator.data.state
        if not self._agent_available() or state is None:
            return False
        return state.measurement_ok or not measured
