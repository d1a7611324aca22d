"""Reading the configuration: YAML with duplicate keys refused, then `parse_config`: the
shape (`schema.py`), the settings objects built from the clean data, and the rules across
values (`rules.py`). A configuration is returned complete or rejected with every problem.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import voluptuous as vol
import yaml

from edge_agent.config.link import MqttSettings, PublishSettings, validate_publish_settings
from edge_agent.config.model import (
    HEARTBEAT_LINE,
    AgentConfig,
    CellMonitorSettings,
    ConfigError,
    DataLogSettings,
    HardwareSettings,
    HeartbeatSettings,
    HttpSourceSettings,
    OutputPinSettings,
    SerialSourceSettings,
    ShuntSettings,
    SourceSettings,
    StorageSettings,
    TimingSettings,
    default_output_pins,
    sbms0_outputs,
)
from edge_agent.config.rules import (
    validate_control_settings,
    validate_data_log,
    validate_hardware,
    validate_heat_shunt,
    validate_remote_window,
    validate_source,
    validate_timing,
)
from edge_agent.config.schema import TOP_SCHEMA, describe_invalid
from edge_agent.control.envelope import (
    Range,
    default_remote_window,
)
from edge_agent.control.extio import inferred_wiring
from edge_agent.control.settings import (
    ArraySettings,
    BalanceSettings,
    CellThresholds,
    ControlSettings,
    DiversionSettings,
    DualPvSettings,
    MaxSocSettings,
    OutputSettings,
    OutputType,
    SocAlarmSettings,
    SocSettings,
    TemperatureLimits,
    default_outputs,
)


def default_config() -> AgentConfig:
    """A good 8S LFP box: the SBMS0 defaults on an ISL94203, an INA228 and an MCP23008 (the
    configuration an empty file gives, remote window included)."""
    return parse_config({})


# ---------------------------------------------------------------------------------------------
# Loading
# ---------------------------------------------------------------------------------------------


class _StrictLoader(yaml.SafeLoader):
    """SafeLoader that rejects duplicate keys (PyYAML silently keeps the last one)."""


def _construct_unique_mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
    seen: set[Hashable] = set()
    for key_node, _ in node.value:
        if key_node.tag == "tag:yaml.org,2002:merge":
            continue  # "<<" merges may legitimately be overridden
        key = loader.construct_object(key_node, deep=True)
        if isinstance(key, Hashable):
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
    return loader.construct_mapping(node, deep=True)


_StrictLoader.add_constructor(
    yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG,
    _construct_unique_mapping,
)


def load_config(path: Path) -> AgentConfig:
    """Read and validate a YAML configuration file. Raises ConfigError naming the file.

    A relative storage.state_path is taken relative to the configuration file's directory
    (a service's working directory is usually "/").
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(["file not found"], source=path) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError([f"cannot read the file: {exc}"], source=path) from None
    try:
        data = yaml.load(text, Loader=_StrictLoader)  # a SafeLoader subclass
    except yaml.MarkedYAMLError as exc:
        raise ConfigError([_describe_yaml_error(exc)], source=path) from None
    except yaml.YAMLError as exc:
        raise ConfigError([f"invalid YAML: {exc}"], source=path) from None
    if data is None:
        raise ConfigError(["the file is empty: expected a mapping of settings"], source=path)
    if not isinstance(data, Mapping):
        kind = type(data).__name__
        raise ConfigError([f"the top level must be a mapping of settings (got {kind})"], path)
    try:
        config = parse_config(data)
    except ConfigError as exc:
        raise ConfigError(exc.problems, source=path) from None
    return replace(config, storage=_absolute_storage(config.storage, path.parent))


def _absolute_storage(storage: StorageSettings, directory: Path) -> StorageSettings:
    def absolute(file: Path) -> Path:
        return file if file.is_absolute() else (directory / file).absolute()

    data_log_path = storage.data_log_path
    return replace(
        storage,
        state_path=absolute(storage.state_path),
        data_log_path=None if data_log_path is None else absolute(data_log_path),
    )


def _describe_yaml_error(exc: yaml.MarkedYAMLError) -> str:
    mark = exc.problem_mark or exc.context_mark
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = exc.problem or exc.context or "syntax error"
    return f"invalid YAML{where}: {problem}"


def parse_config(data: Mapping[str, Any]) -> AgentConfig:
    """Validate an already-parsed mapping (YAML or JSON) and build the configuration."""
    untrusted: object = data  # callers may pass JSON of any shape despite the annotation
    if not isinstance(untrusted, Mapping):
        kind = type(untrusted).__name__
        raise ConfigError([f"configuration: must be a mapping (got {kind})"])
    try:
        clean: dict[str, Any] = TOP_SCHEMA(dict(data))
    except vol.MultipleInvalid as exc:
        raise ConfigError(describe_invalid(error) for error in exc.errors) from None
    mqtt_problems: list[str] = []
    config = _build_config(clean, mqtt_problems)
    problems = [
        *validate_control_settings(config.control),
        *validate_hardware(config.hardware),
        *validate_heat_shunt(config),
        *validate_timing(config),
        *validate_data_log(config),
        *validate_publish_settings(config.publish),
        *validate_source(config.source, clean),
        *validate_remote_window(clean.get("remote_window", {}), config.control),
        *mqtt_problems,
    ]
    if problems:
        raise ConfigError(problems)
    return config


# ---------------------------------------------------------------------------------------------
# Building the objects
# ---------------------------------------------------------------------------------------------


# Slotted dataclasses keep no class-level defaults: read them from default instances.
_DEFAULT_CONTROL = ControlSettings()
_DEFAULT_HARDWARE = HardwareSettings()
_DEFAULT_AGENT_ID = AgentConfig().agent_id


_MQTT_PATH_KEYS = ("ca_file", "cert_file", "key_file")


def _build_mqtt(
    section: Mapping[str, Any] | None, agent_id: str, problems: list[str]
) -> MqttSettings | None:
    """The MQTT link's settings; rule violations go to `problems` with their key paths."""
    if section is None:
        return None
    values: dict[str, Any] = {
        key: Path(value) if key in _MQTT_PATH_KEYS else value for key, value in section.items()
    }
    try:
        return MqttSettings(agent_id=agent_id, **values)
    except ValueError as err:
        problems.extend(f"mqtt.{problem}" for problem in str(err).split("; "))
        return None


def _build_config(clean: Mapping[str, Any], mqtt_problems: list[str] | None = None) -> AgentConfig:
    battery = clean.get("battery", {})
    timing = dict(clean.get("timing", {}))
    stale_after_s = timing.pop("stale_after_s", _DEFAULT_CONTROL.stale_after_s)
    soc = dict(clean.get("soc", {}))
    if "capacity_ah" in battery:
        soc["capacity_ah"] = battery["capacity_ah"]
    if "ocv_curve" in battery:
        soc["ocv_curve"] = battery["ocv_curve"]
    output_items: list[dict[str, Any]] | None = clean.get("outputs")
    source = _build_source(clean.get("source", {}))
    sbms0 = source.type == "sbms0"
    notes: list[str] = []
    control = ControlSettings(
        cell_count=battery.get("cells", _DEFAULT_CONTROL.cell_count),
        cells=CellThresholds(**clean.get("thresholds", {})),
        balance=BalanceSettings(**clean.get("balancing", {})),
        soc=SocSettings(**soc),
        soc_alarms=SocAlarmSettings(**clean.get("soc_alarms", {})),
        temperature=TemperatureLimits(**clean.get("temperature", {})),
        dual_pv=DualPvSettings(**clean.get("dual_pv", {})),
        max_soc=MaxSocSettings(**clean.get("max_soc", {})),
        diversion=_build_diversion(clean.get("diversion", {})),
        outputs=_control_outputs_for(output_items, notes, sbms0=sbms0),
        stale_after_s=stale_after_s,
        lockouts_latch=clean.get("lockouts_latch", _DEFAULT_CONTROL.lockouts_latch),
        battery_thermistor=clean.get("cell_monitor", {}).get(
            "battery_thermistor", _DEFAULT_CONTROL.battery_thermistor
        ),
    )
    pv_shunt = clean.get("pv_shunt")
    heat_shunt = clean.get("heat_shunt")
    hardware = HardwareSettings(
        i2c_bus=clean.get("i2c_bus", _DEFAULT_HARDWARE.i2c_bus),
        cell_monitor=CellMonitorSettings(
            **{
                key: value
                for key, value in clean.get("cell_monitor", {}).items()
                if key != "battery_thermistor"  # the control core's: ControlSettings
            }
        ),
        battery_shunt=ShuntSettings(**clean.get("battery_shunt", {})),
        pv_shunt=None if pv_shunt is None else ShuntSettings(**pv_shunt),
        heat_shunt=None if heat_shunt is None else ShuntSettings(**heat_shunt),
        outputs=_output_pins_for(output_items, sbms0=sbms0),
        heartbeat=_build_heartbeat(clean.get("heartbeat")),
    )
    storage = clean.get("storage", {})
    agent_id = clean.get("agent_id", _DEFAULT_AGENT_ID)
    return AgentConfig(
        control=control,
        hardware=hardware,
        timing=TimingSettings(**timing),
        storage=StorageSettings(**{key: Path(value) for key, value in storage.items()}),
        data_log=DataLogSettings(**clean.get("data_log", {})),
        agent_id=agent_id,
        publish=PublishSettings(**clean.get("publish", {})),
        mqtt=_build_mqtt(
            clean.get("mqtt"), agent_id, [] if mqtt_problems is None else mqtt_problems
        ),
        source=source,
        remote_window=_build_remote_window(clean.get("remote_window", {}), control),
        notes=tuple(notes),
        warnings=_defaults_standing_in(clean, sbms0=sbms0),
    )


def _defaults_standing_in(clean: Mapping[str, Any], *, sbms0: bool) -> tuple[str, ...]:
    """Each key whose default stands in for the box's wiring, its shunt rating or the link's
    security: valid, but a box is rarely built the way a default guesses."""
    warnings: list[str] = []
    if not sbms0 and "outputs" not in clean:
        names = ", ".join(f"{output.name} {output.wiring.value}" for output in default_outputs())
        warnings.append(
            f"outputs: not given, the default wiring stands in ({names}); say what each "
            "output switches (docs/wiring.md)"
        )
    if not sbms0:
        shunts = [("battery_shunt", clean.get("battery_shunt", {}))]
        shunts += [(key, clean[key]) for key in _OPTIONAL_SHUNTS if clean.get(key) is not None]
        for key, shunt in shunts:
            missing = [name for name in _SHUNT_RATING_KEYS if name not in shunt]
            if missing:
                defaults = ", ".join(f"{name}: {_DEFAULT_SHUNT_RATING[name]:g}" for name in missing)
                warnings.append(
                    f"{key}.{missing[0]}: not given, the default stands in ({defaults}); "
                    "currents are only right with the shunt's own rating (printed on it)"
                )
    mqtt = clean.get("mqtt") or {}
    if mqtt.get("tls") and "ca_file" not in mqtt:
        warnings.append(
            "mqtt.ca_file: not given with tls: true, the system's trusted CAs stand in; a "
            "broker with its own certificate authority needs ca_file"
        )
    if mqtt.get("tls_insecure"):
        warnings.append(
            "mqtt.tls_insecure: true, the broker's certificate is not checked: anyone on the "
            "path can read and send the box's messages"
        )
    return tuple(warnings)


def built_in_curve_note(config: AgentConfig) -> str | None:
    """The line the agent logs at start when it estimates SoC with nothing but its built-in
    resting-voltage curve near empty (issue 16): valid, and the SoC band stays honest, but
    it stays wide there, since where a pack's 0 % lies is a property of its cells that
    nothing seen in service reveals. None when the file gives the cells' curve or an empty
    SoC, or for a stock SBMS0 (it publishes its own SoC)."""
    soc = config.control.soc
    if config.source.type == "sbms0" or soc.ocv_curve is not None or soc.empty_soc is not None:
        return None
    return (
        "SoC near empty is read on the built-in LiFePO4 curve (no battery.ocv_curve or "
        "soc.empty_soc): its uncertainty stays honest but wide there, about 4 points either "
        "side; give the cells' datasheet resting-voltage table as battery.ocv_curve "
        "(example in docs/soc.md)"
    )


_OPTIONAL_SHUNTS = ("pv_shunt", "heat_shunt")
_SHUNT_RATING_KEYS = ("rated_current_a", "rated_millivolts")
_DEFAULT_SHUNT_RATING = {
    "rated_current_a": ShuntSettings().rated_current_a,
    "rated_millivolts": ShuntSettings().rated_millivolts,
}


def _build_remote_window(
    file_windows: Mapping[str, tuple[float, float]], control: ControlSettings
) -> dict[str, Range]:
    """The defaults (scaled by this file's capacity) with the file's own windows on top."""
    window = default_remote_window(control)
    for path, (low, high) in file_windows.items():
        window[path] = Range(low, high, window[path].unit)
    return window


def _build_diversion(section: Mapping[str, Any]) -> DiversionSettings:
    values = dict(section)
    arrays = tuple(ArraySettings(**item) for item in values.pop("arrays", ()))
    return DiversionSettings(**values, arrays=arrays)


def _build_heartbeat(item: Mapping[str, Any] | None) -> HeartbeatSettings | None:
    if item is None:
        return None
    keys = {key: value for key, value in item.items() if key != "hold_s"}
    return HeartbeatSettings(OutputPinSettings(name=HEARTBEAT_LINE, **keys), item["hold_s"])


def _control_outputs_for(
    items: Sequence[Mapping[str, Any]] | None, notes: list[str], *, sbms0: bool
) -> tuple[OutputSettings, ...]:
    if sbms0:
        return sbms0_outputs()  # the SBMS's own; an `outputs` section is rejected later
    return default_outputs() if items is None else _control_outputs(items, notes)


def _output_pins_for(
    items: Sequence[Mapping[str, Any]] | None, *, sbms0: bool
) -> tuple[OutputPinSettings, ...]:
    if sbms0:
        return ()  # the agent drives no pin on a stock SBMS
    return default_output_pins() if items is None else _pin_outputs(items)


def _build_source(section: Mapping[str, Any]) -> SourceSettings:
    serial = section.get("serial")
    http = section.get("http")
    return SourceSettings(
        type=section.get("type", "i2c"),
        serial=None if serial is None else SerialSourceSettings(**serial),
        http=None if http is None else HttpSourceSettings(**http),
        **{key: section[key] for key in ("stale_after_s", "require_checksum") if key in section},
    )


def _control_outputs(
    items: Sequence[Mapping[str, Any]], notes: list[str]
) -> tuple[OutputSettings, ...]:
    outputs: list[OutputSettings] = []
    for index, item in enumerate(items):
        output_type = item.get("type", OutputType.UNUSED)
        wiring = item.get("wiring")
        if wiring is None:
            wiring = inferred_wiring(output_type)
            notes.append(
                f"outputs[{index}] ({item['name']}): no wiring given, taken as "
                f"'{wiring.value}' from its type {int(output_type)}; say what it switches with "
                f"`wiring: {wiring.value}` (charge, load, signal, fault, heater or none, "
                "docs/wiring.md)"
            )
        outputs.append(
            OutputSettings(
                name=item["name"], type=output_type, wiring=wiring, diverts=item.get("diverts")
            )
        )
    return tuple(outputs)


_CONTROL_OUTPUT_KEYS = ("type", "wiring", "diverts")


def _pin_outputs(items: Sequence[Mapping[str, Any]]) -> tuple[OutputPinSettings, ...]:
    return tuple(
        OutputPinSettings(
            **{key: value for key, value in item.items() if key not in _CONTROL_OUTPUT_KEYS}
        )
        for item in items
    )
