"""Number entities of an SBMS battery box: its protection thresholds and a few settings.

Each value is the agent's configuration in force; setting one sends `config/set` and the entity
moves only when the agent republishes its configuration.

The range of each number is the box's remote window (`config.remote_window`): how far the
box's configuration file lets a remote client move that setting. Home Assistant then refuses
a value the agent would refuse anyway, before sending it. An older agent publishes no window;
then the ranges below apply, the agent's own per-value limits of the time. The rules across
values (uvlo < lvd < lvd_reconnect < hvd_reconnect < eoc <= hvd < ovlo, release levels inside
their alarms, ...) stay with the agent, which rejects a change that breaks them and says why.
The integration ships without the agent, so none of this is imported from it.

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
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import SbmsConfigEntry, SbmsCoordinator
from .entity import SbmsEntity
from .models import Announce

# Every change goes through the agent one request at a time; no polling happens here.
PARALLEL_UPDATES = 1

# The agent's per-value limits (edge_agent/config.py and publish_settings.py).
CELL_VOLTAGE_MIN = 2.0
CELL_VOLTAGE_MAX = 4.3
TEMPERATURE_MIN = -40.0
TEMPERATURE_MAX = 125.0
PUBLISH_INTERVAL_MAX_S = 3600.0
# The agent only asks imax > 0; no charge path of a DIY box carries more than this.
DUAL_PV_IMAX_MAX_A = 1000.0
# How long a limit's condition must hold before it trips (the LFP envelope's longest, LVD's).
TRIP_DELAY_MAX_S = 30.0

# The Home Assistant side hold duration. force_off takes 1 s to 7 days; a default of 8 hours
# covers "keep the loads off tonight" and bounds a forgotten hold to one working day.
HOLD_DURATION_KEY = "hold_duration"
HOLD_DURATION_DEFAULT_H = 8.0
HOLD_DURATION_MIN_H = 0.25
HOLD_DURATION_MAX_H = 168.0  # 604800 s, the agent's limit for force_off

# Output types that force_off accepts: charge, load, alarm and dual-PV outputs.
HOLDABLE_OUTPUT_TYPES = frozenset({1, 2, 3, 4, 6})
OUTPUT_TYPE_DUAL_PV = 6


def holdable_outputs(announce: Announce) -> list[str]:
    """Outputs a hold can apply to, when the agent takes both hold commands."""
    if not {"force_off", "cancel_force_off"} <= announce.commands:
        return []
    return [output.name for output in announce.outputs if output.type in HOLDABLE_OUTPUT_TYPES]


@dataclass(frozen=True, kw_only=True)
class SbmsNumberEntityDescription(NumberEntityDescription):
    """A number backed by one key of one section of the agent's configuration."""

    section: str
    setting: str
    exists_fn: Callable[[Announce], bool] = lambda _announce: True
    # Added within protocol version 1: an older agent's config lacks it, and the entity is
    # then unavailable (nothing to show, and the agent would refuse the unknown key).
    added_later: bool = False
    mode: NumberMode = NumberMode.BOX
    entity_category: EntityCategory | None = EntityCategory.CONFIG


def _threshold(
    setting: str, *, enabled_default: bool = True, step: float = 0.01
) -> SbmsNumberEntityDescription:
    """A per-cell voltage threshold; the agent enforces their order."""
    return SbmsNumberEntityDescription(
        key=f"threshold_{setting}",
        translation_key=f"threshold_{setting}",
        section="thresholds",
        setting=setting,
        device_class=NumberDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        native_min_value=CELL_VOLTAGE_MIN,
        native_max_value=CELL_VOLTAGE_MAX,
        native_step=step,
        entity_registry_enabled_default=enabled_default,
    )


def _trip_delay(setting: str, *, enabled_default: bool = True) -> SbmsNumberEntityDescription:
    """How long a threshold's condition must hold before it trips."""
    return SbmsNumberEntityDescription(
        key=f"threshold_{setting}",
        translation_key=f"threshold_{setting}",
        section="thresholds",
        setting=setting,
        device_class=NumberDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        native_min_value=0.0,
        native_max_value=TRIP_DELAY_MAX_S,
        native_step=0.1,
        entity_registry_enabled_default=enabled_default,
        added_later=True,
    )


def _soc_alarm(setting: str) -> SbmsNumberEntityDescription:
    """A SoC alarm level (output types 3 and 4, the SoC alarm events)."""
    return SbmsNumberEntityDescription(
        key=f"soc_alarm_{setting}",
        translation_key=f"soc_alarm_{setting}",
        section="soc_alarms",
        setting=setting,
        native_unit_of_measurement=PERCENTAGE,
        native_min_value=0.0,
        native_max_value=100.0,
        native_step=1.0,
    )


def _battery_temperature(setting: str, *, added_later: bool = False) -> SbmsNumberEntityDescription:
    """A charge or discharge temperature limit; it acts on the battery sensor, so only a box
    with one."""
    return SbmsNumberEntityDescription(
        key=f"temperature_{setting}",
        translation_key=f"temperature_{setting}",
        section="temperature",
        setting=setting,
        device_class=NumberDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        native_min_value=TEMPERATURE_MIN,
        native_max_value=TEMPERATURE_MAX,
        native_step=0.5,
        exists_fn=lambda announce: "battery" in announce.temperatures,
        added_later=added_later,
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
    _trip_delay("lvd_delay_s"),
    _trip_delay("hvd_delay_s", enabled_default=False),
    _soc_alarm("high"),
    _soc_alarm("high_release"),
    _soc_alarm("low"),
    _soc_alarm("low_release"),
    _battery_temperature("charge_min"),
    _battery_temperature("charge_max"),
    _battery_temperature("discharge_min", added_later=True),
    _battery_temperature("discharge_max", added_later=True),
    SbmsNumberEntityDescription(
        key="dual_pv_imax",
        translation_key="dual_pv_imax",
        section="dual_pv",
        setting="imax",
        device_class=NumberDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        native_min_value=0.1,
        native_max_value=DUAL_PV_IMAX_MAX_A,
        native_step=0.1,
        # Imax only stages a dual-PV (type 6) output.
        exists_fn=lambda announce: any(
            output.type == OUTPUT_TYPE_DUAL_PV for output in announce.outputs
        ),
    ),
    SbmsNumberEntityDescription(
        key="max_soc",
        translation_key="max_soc",
        section="max_soc",
        setting="max_soc",
        native_unit_of_measurement=PERCENTAGE,
        native_min_value=10.0,
        native_max_value=100.0,
        native_step=1.0,
    ),
    SbmsNumberEntityDescription(
        key="publish_interval",
        translation_key="publish_interval",
        section="publish",
        setting="interval_s",
        device_class=NumberDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        native_min_value=1.0,
        native_max_value=PUBLISH_INTERVAL_MAX_S,
        native_step=1.0,
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
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
    coordinator = entry.runtime_data
    announce = coordinator.data.announce
    entities: list[NumberEntity] = []
    if announce.config_set:
        entities += [
            SbmsConfigNumber(coordinator, description)
            for description in NUMBERS
            if description.exists_fn(announce)
        ]
    if holdable_outputs(announce):
        entities.append(SbmsHoldDurationNumber(coordinator, HOLD_DURATION))
    async_add_entities(entities)


class SbmsConfigNumber(SbmsEntity, NumberEntity):
    """One setting of the agent's configuration in force."""

    entity_description: SbmsNumberEntityDescription

    @property
    def available(self) -> bool:
        if not super().available:
            return False
        description = self.entity_description
        config = self.coordinator.data.config
        # An older agent has no such setting: unavailable rather than unknown forever.
        return not (
            description.added_later
            and config is not None
            and config.value(description.section, description.setting) is None
        )

    @property
    def native_min_value(self) -> float:
        window = self._window()
        return super().native_min_value if window is None else window[0]

    @property
    def native_max_value(self) -> float:
        window = self._window()
        return super().native_max_value if window is None else window[1]

    def _window(self) -> tuple[float, float] | None:
        """The box's remote window for this setting, None before the config or without one."""
        config = self.coordinator.data.config
        if config is None:
            return None
        return config.remote_window(
            self.entity_description.section, self.entity_description.setting
        )

    @property
    def native_value(self) -> float | None:
        config = self.coordinator.data.config
        if config is None:
            return None
        value = config.value(self.entity_description.section, self.entity_description.setting)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    async def async_set_native_value(self, value: float) -> None:
        """Ask the agent; a rejection raises with its reason and the value stays as it was."""
        description = self.entity_description
        await self.coordinator.async_set_config({description.section: {description.setting: value}})


class SbmsHoldDurationNumber(SbmsEntity, RestoreNumber):
    """How long a hold switch holds its output off: a Home Assistant setting, restored."""

    def __init__(self, coordinator: SbmsCoordinator, description: NumberEntityDescription) -> None:
        super().__init__(coordinator, description)
        self._attr_native_value = HOLD_DURATION_DEFAULT_H

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        last = await self.async_get_last_number_data()
        if last is not None and last.native_value is not None:
            # Clamp a value stored under other limits, so a hold never exceeds the agent's.
            self._attr_native_value = min(
                max(last.native_value, HOLD_DURATION_MIN_H), HOLD_DURATION_MAX_H
            )

    async def async_set_native_value(self, value: float) -> None:
        self._attr_native_value = value
        self.async_write_ha_state()
