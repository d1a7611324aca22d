"""Native Home Assistant MQTT discovery (optional, off by default): one retained device-based
discovery message (Home Assistant 2024.11+) that makes the agent's retained `state` usable
without the sbms integration.

Every component reads the protocol's own `state` topic through a value template, so nothing
extra is published per sample. Names are short ("SoC", "Pack voltage"): MQTT entities have
has_entity_name semantics and Home Assistant puts the device name in front.

`object_id` is never used: it stops working in Home Assistant 2026.4. `default_entity_id`
(the full entity id) replaces it; 2025.x versions that do not know it drop it silently and
build the id from the device and entity names. So `default_entity_id` is exactly that
name-based id ("SBMS shed" + "Pack voltage" -> sensor.sbms_shed_pack_voltage): old and new
Home Assistant give the same entity ids, and one dashboard fits both.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import edge_agent
from edge_agent.config import AgentConfig
from edge_agent.control.extio import diverts
from edge_agent.control.model import HEATER_TANK
from edge_agent.control.pv_arrays import pv_arrays
from edge_agent.control.settings import OutputType
from edge_agent.mqtt.payloads import MODEL, SOURCES, fitted_temperatures
from edge_agent.mqtt.topics import Topics, _check_base

DEFAULT_PREFIX = "homeassistant"
ORIGIN_NAME = "sbms-agent"
ORIGIN_URL = "https://github.com/sbms-ha/sbms-ha"
ONLINE = "online"
OFFLINE = "offline"

_SLUG = re.compile(r"[^a-z0-9_]+")

_TEMPERATURE_LABELS = {
    "internal": "Internal temperature",
    "battery": "Battery temperature",
    "external2": "External temperature 2",
}

# (state key, name, unit, device class, suggested display precision)
_MEASUREMENTS: tuple[tuple[str, str, str, str, int], ...] = (
    ("voltage", "Pack voltage", "V", "voltage", 2),
    ("battery_current", "Battery current", "A", "current", 2),
    ("battery_power", "Battery power", "W", "power", 0),
)
_PV_MEASUREMENTS: tuple[tuple[str, str, str, str, int], ...] = (
    ("pv_current", "PV current", "A", "current", 2),
    ("pv_power", "PV power", "W", "power", 0),
    ("load_current", "Load current", "A", "current", 2),
    ("load_power", "Load power", "W", "power", 0),
)
_CELL_SUMMARY: tuple[tuple[str, str], ...] = (
    ("cell_min", "Cell minimum"),
    ("cell_max", "Cell maximum"),
    ("cell_delta", "Cell delta"),
)
# (counter key in Wh, name); the PV counter only with a PV shunt (it stays 0 without one).
_ENERGY: tuple[tuple[str, str], ...] = (
    ("battery_in_wh", "Battery energy in"),
    ("battery_out_wh", "Battery energy out"),
    ("load_wh", "Load energy"),
)
_PV_ENERGY = ("pv_wh", "PV energy")
# Inputs a DIY box may leave unfitted, which its wiring cannot tell: their entities appear once
# the box has read them (a box without the sensor gets no entity forever unknown).
_TEMPERATURES_WHEN_READ = frozenset({"external2"})


def slug(text: str) -> str:
    """A lower-case entity-id part, as Home Assistant builds them."""
    return _SLUG.sub("_", text.lower()).strip("_") or "sbms"


def device_name(agent_id: str) -> str:
    return f"SBMS {agent_id}"


def discovery_topic(agent_id: str, prefix: str = DEFAULT_PREFIX) -> str:
    return f"{_check_base(prefix)}/device/{agent_id}/config"


def birth_topic(prefix: str = DEFAULT_PREFIX) -> str:
    """Where Home Assistant announces itself ("online") after a start."""
    return f"{_check_base(prefix)}/status"


def discovery_payload(
    config: AgentConfig,
    topics: Topics,
    serial: str,
    source: str,
    *,
    prefix: str | None = None,
    temperatures_read: Collection[str] = (),
) -> tuple[str, dict[str, Any]]:
    """The discovery topic and payload for this box. `prefix` defaults to the config's
    `mqtt.ha_discovery_prefix` (or "homeassistant"). `temperatures_read`: the temperature
    inputs the box has read a value from; xT2 (`external2`) has an entity only then."""
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)} (got {source!r})")
    if prefix is None:
        prefix = config.mqtt.ha_discovery_prefix if config.mqtt is not None else DEFAULT_PREFIX
    builder = _Components(config.agent_id, topics.state)
    _add_components(builder, config, source, frozenset(temperatures_read))
    payload: dict[str, Any] = {
        "dev": {
            "ids": [f"sbms_{config.agent_id}"],
            "name": device_name(config.agent_id),
            "mf": "Electrodacus" if source == "sbms0" else "DIY",
            "mdl": MODEL,
            "sw": edge_agent.__version__,
            "sn": serial,
        },
        "o": {"name": ORIGIN_NAME, "sw": edge_agent.__version__, "url": ORIGIN_URL},
        "avty": [{"t": topics.status, "pl_avail": ONLINE, "pl_not_avail": OFFLINE}],
        "cmps": builder.components,
        "qos": 1,
    }
    return discovery_topic(config.agent_id, prefix), payload


def _add_components(
    builder: _Components, config: AgentConfig, source: str, temperatures_read: frozenset[str]
) -> None:
    has_pv = config.hardware.pv_shunt is not None
    builder.sensor("soc", "SoC", "{{ value_json.soc }}", "%", "battery", precision=1)
    for key, name, unit, device_class, precision in (
        *_MEASUREMENTS,
        *(_PV_MEASUREMENTS if has_pv else ()),
    ):
        builder.sensor(key, name, _measured(key), unit, device_class, precision=precision)
    builder.sensor(
        "remaining_ah", "Remaining charge", _value("remaining_ah"), "Ah", None, precision=1
    )
    if source != "sbms0":  # a stock SBMS0's own SoC comes without an uncertainty (null)
        # How sure the SoC is (issue 16): an estimate like the SoC, kept through a gap.
        builder.sensor(
            "soc_uncertainty",
            "SoC uncertainty",
            _value("soc_uncertainty"),
            "%",
            None,
            precision=1,
            diagnostic=True,
        )
    # "At the present current": as stale as the current when the measurement is.
    for key, name in (("time_to_full_s", "Time to full"), ("time_to_empty_s", "Time to empty")):
        builder.sensor(key, name, _measured(key), "s", "duration", precision=0)
    _add_cells(builder, config.control.cell_count)
    # The same rule as the announce: what the source and the wiring have. The input that
    # reads the heater tank is shown once, as the tank's (issue 20: the demo's box showed
    # its xT2 twice, as External temperature 2 and Heater tank temperature).
    tank_input = config.control.diversion.tank_temperature
    for name in fitted_temperatures(config, source):
        if name in _TEMPERATURES_WHEN_READ and name not in temperatures_read:
            continue
        if name == tank_input:
            continue
        builder.sensor(
            f"temperature_{name}",
            _TEMPERATURE_LABELS[name],
            _measured(f"temperatures.{name}"),
            "°C",
            "temperature",
            precision=1,
            diagnostic=name == "internal",
        )
    # The tank's input (issue 19): configured means fitted, so no wait for a first reading.
    if tank_input in fitted_temperatures(config, source):
        builder.sensor(
            "temperature_heater_tank",
            "Heater tank temperature",
            _measured(f"temperatures.{HEATER_TANK}"),
            "°C",
            "temperature",
            precision=1,
        )
    if any(output.type is OutputType.DUAL_PV for output in config.control.outputs):
        builder.sensor(
            "dual_pv_level", "Dual PV level", _value("dual_pv_level"), None, None, precision=0
        )
    for key, name in (*_ENERGY, *((_PV_ENERGY,) if has_pv else ())):
        builder.energy(key, name)
    if has_pv and source != "sbms0":
        # Issue 20: PV energy per array on a dual-PV box (state.pv_arrays_wh), each a solar
        # source of its own on the Energy dashboard.
        for array in pv_arrays(config.control.outputs):
            builder.energy(
                f"pv_{slug(array)}_wh", f"PV energy {array}", path=f"pv_arrays_wh[{array!r}]"
            )
    _add_binary_sensors(builder, config)
    if source != "sbms0" and has_diversion(config):
        _add_diversion(builder)


def has_diversion(config: AgentConfig) -> bool:
    """Does the state carry `diversion`: a diversion output, or an array described to the
    estimate (the controller reports one exactly then)?"""
    control = config.control
    return any(diverts(output) for output in control.outputs) or bool(control.diversion.arrays)


def _add_diversion(builder: _Components) -> None:
    """PV diversion (issue 19): the energy into the heat paths (an Energy dashboard
    consumption), their power now, and the surplus: the panels disconnected because the
    battery is full, with the power they could give."""
    builder.energy("diverted_wh", "Diverted energy", path="diversion.counters.diverted_wh")
    builder.sensor(
        "diversion_power",
        "Diversion power",
        _measured("diversion.power_w"),
        "W",
        "power",
        precision=0,
    )
    builder.sensor(
        "surplus_power",
        "Surplus power",
        _measured("diversion.available_w"),
        "W",
        "power",
        precision=0,
    )
    builder.binary(
        "surplus_available",
        "Surplus available",
        _flag(
            "value_json.measurement_ok and (value_json.diversion.diverting"
            " or (value_json.diversion.available_w or 0) > 0)"
        ),
    )


def _add_cells(builder: _Components, cell_count: int) -> None:
    for key, name in _CELL_SUMMARY:
        builder.sensor(key, name, _measured(key), "V", "voltage", precision=3)
    for index in range(cell_count):
        # A report without a measurement has no cells: say None (unknown), not an error.
        template = (
            f"{{{{ value_json.cells[{index}] if value_json.measurement_ok"
            f" and value_json.cells | length > {index} else None }}}}"
        )
        builder.sensor(
            f"cell_{index + 1}",
            f"Cell {index + 1} voltage",
            template,
            "V",
            "voltage",
            precision=3,
            enabled=False,  # 16 cells would crowd the device page; enable the ones you watch
            diagnostic=True,
        )


def _add_binary_sensors(builder: _Components, config: AgentConfig) -> None:
    builder.binary("charge_allowed", "Charge allowed", _flag("value_json.charge_allowed"))
    builder.binary("load_allowed", "Load allowed", _flag("value_json.load_allowed"))
    for output in config.control.outputs:
        builder.binary(
            f"output_{slug(output.name)}",
            f"Output {output.name}",
            _flag(f"value_json.outputs[{output.name!r}]"),
        )
    builder.binary(
        "problem",
        "Problem",
        _flag("value_json.faults | length > 0"),
        device_class="problem",
    )


def _value(key: str) -> str:
    return f"{{{{ value_json.{key} }}}}"


def _measured(key: str) -> str:
    """A measured field: while `measurement_ok` is false the state repeats the last good value
    (or null); Home Assistant would show that stale number as current, so say None (unknown)."""
    return f"{{{{ value_json.{key} if value_json.measurement_ok else None }}}}"


def _flag(expression: str) -> str:
    """A binary sensor's template: Home Assistant's default payloads are ON and OFF."""
    return f"{{{{ 'ON' if {expression} else 'OFF' }}}}"


class _Components:
    """Collects the `cmps` mapping: unique id -> component configuration."""

    def __init__(self, agent_id: str, state_topic: str) -> None:
        self._prefix = f"sbms_{agent_id}"
        self._device_name = device_name(agent_id)
        self._state_topic = state_topic
        self.components: dict[str, dict[str, Any]] = {}

    def _base(self, platform: str, key: str, name: str, template: str) -> dict[str, Any]:
        unique_id = f"{self._prefix}_{key}"
        if unique_id in self.components:
            raise ValueError(f"duplicate discovery component {unique_id}")
        component: dict[str, Any] = {
            "p": platform,
            "name": name,
            "uniq_id": unique_id,
            # the id Home Assistant builds from the names where it ignores this key
            "default_entity_id": f"{platform}.{slug(f'{self._device_name} {name}')}",
            "stat_t": self._state_topic,
            "val_tpl": template,
        }
        self.components[unique_id] = component
        return component

    def sensor(
        self,
        key: str,
        name: str,
        template: str,
        unit: str | None,
        device_class: str | None,
        *,
        precision: int | None = None,
        enabled: bool = True,
        diagnostic: bool = False,
    ) -> None:
        component = self._base("sensor", key, name, template)
        if unit is not None:
            component["unit_of_meas"] = unit
        if device_class is not None:
            component["dev_cla"] = device_class
        component["stat_cla"] = "measurement"
        if precision is not None:
            component["sug_dsp_prc"] = precision
        if diagnostic:
            component["ent_cat"] = "diagnostic"
        if not enabled:
            component["en"] = False

    def energy(self, key: str, name: str, *, path: str | None = None) -> None:
        """A kWh total that never decreases: what the Energy dashboard accepts. `path`: where
        the Wh counter is in the state (default `counters.<key>`)."""
        template = f"{{{{ (value_json.{path or 'counters.' + key} / 1000) | round(4) }}}}"
        component = self._base("sensor", key.removesuffix("_wh") + "_energy", name, template)
        component.update(
            {
                "unit_of_meas": "kWh",
                "dev_cla": "energy",
                "stat_cla": "total_increasing",
                "sug_dsp_prc": 2,
            }
        )

    def binary(
        self, key: str, name: str, template: str, *, device_class: str | None = None
    ) -> None:
        component = self._base("binary_sensor", key, name, template)
        if device_class is not None:
            component["dev_cla"] = device_class


__all__ = ["birth_topic", "discovery_payload", "discovery_topic", "slug"]
