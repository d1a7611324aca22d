"""Binary sensors of a battery box: connection, permissions, outputs, faults and SoC alarms."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.util import dt as dt_util

from .entity import SbmsEntity
from .models import BoxState, OutputInfo
from .runtime_data import SbmsConfigEntry

# Push entities: nothing to poll, so no limit on parallel updates.
PARALLEL_UPDATES = 0

ATTR_FAULTS = "faults"
ATTR_HELD_OFF_UNTIL = "held_off_until"
ATTR_CELLS = "cells"
ATTR_SWITCHES = "switches"

# What an output physically switches (announce `wiring`), in words for its name and the
# logbook; an older agent says no wiring, so the type's usual use stands in.
SWITCHES_BY_WIRING = {
    "charge": "charge sources",
    "load": "loads",
    "signal": "signal",
    "fault": "fault signal",
    "heater": "heater",  # a diversion output (issue 19)
    "none": "nothing wired",
}
# By type 0-6: unused, hvd, lvd, high_soc, low_soc, fault, dual_pv.
SWITCHES_BY_TYPE = (
    "unused",
    "charge sources",
    "loads",
    "charge sources",
    "loads",
    "fault signal",
    "charge sources",
)


@dataclass(frozen=True, kw_only=True)
class SbmsBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A flag read from the agent's state.

    `measured`: unavailable while the agent reports `measurement_ok: false` (it then repeats
    the last good reading). Control decisions (permissions, outputs, faults) stay available:
    the agent keeps deciding, and fails safe, without a measurement.
    """

    value_fn: Callable[[BoxState], bool | None]
    attributes_fn: Callable[[BoxState], Mapping[str, Any]] | None = None
    measured: bool = False


STATE_SENSORS: tuple[SbmsBinarySensorEntityDescription, ...] = (
    SbmsBinarySensorEntityDescription(
        key="charge_allowed",
        translation_key="charge_allowed",
        value_fn=lambda state: state.charge_allowed,
    ),
    SbmsBinarySensorEntityDescription(
        key="load_allowed",
        translation_key="load_allowed",
        value_fn=lambda state: state.load_allowed,
    ),
    # The attribute keeps the machine names, so automations can test for one fault.
    # One line per balancing episode in the logbook, not one per cell: the cells in an attribute.
    SbmsBinarySensorEntityDescription(
        key="balancing_any",
        translation_key="balancing",
        entity_category=EntityCategory.DIAGNOSTIC,
        measured=True,
        value_fn=lambda state: any(state.balancing),
        attributes_fn=lambda state: {
            ATTR_CELLS: [index + 1 for index, on in enumerate(state.balancing) if on]
        },
    ),
    SbmsBinarySensorEntityDescription(
        key="problem",
        translation_key="problem",
        device_class=BinarySensorDeviceClass.PROBLEM,
        value_fn=lambda state: bool(state.faults),
        attributes_fn=lambda state: {ATTR_FAULTS: list(state.faults)},
    ),
)

CONNECTED = BinarySensorEntityDescription(
    key="connected",
    translation_key="connected",
    device_class=BinarySensorDeviceClass.CONNECTIVITY,
    entity_category=EntityCategory.DIAGNOSTIC,
)


# The SoC alarms as the agent decides them (levels and hysteresis live in the agent); its
# state carries them, and publishes at once when one changes. Both without a device class:
# "On"/"Off" alike (the battery class said "Normal"/"Low" for one of them only).
SOC_ALARMS: tuple[SbmsBinarySensorEntityDescription, ...] = (
    SbmsBinarySensorEntityDescription(
        key="low_soc_alarm",
        translation_key="low_soc_alarm",
        value_fn=lambda state: state.low_soc_alarm,
    ),
    SbmsBinarySensorEntityDescription(
        key="high_soc_alarm",
        translation_key="high_soc_alarm",
        value_fn=lambda state: state.high_soc_alarm,
    ),
)


# --- PV diversion (issue 19): only on a box whose state carries `diversion`, added when the
# first such state arrives. Each diversion output's own state is its output sensor above.
ATTR_SURPLUS_W = "estimated_surplus_w"
ATTR_POWER_MEASURED = "power_measured"

DIVERSION_SENSORS: tuple[SbmsBinarySensorEntityDescription, ...] = (
    SbmsBinarySensorEntityDescription(
        key="diverting",
        translation_key="diverting",
        value_fn=lambda state: None if state.diversion is None else state.diversion.diverting,
        attributes_fn=lambda state: (
            {} if state.diversion is None else {ATTR_POWER_MEASURED: state.diversion.measured}
        ),
    ),
    # As the agent's native discovery says it: diverting, or the disconnected arrays could
    # give more than 0 W. What surplus loads (surplus_loads.py) switch on.
    SbmsBinarySensorEntityDescription(
        key="surplus_available",
        translation_key="surplus_available",
        value_fn=lambda state: None if state.diversion is None else state.diversion.surplus,
        attributes_fn=lambda state: (
            {} if state.diversion is None else {ATTR_SURPLUS_W: state.diversion.available_w}
        ),
    ),
)

# --- end of PV diversion ------------------------------------------------------------------------


def switches(output: OutputInfo) -> str:
    """What an output switches, in words: its wiring, else what its type usually drives."""
    if output.wiring in SWITCHES_BY_WIRING:
        return SWITCHES_BY_WIRING[output.wiring]
    return SWITCHES_BY_TYPE[output.type] if output.type < len(SWITCHES_BY_TYPE) else "outputs"


def _output_description(output: OutputInfo) -> SbmsBinarySensorEntityDescription:
    """An output's real state; a running force_off hold shows as `held_off_until`.

    On/off without a device class (the power class made the logbook say "detected power"),
    named with what it switches: "Output extio4 (charge sources) turned off"."""

    def attributes(state: BoxState) -> Mapping[str, Any]:
        until = state.forced_off.get(output.name)
        return {} if until is None else {ATTR_HELD_OFF_UNTIL: _utc(until)}

    return SbmsBinarySensorEntityDescription(
        key="output",
        translation_key="output",
        translation_placeholders={"output": output.name, ATTR_SWITCHES: switches(output)},
        value_fn=lambda state: state.outputs.get(output.name),
        attributes_fn=attributes,
    )


def _balancing_description(index: int) -> SbmsBinarySensorEntityDescription:
    """Bleed resistor of one cell: flips often while balancing, so off by default."""
    return SbmsBinarySensorEntityDescription(
        key="balancing",
        translation_key="cell_balancing",
        translation_placeholders={"cell": str(index + 1)},
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        measured=True,
        value_fn=lambda state: state.balancing[index] if index < len(state.balancing) else None,
    )


def _utc(timestamp: float) -> datetime:
    return dt_util.utc_from_timestamp(timestamp)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the binary sensors; outputs and cells come from the box's announce."""
    coordinator = entry.runtime_data.coordinator
    announce = coordinator.data.announce
    entities: list[BinarySensorEntity] = [SbmsConnectedBinarySensor(coordinator, CONNECTED)]
    entities.extend(SbmsBinarySensorEntity(coordinator, desc) for desc in STATE_SENSORS)
    entities.extend(SbmsBinarySensorEntity(coordinator, desc) for desc in SOC_ALARMS)
    entities.extend(
        SbmsOutputBinarySensor(
            coordinator, _output_description(output), key_suffix=f"_{output.name}"
        )
        for output in announce.outputs
    )
    entities.extend(
        SbmsBinarySensorEntity(
            coordinator, _balancing_description(index), key_suffix=f"_{index + 1}"
        )
        for index in range(announce.cells)
    )
    async_add_entities(entities)

    added = False

    @callback
    def add_diversion() -> None:
        """Once the box reports a PV diversion; one such state is enough, then stop looking."""
        nonlocal added
        state = coordinator.data.state
        if added or state is None or state.diversion is None:
            return
        added = True
        remove_listener()
        async_add_entities(SbmsBinarySensorEntity(coordinator, d) for d in DIVERSION_SENSORS)

    remove_listener = coordinator.async_add_listener(add_diversion)
    entry.async_on_unload(lambda: None if added else remove_listener())
    add_diversion()


class SbmsBinarySensorEntity(SbmsEntity, BinarySensorEntity):
    """One flag of the agent's latest state."""

    entity_description: SbmsBinarySensorEntityDescription

    @property
    def available(self) -> bool:
        return self._state_available(measured=self.entity_description.measured)

    @property
    def is_on(self) -> bool | None:
        state = self.coordinator.data.state
        return None if state is None else self.entity_description.value_fn(state)

    @property
    def extra_state_attributes(self) -> Mapping[str, Any] | None:
        state = self.coordinator.data.state
        attributes_fn = self.entity_description.attributes_fn
        if state is None or attributes_fn is None:
            return None
        return attributes_fn(state)


class SbmsOutputBinarySensor(SbmsBinarySensorEntity):
    """An output, named with what it switches; its entity id stays `..._output_<name>`, as
    before the name said what it switches, so dashboards and automations keep working."""

    @property
    def suggested_object_id(self) -> str | None:
        placeholders = self.entity_description.translation_placeholders or {}
        return f"Output {placeholders.get('output', '')}"


class SbmsConnectedBinarySensor(SbmsEntity, BinarySensorEntity):
    """Whether the agent is online: the one entity that stays available to show it is not."""

    @property
    def available(self) -> bool:
        return True

    @property
    def is_on(self) -> bool:
        # Without the broker, the last `online` we heard says nothing about the agent.
        data = self.coordinator.data
        return data.online and data.broker_connected
