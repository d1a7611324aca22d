"""Sensors of a battery box: the measurements, estimates and counters of the agent's `state`."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTemperature,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback
from homeassistant.helpers.typing import StateType

from .const import OUTPUT_TYPE_DUAL_PV
from .coordinator import SbmsCoordinator
from .entity import SbmsEntity
from .history import CounterFn, MeasurementFn
from .load_shedding import LoadSettings, LoadStatus
from .loads_manager import SwitchedLoadsManager
from .models import AgentConfig, Announce, BoxState, HistoryRecord, Reading
from .runtime_data import SbmsConfigEntry
from .shedding_manager import LOAD_STATE_KEY
from .surplus_loads import SurplusLoadSettings, SurplusStatus
from .surplus_manager import SURPLUS_STATE_KEY
from .switched_loads import SwitchedLoad

# Push entities: nothing to poll, so no limit on parallel updates.
PARALLEL_UPDATES = 0

UNIT_AMPERE_HOUR = "Ah"
SOURCE_SBMS0 = "sbms0"  # announce `source` of a stock SBMS0/SBMS120


@dataclass(frozen=True, kw_only=True)
class SbmsSensorEntityDescription(SensorEntityDescription):
    """A sensor read from the agent's state.

    `measured`: the value comes from the present measurement, so it is unavailable while the
    agent reports `measurement_ok: false` (it then repeats the last good value, which must not
    pass for a live one). Estimates (SoC) and counters stay available while the agent is online.
    """

    value_fn: Callable[[BoxState], StateType]
    exists_fn: Callable[[Announce], bool] = lambda _: True
    measured: bool = True
    # Unavailable (not unknown) while the value is null or absent: a quantity the agent may not
    # estimate at all (an older agent, or a stock SBMS0 source).
    needs_value: bool = False
    # What the agent's data log holds for this sensor, for the back-fill of statistics
    # (backfill.py): a reading per record for measurements, a value for energy counters.
    history_reading_fn: MeasurementFn | None = None
    history_counter_fn: CounterFn | None = None
    # An input the box may have left unfitted (xT2): the entity is added once the box reports
    # a value, so a box without the sensor has no entity forever unknown.
    added_when_read: bool = False
    # With `added_when_read`: what "reported" means when not "the value is not None" (a PV
    # diversion's surplus is null while it cannot be estimated, yet the box has one).
    reported_fn: Callable[[BoxState], bool] | None = None
    attributes_fn: Callable[[BoxState], dict[str, Any]] | None = None
    # Attributes read from the box's configuration (the retained `config`), beside the state's.
    config_attributes_fn: Callable[[AgentConfig], dict[str, Any]] | None = None
    # With `added_when_read`: the box's configuration says this input is shown by another
    # entity (xT2 read as the heater tank's): not added while it says so, nor before it is known.
    shown_elsewhere_fn: Callable[[AgentConfig], bool] | None = None


def _has_pv_shunt(announce: Announce) -> bool:
    return announce.pv_current


def _has_temperature(name: str) -> Callable[[Announce], bool]:
    return lambda announce: name in announce.temperatures


def _readable(names: Iterable[str]) -> str:
    """Machine names as one short line of text; "none" so the state is never empty."""
    return ", ".join(name.replace("_", " ") for name in names) or "none"


def _cell(index: int, state: BoxState) -> float | None:
    return state.cells[index] if index < len(state.cells) else None


def _series(name: str) -> MeasurementFn:
    """A value the log keeps as mean, min and max: exact hourly statistics."""
    return lambda record: record.series.get(name)


def _mean_only(value_fn: Callable[[HistoryRecord], float | None]) -> MeasurementFn:
    """A value the log keeps as a 2-minute mean: the hour's extremes are those of the means."""

    def reading(record: HistoryRecord) -> Reading | None:
        value = value_fn(record)
        return None if value is None else Reading.single(value)

    return reading


def _cell_means(record: HistoryRecord) -> list[float]:
    return [value for value in record.cells if value is not None]


def _lowest_cell(record: HistoryRecord) -> Reading | None:
    """Mean from the lowest cell's mean; the minimum is the log's exact extreme."""
    means = _cell_means(record)
    if not means or record.cell_min is None:
        return None
    mean = min(means)
    return Reading(mean, min(record.cell_min, mean), mean)


def _highest_cell(record: HistoryRecord) -> Reading | None:
    """Mean from the highest cell's mean; the maximum is the log's exact extreme."""
    means = _cell_means(record)
    if not means or record.cell_max is None:
        return None
    mean = max(means)
    return Reading(mean, mean, max(record.cell_max, mean))


def _cell_spread(record: HistoryRecord) -> Reading | None:
    """Mean from the spread of the cell means; the maximum is the log's largest spread."""
    means = _cell_means(record)
    if not means or record.cell_delta is None:
        return None
    mean = max(means) - min(means)
    return Reading(mean, mean, max(record.cell_delta, mean))


def _negated(value: float | None) -> float | None:
    return None if value is None else -value


def _negated_reading(reading_fn: MeasurementFn) -> MeasurementFn:
    """The log's reading with the opposite sign: its minimum becomes the maximum."""

    def reading(record: HistoryRecord) -> Reading | None:
        found = reading_fn(record)
        return None if found is None else Reading(-found.mean, -found.max, -found.min)

    return reading


def _counter(name: str) -> CounterFn:
    return lambda record: _kwh(record.counters.get(name))


def _kwh(watt_hours: float | None) -> float | None:
    """The agent counts Wh at 0.1 Wh: kWh at the same resolution. Converted here, not by Home
    Assistant, whose conversion would leave states like 3.6601999999999997 kWh."""
    return None if watt_hours is None else round(watt_hours / 1000.0, 4)


def _hours(seconds: float | None) -> float | None:
    """Whole seconds from the agent as hours to 36 s; Home Assistant's own conversion would
    state 58.95305555555556 h."""
    return None if seconds is None else round(seconds / 3600.0, 2)


def _history_cell(index: int, record: HistoryRecord) -> Reading | None:
    value = record.cell(index)
    return None if value is None else Reading.single(value)


def _cell_voltage(
    key: str,
    value_fn: Callable[[BoxState], StateType],
    history_reading_fn: MeasurementFn | None = None,
) -> SbmsSensorEntityDescription:
    """Cell voltages: millivolt resolution on the wire, so three decimals."""
    return SbmsSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=3,
        value_fn=value_fn,
        history_reading_fn=history_reading_fn,
    )


def _energy(
    key: str,
    counter: str,
    exists_fn: Callable[[Announce], bool] = lambda _: True,
) -> SbmsSensorEntityDescription:
    """A counter the Energy dashboard accepts: energy, total_increasing, the agent's Wh as kWh."""
    return SbmsSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.ENERGY,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        state_class=SensorStateClass.TOTAL_INCREASING,
        measured=False,
        exists_fn=exists_fn,
        value_fn=lambda state: _kwh(getattr(state.counters, counter)),
        history_counter_fn=_counter(counter),
    )


def _temperature(
    name: str,
    history_fn: Callable[[HistoryRecord], float | None],
    entity_category: EntityCategory | None = None,
    *,
    added_when_read: bool = False,
    shown_elsewhere_fn: Callable[[AgentConfig], bool] | None = None,
) -> SbmsSensorEntityDescription:
    return SbmsSensorEntityDescription(
        key=f"temperature_{name}",
        translation_key=f"temperature_{name}",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        exists_fn=_has_temperature(name),
        added_when_read=added_when_read,
        shown_elsewhere_fn=shown_elsewhere_fn,
        entity_category=entity_category,
        value_fn=lambda state: state.temperatures.get(name),
        history_reading_fn=_mean_only(history_fn),
    )


SENSORS: tuple[SbmsSensorEntityDescription, ...] = (
    SbmsSensorEntityDescription(
        key="soc",
        translation_key="soc",
        device_class=SensorDeviceClass.BATTERY,
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        measured=False,  # the coulomb-counting estimate carries on through a measurement gap
        value_fn=lambda state: state.soc,
        history_reading_fn=_series("soc"),
    ),
    # How sure the SoC is: half its ~95 % band in SoC points (issue 16). Beside the SoC, not
    # instead of it, so diagnostic like the capacity the estimator learns; a stock SBMS0 says
    # nothing of its SoC's certainty, so such a box has no such sensor.
    SbmsSensorEntityDescription(
        key="soc_uncertainty",
        translation_key="soc_uncertainty",
        native_unit_of_measurement=PERCENTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        exists_fn=lambda announce: announce.source != SOURCE_SBMS0,
        measured=False,  # follows the SoC estimate through a measurement gap
        needs_value=True,
        value_fn=lambda state: state.soc_uncertainty,
        # Which curve the SoC reads near empty: without the cells' own (`battery.ocv_curve`)
        # the band stays honest but wide there (docs/soc.md), and this says why.
        config_attributes_fn=lambda config: {"ocv_curve": config.ocv_curve},
    ),
    SbmsSensorEntityDescription(
        key="voltage",
        translation_key="pack_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda state: state.voltage,
        history_reading_fn=_series("pack_voltage"),
    ),
    SbmsSensorEntityDescription(
        key="battery_current",
        translation_key="battery_current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        value_fn=lambda state: state.battery_current,
        history_reading_fn=_series("battery_current"),
    ),
    SbmsSensorEntityDescription(
        key="battery_power",
        translation_key="battery_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda state: state.battery_power,
        history_reading_fn=_series("battery_power"),
    ),
    # The same power in the Energy dashboard's convention (Home Assistant 2025.12's battery
    # power: positive while discharging), so it is picked there as it is, without a template
    # helper; the sensor above keeps the box's own sign (positive while charging).
    SbmsSensorEntityDescription(
        key="battery_power_discharging",
        translation_key="battery_power_discharging",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        value_fn=lambda state: _negated(state.battery_power),
        history_reading_fn=_negated_reading(_series("battery_power")),
    ),
    SbmsSensorEntityDescription(
        key="pv_current",
        translation_key="pv_current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        exists_fn=_has_pv_shunt,
        value_fn=lambda state: state.pv_current,
        history_reading_fn=_series("pv_current"),
    ),
    SbmsSensorEntityDescription(
        key="pv_power",
        translation_key="pv_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        exists_fn=_has_pv_shunt,
        value_fn=lambda state: state.pv_power,
        history_reading_fn=_series("pv_power"),
    ),
    # The load is PV minus battery, so it exists only with a PV shunt.
    SbmsSensorEntityDescription(
        key="load_current",
        translation_key="load_current",
        device_class=SensorDeviceClass.CURRENT,
        native_unit_of_measurement=UnitOfElectricCurrent.AMPERE,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=2,
        exists_fn=_has_pv_shunt,
        value_fn=lambda state: state.load_current,
        history_reading_fn=_series("load_current"),
    ),
    SbmsSensorEntityDescription(
        key="load_power",
        translation_key="load_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        exists_fn=_has_pv_shunt,
        value_fn=lambda state: state.load_power,
        history_reading_fn=_series("load_power"),
    ),
    _cell_voltage("cell_min", lambda state: state.cell_min, _lowest_cell),
    _cell_voltage("cell_max", lambda state: state.cell_max, _highest_cell),
    # The spread is a few millivolts on a healthy pack: shown in mV (HA converts from the
    # agent's volts), so "3 mV" reads at a glance where "0.003 V" does not.
    SbmsSensorEntityDescription(
        key="cell_delta",
        translation_key="cell_delta",
        device_class=SensorDeviceClass.VOLTAGE,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_unit_of_measurement=UnitOfElectricPotential.MILLIVOLT,
        suggested_display_precision=0,
        state_class=SensorStateClass.MEASUREMENT,
        value_fn=lambda state: state.cell_delta,
        history_reading_fn=_cell_spread,
    ),
    _temperature("battery", lambda record: record.external_temperature(0)),
    # xT2 is optional on a DIY box and the agent cannot tell from its wiring whether a sensor
    # is fitted; the battery sensor is announced only when configured, so it is added at once
    # (unknown then means a fitted sensor that does not read: charging stops).
    # On a box whose heater tank's thermistor is on xT2, the tank's entity shows that reading
    # (issue 20: one entity per sensor, not the same reading twice).
    _temperature(
        "external2",
        lambda record: record.external_temperature(1),
        added_when_read=True,
        shown_elsewhere_fn=lambda config: config.tank_temperature == "external2",
    ),
    # The cell monitor's die temperature guards the electronics, not the cells.
    _temperature("internal", lambda record: record.internal_temperature, EntityCategory.DIAGNOSTIC),
    # No Home Assistant device class measures charge (Ah): a plain measurement with a unit.
    SbmsSensorEntityDescription(
        key="remaining_ah",
        translation_key="remaining_charge",
        native_unit_of_measurement=UNIT_AMPERE_HOUR,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        measured=False,  # follows the SoC estimate
        value_fn=lambda state: state.remaining_ah,
    ),
    SbmsSensorEntityDescription(
        key="capacity_ah",
        translation_key="capacity_in_use",
        native_unit_of_measurement=UNIT_AMPERE_HOUR,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        entity_category=EntityCategory.DIAGNOSTIC,
        measured=False,  # a learned setting of the estimator, not a live reading
        value_fn=lambda state: state.capacity_ah,
    ),
    SbmsSensorEntityDescription(
        key="time_to_full",
        translation_key="time_to_full",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.HOURS,
        suggested_display_precision=1,
        value_fn=lambda state: _hours(state.time_to_full_s),
    ),
    SbmsSensorEntityDescription(
        key="time_to_empty",
        translation_key="time_to_empty",
        device_class=SensorDeviceClass.DURATION,
        native_unit_of_measurement=UnitOfTime.HOURS,
        suggested_display_precision=1,
        value_fn=lambda state: _hours(state.time_to_empty_s),
    ),
    SbmsSensorEntityDescription(
        key="dual_pv_level",
        translation_key="dual_pv_level",
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        exists_fn=lambda announce: announce.has_dual_pv,
        measured=False,  # the controller's decision, held through a measurement gap
        value_fn=lambda state: state.dual_pv_level,
        history_reading_fn=_mean_only(lambda record: record.dual_pv_level),
    ),
    _energy("battery_in_energy", "battery_in_wh"),
    _energy("battery_out_energy", "battery_out_wh"),
    _energy("pv_energy", "pv_wh", exists_fn=_has_pv_shunt),
    _energy("load_energy", "load_wh", exists_fn=_has_pv_shunt),
    # Why charge or loads are held off: the first thing to look at when power stops.
    SbmsSensorEntityDescription(
        key="interlocks",
        translation_key="interlocks",
        entity_category=EntityCategory.DIAGNOSTIC,
        measured=False,
        value_fn=lambda state: _readable(state.interlocks),
    ),
    # CHING/DCHING follow every change of direction: noisy, so off by default.
    SbmsSensorEntityDescription(
        key="cell_monitor_flags",
        translation_key="cell_monitor_flags",
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
        value_fn=lambda state: _readable(state.flags),
    ),
)


# --- PV diversion (issue 19) -------------------------------------------------------------------
# Only on a box whose state carries `diversion` (docs/protocol.md): added when the first such
# state arrives, so a box without a heat path never shows them.


def _has_diversion(state: BoxState) -> bool:
    return state.diversion is not None


def _diversion_counter(name: str, state: BoxState) -> float | None:
    diversion = state.diversion
    return None if diversion is None else _kwh(diversion.counters.get(name))


def _diverted_attributes(state: BoxState) -> dict[str, Any]:
    """How the diverted energy was counted: a heat-path shunt's reading or the estimate."""
    diversion = state.diversion
    if diversion is None:
        return {}
    measured = diversion.counters.get("diverted_measured_wh", 0.0)
    estimated = diversion.counters.get("diverted_estimated_wh", 0.0)
    if measured > 0 and estimated > 0:
        method = "mixed"
    elif measured > 0 or (estimated == 0 and diversion.measured):
        method = "measured"  # nothing counted yet: as the heat-path shunt reads now
    else:
        method = "estimated"
    return {
        "counted": method,
        "measured_energy_kwh": _kwh(measured),
        "estimated_energy_kwh": _kwh(estimated),
    }


def _diversion_energy(key: str, counter: str) -> SbmsSensorEntityDescription:
    return replace(
        _energy(key, counter),
        added_when_read=True,
        reported_fn=_has_diversion,
        value_fn=partial(_diversion_counter, counter),
    )


DIVERSION_SENSORS: tuple[SbmsSensorEntityDescription, ...] = (
    # Energy into the heat paths: an individual device's consumption on the Energy dashboard.
    replace(
        _diversion_energy("diverted_energy", "diverted_wh"),
        attributes_fn=_diverted_attributes,
    ),
    # PV thrown away (battery full, no heat path took it): always an estimate, said in its name.
    _diversion_energy("curtailed_energy", "curtailed_wh"),
    SbmsSensorEntityDescription(
        key="diversion_power",
        translation_key="diversion_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        added_when_read=True,
        reported_fn=_has_diversion,
        value_fn=lambda state: None if state.diversion is None else state.diversion.power_w,
        attributes_fn=lambda state: (
            {} if state.diversion is None else {"measured": state.diversion.measured}
        ),
    ),
    # What the disconnected arrays could give now: an estimate (clear-sky model), never measured.
    SbmsSensorEntityDescription(
        key="surplus_power",
        translation_key="surplus_power",
        device_class=SensorDeviceClass.POWER,
        native_unit_of_measurement=UnitOfPower.WATT,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=0,
        added_when_read=True,
        reported_fn=_has_diversion,
        value_fn=lambda state: None if state.diversion is None else state.diversion.available_w,
    ),
    # An agent whose file sets `diversion.tank_temperature` (docs/diversion.md) sends it:
    # added once a state carries a value.
    SbmsSensorEntityDescription(
        key="temperature_heater_tank",
        translation_key="temperature_heater_tank",
        device_class=SensorDeviceClass.TEMPERATURE,
        native_unit_of_measurement=UnitOfTemperature.CELSIUS,
        state_class=SensorStateClass.MEASUREMENT,
        suggested_display_precision=1,
        added_when_read=True,
        value_fn=lambda state: state.temperatures.get("heater_tank"),
        # xT2 is the only input a tank may be read on (protocol: `diversion.tank_temperature`
        # is `external2` or null), and on such a box this is xT2's only entity: its gaps are
        # filled from the data log's xT2 means.
        history_reading_fn=_mean_only(lambda record: record.external_temperature(1)),
    ),
)

# --- end of PV diversion -----------------------------------------------------------------------


def cell_descriptions(cells: int) -> list[SbmsSensorEntityDescription]:
    """One voltage per cell, numbered from 1 at the bottom of the stack.

    Eight or sixteen sensors moving by a few mV would flood the history: diagnostic and off
    by default (cell min/max/delta tell the story; these are for chasing one bad cell).
    """
    template = replace(
        _cell_voltage("cell_voltage", lambda _state: None),
        entity_category=EntityCategory.DIAGNOSTIC,
        entity_registry_enabled_default=False,
    )
    return [
        replace(
            template,
            translation_placeholders={"cell": str(index + 1)},
            value_fn=partial(_cell, index),
            history_reading_fn=partial(_history_cell, index),
        )
        for index in range(cells)
    ]


# --- Issue 20: PV energy per array on a dual-PV box --------------------------------------------

_PV_ARRAY_TYPES = (1, OUTPUT_TYPE_DUAL_PV)  # the primary (HVD) and secondary arrays' outputs


def _pv_array_kwh(name: str, state: BoxState) -> float | None:
    return None if state.pv_arrays_wh is None else _kwh(state.pv_arrays_wh.get(name))


def pv_array_descriptions(announce: Announce) -> list[tuple[SbmsSensorEntityDescription, str]]:
    """One PV energy counter per array where the agent counts them (state `pv_arrays_wh`):
    a dual-PV box with a PV shunt; each is a solar source of its own on the Energy dashboard.
    Unavailable while the agent sends none (an agent from before issue 20)."""
    if not (announce.pv_current and announce.has_dual_pv) or announce.source == SOURCE_SBMS0:
        return []
    template = _energy("pv_array_energy", "pv_wh")
    return [
        (
            replace(
                template,
                translation_placeholders={"array": output.name},
                value_fn=partial(_pv_array_kwh, output.name),
                history_counter_fn=None,  # the data log keeps no per-array counter
                needs_value=True,
            ),
            f"_{output.name}",
        )
        for output in announce.outputs
        if output.type in _PV_ARRAY_TYPES and output.wiring in (None, "charge")
    ]


# --- Issue 20: each cell's distance from the pack's mean, for the dashboard's colours -----------


def _cell_from_mean_mv(index: int, state: BoxState) -> float | None:
    cells = state.cells
    if index >= len(cells):
        return None
    # Whole mV (what the gauge shows), and never -0: a cell 0.3 mV below the mean read "-0 mV".
    return float(round((cells[index] - sum(cells) / len(cells)) * 1000.0))


def cell_from_mean_descriptions(cells: int) -> list[SbmsSensorEntityDescription]:
    """Each cell's voltage minus the mean of the pack's cells, mV: the dashboard colours a
    gauge per cell by it (a gauge's colour bands are fixed numbers, so the distance from the
    mean must be a state of its own). Diagnostic and off by default like the cell voltages,
    and without statistics (no state class): the cell voltages keep the history."""
    return [
        SbmsSensorEntityDescription(
            key="cell_from_mean",
            translation_key="cell_from_mean",
            translation_placeholders={"cell": str(index + 1)},
            device_class=SensorDeviceClass.VOLTAGE,
            native_unit_of_measurement=UnitOfElectricPotential.MILLIVOLT,
            suggested_display_precision=0,
            entity_category=EntityCategory.DIAGNOSTIC,
            entity_registry_enabled_default=False,
            value_fn=partial(_cell_from_mean_mv, index),
        )
        for index in range(cells)
    ]


# --- end of issue 20's block --------------------------------------------------------------------


def box_sensors(announce: Announce) -> list[tuple[SbmsSensorEntityDescription, str]]:
    """The sensors this box has, as (description, unique-id suffix): the platform adds them
    and the back-fill of statistics finds their entities by the same unique ids."""
    sensors = [(description, "") for description in SENSORS if description.exists_fn(announce)]
    sensors.extend(
        (description, "") for description in DIVERSION_SENSORS if description.exists_fn(announce)
    )
    sensors.extend(
        (description, f"_{index + 1}")
        for index, description in enumerate(cell_descriptions(announce.cells))
    )
    sensors.extend(pv_array_descriptions(announce))
    sensors.extend(
        (description, f"_{index + 1}")
        for index, description in enumerate(cell_from_mean_descriptions(announce.cells))
    )
    return sensors


async def async_setup_entry(
    hass: HomeAssistant,
    entry: SbmsConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add the sensors this box has (PV, temperatures and outputs come from its announce)."""
    coordinator = entry.runtime_data.coordinator
    sensors = box_sensors(coordinator.data.announce)
    async_add_entities(
        SbmsSensorEntity(coordinator, description, key_suffix=suffix)
        for description, suffix in sensors
        if not description.added_when_read
    )
    waiting = [
        (description, suffix) for description, suffix in sensors if description.added_when_read
    ]

    @callback
    def add_when_read() -> None:
        state, config = coordinator.data.state, coordinator.data.config
        if state is None:
            return
        read = [(d, suffix) for d, suffix in waiting if _reported(d, state, config)]
        if not read:
            return
        for item in read:
            waiting.remove(item)
        async_add_entities(
            SbmsSensorEntity(coordinator, description, key_suffix=suffix)
            for description, suffix in read
        )
        if not waiting:
            remove_listener()

    remove_listener = coordinator.async_add_listener(add_when_read)
    entry.async_on_unload(lambda: remove_listener() if waiting else None)
    add_when_read()
    runtime = entry.runtime_data
    for manager, description in (
        (runtime.shedding, LOAD_STATE),
        (runtime.surplus, SURPLUS_LOAD_STATE),
    ):
        async_add_entities(
            SbmsSwitchedLoadSensor(coordinator, manager, description, load)
            for load in manager.loads
        )


def _reported(
    description: SbmsSensorEntityDescription, state: BoxState, config: AgentConfig | None
) -> bool:
    if description.shown_elsewhere_fn is not None and (
        config is None or description.shown_elsewhere_fn(config)
    ):
        return False
    if description.reported_fn is not None:
        return description.reported_fn(state)
    return description.value_fn(state) is not None


class SbmsSensorEntity(SbmsEntity, SensorEntity):
    """One value of the agent's latest state."""

    entity_description: SbmsSensorEntityDescription

    @property
    def available(self) -> bool:
        description = self.entity_description
        if not self._state_available(measured=description.measured):
            return False
        state = self.coordinator.data.state
        return not description.needs_value or (
            state is not None and description.value_fn(state) is not None
        )

    @property
    def native_value(self) -> StateType:
        state = self.coordinator.data.state
        return None if state is None else self.entity_description.value_fn(state)

    @property
    def extra_state_attributes(self) -> dict[str, Any] | None:
        data = self.coordinator.data
        description = self.entity_description
        attributes: dict[str, Any] = {}
        if data.state is not None and description.attributes_fn is not None:
            attributes.update(description.attributes_fn(data.state))
        if data.config is not None and description.config_attributes_fn is not None:
            attributes.update(description.config_attributes_fn(data.config))
        return attributes or None


# --- the loads of load shedding and of surplus loads (issue 19): one sensor a load ------------


@dataclass(frozen=True, kw_only=True)
class SwitchedLoadSensorDescription(SensorEntityDescription):
    """The per-load sensor of one kind of switched loads; `settings_fn`: the load's settings
    its attributes show beyond the entity and priority."""

    settings_fn: Callable[[Any], dict[str, Any]]


def _shed_settings(load: LoadSettings) -> dict[str, Any]:
    return {"shed_below": load.shed_below, "restore_above": load.restore_above}


def _surplus_settings(load: SurplusLoadSettings) -> dict[str, Any]:
    return {
        "min_soc": load.min_soc,
        "max_discharge_power": load.max_discharge_w,
        "discharge_time": load.discharge_s,
    }


LOAD_STATE = SwitchedLoadSensorDescription(
    key=LOAD_STATE_KEY,
    translation_key="load_shedding_state",
    device_class=SensorDeviceClass.ENUM,
    options=[status.value for status in LoadStatus],
    settings_fn=_shed_settings,
)
SURPLUS_LOAD_STATE = SwitchedLoadSensorDescription(
    key=SURPLUS_STATE_KEY,
    translation_key="surplus_load_state",
    device_class=SensorDeviceClass.ENUM,
    options=[status.value for status in SurplusStatus],
    settings_fn=_surplus_settings,
)


class SbmsSwitchedLoadSensor(SbmsEntity, SensorEntity):
    """What load shedding or surplus loads do with one load, and why."""

    entity_description: SwitchedLoadSensorDescription

    def __init__(
        self,
        coordinator: SbmsCoordinator,
        manager: SwitchedLoadsManager[Any, Any, Any],
        description: SwitchedLoadSensorDescription,
        load: SwitchedLoad,
    ) -> None:
        super().__init__(coordinator, description, key_suffix=f"_{load.load_id}")
        self._manager = manager
        self._load = load
        self._attr_translation_placeholders = {"load": manager.titles.get(load.load_id, "")}

    @property
    def native_value(self) -> str:
        return str(self._manager.state_of(self._load.load_id).status.value)

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        reason = self._manager.state_of(self._load.load_id).reason
        return {
            "reason": None if reason is None else reason.value,
            "load_entity_id": self._load.entity_id,
            "priority": self._load.priority,
            **self.entity_description.settings_fn(self._load),
        }

    async def async_added_to_hass(self) -> None:
        await super().async_added_to_hass()
        self.async_on_remove(self._manager.async_add_listener(self.async_write_ha_state))
