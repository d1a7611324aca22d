"""Number entities of an SBMS battery box: its protection thresholds and a few settings.

Each value is the agent's configuration in force; setting one sends `config/set` and the entity
moves only when the agent republishes its configuration. Unit, limits and step come from the
settings catalogue (settings.py), which the settings form reads too; the range of each number
is the box's remote window (`config.remote_window`), so Home Assistant refuses a value the
agent would refuse anyway, before sending it.

One number is Home Assistant's own: how long "Hold <output> off" holds an output off.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.number import (
    NumberDeviceClass,
    NumberEntity,
    NumberEntityDescription,
    NumberMode,
    RestoreNumber,
)
from homeassistant.const import EntityCategory, UnitOfTime
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .const import HOLD_DURATION_DEFAULT_H, HOLD_DURATION_MAX_H, HOLD_DURATION_MIN_H
from .coordinator import HoldDuration, SbmsCoordinator
from .entity import SbmsEntity
from .models import Announce
from .runtime_data import SbmsConfigEntry
from .settings import SETTINGS, Setting

# Every change goes through the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1

HOLD_DURATION_KEY = "hold_duration"

# Output types that force_off accepts: charge, load, alarm and dual-PV outputs.
HOLDABLE_OUTPUT_TYPES = frozenset({1, 2, 3, 4, 6})


def holdable_outputs(announce: Announce) -> list[str]:
    """Outputs a hold can apply to, when the agent takes both hold commands."""
    if not {"force_off", "cancel_force_off"} <= announce.commands:
        return []
    return [output.name for output in announce.outputs if output.type in HOLDABLE_OUTPUT_TYPES]


@dataclass(frozen=True, kw_only=True)
class SbmsNumberEntityDescription(NumberEntityDescription):
    """A number backed by one setting of the catalogue."""

    setting: Setting
    exists_fn: Callable[[Announce], bool] = lambda _announce: True
    mode: NumberMode = NumberMode.BOX
    entity_category: EntityCategory | None = EntityCategory.CONFIG


def _number(
    key: str,
    setting: str,
    *,
    device_class: NumberDeviceClass | None = None,
    enabled_default: bool = True,
    exists_fn: Callable[[Announce], bool] = lambda _announce: True,
    entity_category: EntityCategory = EntityCategory.CONFIG,
) -> SbmsNumberEntityDescription:
    """The entity of catalogue setting `setting` (`section.key`), with its unit, limits and
    step; a setting without an upper limit on the form has no entity."""
    catalogue = SETTINGS[setting]
    assert catalogue.maximum is not None
    return SbmsNumberEntityDescription(
        key=key,
        translation_key=key,
        setting=catalogue,
        device_class=device_class,
        native_unit_of_measurement=catalogue.unit,
        native_min_value=catalogue.minimum,
        native_max_value=catalogue.maximum,
        native_step=catalogue.step,
        entity_registry_enabled_default=enabled_default,
        exists_fn=exists_fn,
        entity_category=entity_category,
    )


def _threshold(key: str, *, enabled_default: bool = True) -> SbmsNumberEntityDescription:
    """A per-cell voltage threshold or a trip delay; the agent enforces their order."""
    return _number(
        f"threshold_{key}",
        f"thresholds.{key}",
        device_class=(
            NumberDeviceClass.DURATION if key.endswith("_delay_s") else NumberDeviceClass.VOLTAGE
        ),
        enabled_default=enabled_default,
    )


def _battery_temperature(key: str) -> SbmsNumberEntityDescription:
    """A charge or discharge temperature limit; it acts on the battery sensor, so only a box
    with one."""
    return _number(
        f"temperature_{key}",
        f"temperature.{key}",
        device_class=NumberDeviceClass.TEMPERATURE,
        exists_fn=lambda announce: "battery" in announce.temperatures,
    )


NUMBERS: tuple[SbmsNumberEntityDescription, ...] = (
    _threshold("hvd"),
    _threshold("hvd_reconnect"),
    _threshold("eoc"),
    _threshold("lvd"),
    _threshold("lvd_reconnect"),
    # The lockouts are the last line behind HVD/LVD, set once for the cells: hidden until
    # someone enables them on purpose.
    _threshold("ovlo", enabled_default=False),
    _threshold("uvlo", enabled_default=False),
    # Loads off only after the LVD condition held this long: worth seeing next to LVD. The
    # HVD delay is short and rarely changed (charge must stop promptly): hidden by default.
    _threshold("lvd_delay_s"),
    _threshold("hvd_delay_s", enabled_default=False),
    # SoC alarm levels (output types 3 and 4, the SoC alarm events).
    *(_number(f"soc_alarm_{key}", f"soc_alarms.{key}") for key in ("high", "high_release")),
    *(_number(f"soc_alarm_{key}", f"soc_alarms.{key}") for key in ("low", "low_release")),
    _battery_temperature("charge_min"),
    _battery_temperature("charge_max"),
    _battery_temperature("discharge_min"),
    _battery_temperature("discharge_max"),
    # Imax only stages a dual-PV (type 6) output.
    _number(
        "dual_pv_imax",
        "dual_pv.imax",
        device_class=NumberDeviceClass.CURRENT,
        exists_fn=lambda announce: announce.has_dual_pv,
    ),
    _number("max_soc", "max_soc.max_soc"),
    _number(
        "publish_interval",
        "publish.interval_s",
        device_class=NumberDeviceClass.DURATION,
        entity_category=EntityCategory.DIAGNOSTIC,
        enabled_default=False,
    ),
)

HOLD_DURATION = NumberEntityDescription(
    key=HOLD_DURATION_KEY,
    translation_key=HOLD_DURATION_KEY,
    entity_category=EntityCategory.CONFIG,
    device_class=NumberDeviceClass.DURATION,
    native_unit_of_measurement=UnitOfTime.HOURS,
    native_min_value=HOLD_DURATION_MIN_H,
    native_max_value=HOLD_DURATION_MAX_H,
    native_step=0.25,
    mode=NumberMode.BOX,
)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """The settings the agent takes remotely, and the hold duration when holds exist."""
    coordinator = entry.runtime_data.coordinator
    announce = coordinator.data.announce
    entities: list[NumberEntity] = []
    if announce.config_set:
        entities += [
            SbmsConfigNumber(coordinator, description)
            for description in NUMBERS
            if description.exists_fn(announce)
        ]
    if holdable_outputs(announce):
        entities.append(SbmsHoldDurationNumber(coordinator, HOLD_DURATION, entry.runtime_data.hold))
    async_add_entities(entities)


class SbmsConfigNumber(SbmsEntity, NumberEntity):
    """One setting of the agent's configuration in force."""

    entity_description: SbmsNumberEntityDescription

    @property
    def available(self) -> bool:
        config = self.coordinator.data.config
        # An older agent has no such setting: unavailable rather than unknown forever.
        return super().available and (
            config is None or self.entity_description.setting.offered_by(config)
        )

    @property
    def native_min_value(self) -> float:
        return self.entity_description.setting.bounds(self.coordinator.data.config)[0]

    @property
    def native_max_value(self) -> float:
        high = self.entity_description.setting.bounds(self.coordinator.data.config)[1]
        return super().native_max_value if high is None else high

    @property
    def native_value(self) -> float | None:
        config = self.coordinator.data.config
        return None if config is None else self.entity_description.setting.value(config)

    async def async_set_native_value(self, value: float) -> None:
        """Ask the agent; a rejection raises with its reason and the value stays as it was."""
        setting = self.entity_description.setting
        await self.coordinator.async_set_config({setting.section: {setting.key: value}})


class SbmsHoldDurationNumber(SbmsEntity, RestoreNumber):
    """How long a hold switch holds its output off: a Home Assistant setting, restored, that
    the switches read from the entry's runtime data (never from this entity's state)."""

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        description: NumberEntityDescription,
        hold: HoldDuration,
    ) -> None:
        super().__init__(coordinator, description)
        self._hold = hold
        self._attr_native_value = hold.hours

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_number_data()
        if last is not None and last.native_value is not None:
            # Clamp a value stored under other limits, so a hold never exceeds the agent's.
            self._set(min(max(last.native_value, HOLD_DURATION_MIN_H), HOLD_DURATION_MAX_H))

    async def async_will_remove_from_hass(self) -> None:
        # Disabled or removed: the switches go back to the default.
        self._hold.hours = HOLD_DURATION_DEFAULT_H
        await super().async_will_remove_from_hass()

    async def async_set_native_value(self, value: float) -> None:
        self._set(value)
        self.async_write_ha_state()

    def _set(self, hours: float) -> None:
        self._attr_native_value = hours
        self._hold.hours = hours
