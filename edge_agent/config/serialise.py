"""The configuration as plain YAML/JSON data: `config_to_dict`, which `parse_config` reads
back into an equal object (the remote overlay, the recording header and the `config` payload
are built from it)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

from edge_agent.config.link import MqttSettings
from edge_agent.config.model import (
    AgentConfig,
    HeartbeatSettings,
    OutputPinSettings,
    SourceSettings,
    StorageSettings,
    effective_remote_window,
)
from edge_agent.control.envelope import (
    Range,
)
from edge_agent.control.settings import (
    OutputSettings,
)


def config_to_dict(config: AgentConfig) -> dict[str, Any]:
    """The configuration as plain YAML/JSON data; `parse_config` rebuilds an equal object."""
    control = config.control
    hardware = config.hardware
    soc = _dataclass_dict(control.soc)
    capacity_ah = soc.pop("capacity_ah")
    ocv_curve = soc.pop("ocv_curve")
    battery: dict[str, Any] = {
        "chemistry": "lfp",
        "cells": control.cell_count,
        "capacity_ah": capacity_ah,
    }
    if ocv_curve is not None:
        battery["ocv_curve"] = [list(point) for point in ocv_curve]
    return {
        "agent_id": config.agent_id,
        "battery": battery,
        "i2c_bus": hardware.i2c_bus,
        "cell_monitor": {
            **_dataclass_dict(hardware.cell_monitor),
            "battery_thermistor": control.battery_thermistor,
        },
        "battery_shunt": _dataclass_dict(hardware.battery_shunt),
        "pv_shunt": None if hardware.pv_shunt is None else _dataclass_dict(hardware.pv_shunt),
        # A stock SBMS's outputs are its own (sbms0_outputs), not a file setting.
        **(
            {"outputs": _outputs_to_list(control.outputs, hardware.outputs)}
            if config.source.type == "i2c"
            else {}
        ),
        **(
            {}
            if hardware.heartbeat is None
            else {"heartbeat": _heartbeat_to_dict(hardware.heartbeat)}
        ),
        # A stock SBMS takes no remote changes: no window to show.
        **(
            {"remote_window": _remote_window_to_dict(effective_remote_window(config))}
            if config.source.type == "i2c"
            else {}
        ),
        "thresholds": _dataclass_dict(control.cells),
        "balancing": _dataclass_dict(control.balance),
        "soc": soc,
        "soc_alarms": _dataclass_dict(control.soc_alarms),
        "temperature": _dataclass_dict(control.temperature),
        "dual_pv": _dataclass_dict(control.dual_pv),
        "max_soc": _dataclass_dict(control.max_soc),
        "timing": {
            "sample_interval_s": config.timing.sample_interval_s,
            "stale_after_s": control.stale_after_s,
            "state_save_interval_s": config.timing.state_save_interval_s,
            "status_interval_s": config.timing.status_interval_s,
        },
        "storage": _storage_to_dict(config.storage),
        "data_log": _dataclass_dict(config.data_log),
        "lockouts_latch": control.lockouts_latch,
        "publish": _dataclass_dict(config.publish),
        **({} if config.mqtt is None else {"mqtt": _mqtt_to_dict(config.mqtt)}),
        **({} if config.source.type == "i2c" else {"source": _source_to_dict(config.source)}),
    }


def _heartbeat_to_dict(heartbeat: HeartbeatSettings) -> dict[str, Any]:
    return {**_line_to_dict(heartbeat.line), "hold_s": heartbeat.hold_s}


def _remote_window_to_dict(window: Mapping[str, Range]) -> dict[str, dict[str, list[float]]]:
    sections: dict[str, dict[str, list[float]]] = {}
    for path, allowed in window.items():
        section, _, key = path.partition(".")
        sections.setdefault(section, {})[key] = [allowed.low, allowed.high]
    return sections


def _storage_to_dict(storage: StorageSettings) -> dict[str, Any]:
    data = {"state_path": str(storage.state_path)}
    if storage.data_log_path is not None:
        data["data_log_path"] = str(storage.data_log_path)
    return data


def _source_to_dict(source: SourceSettings) -> dict[str, Any]:
    data = _dataclass_dict(source)
    for key in ("serial", "http"):
        value = getattr(source, key)
        data[key] = None if value is None else _dataclass_dict(value)
    return {key: value for key, value in data.items() if value is not None}


def _mqtt_to_dict(mqtt: MqttSettings) -> dict[str, Any]:
    data = _dataclass_dict(mqtt)
    del data["agent_id"]  # the top-level agent_id
    del data["operation_timeout_s"]  # not a file setting
    return {
        key: str(value) if isinstance(value, Path) else value
        for key, value in data.items()
        if value is not None
    }


def _dataclass_dict(instance: Any) -> dict[str, Any]:
    return {item.name: getattr(instance, item.name) for item in fields(instance)}


def _outputs_to_list(
    control_outputs: Sequence[OutputSettings], pins: Sequence[OutputPinSettings]
) -> list[dict[str, Any]]:
    types = {output.name: output.type for output in control_outputs}
    if set(types) != {pin.name for pin in pins} or len(pins) != len(control_outputs):
        raise ValueError("control.outputs and hardware.outputs must name the same outputs")
    wirings = {output.name: output.wiring for output in control_outputs}
    return [
        {
            "name": pin.name,
            "type": int(types[pin.name]),
            "wiring": wirings[pin.name].value,
            **_line_to_dict(pin),
        }
        for pin in pins
    ]


def _line_to_dict(pin: OutputPinSettings) -> dict[str, Any]:
    item: dict[str, Any] = {"driver": pin.driver}
    if pin.driver == "mcp23008":
        item.update(address=pin.address, pin=pin.pin)
    else:
        item.update(chip=pin.chip, line=pin.line)
    item["active_low"] = pin.active_low
    return item
