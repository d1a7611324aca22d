"""The agent's configuration: one YAML file, validated before anything runs.

Validation is two-phase. First voluptuous checks the shape (known keys only, types, choices:
`schema.py`), then the built settings (`model.py`) are checked as a whole (threshold order,
address ranges, pin clashes: `rules.py`). Every problem names its key path ("outputs[2].pin")
and the rule broken; a configuration is either returned complete or rejected with the full
list: nothing is ever half-applied. `load.py` reads the file and builds the objects,
`serialise.py` writes them back as plain data, `link.py` holds the MQTT link's settings.

How a remote `config/set` is merged into the file's settings is the runtime's policy
(`runtime/remote_merge.py`), not the file's.
"""

from __future__ import annotations

from edge_agent.config.link import MqttProtocol, MqttSettings, PublishSettings
from edge_agent.config.load import (
    built_in_curve_note,
    default_config,
    load_config,
    parse_config,
)
from edge_agent.config.model import (
    DATA_LOG_SUFFIX,
    HEARTBEAT_LINE,
    HEARTBEAT_MARGIN,
    SBMS0_BAUD_DEFAULT,
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
    effective_remote_window,
)
from edge_agent.config.rules import validate_control_settings
from edge_agent.config.serialise import config_to_dict

__all__ = [
    "DATA_LOG_SUFFIX",
    "HEARTBEAT_LINE",
    "HEARTBEAT_MARGIN",
    "SBMS0_BAUD_DEFAULT",
    "AgentConfig",
    "CellMonitorSettings",
    "ConfigError",
    "DataLogSettings",
    "HardwareSettings",
    "HeartbeatSettings",
    "HttpSourceSettings",
    "MqttProtocol",
    "MqttSettings",
    "OutputPinSettings",
    "PublishSettings",
    "SerialSourceSettings",
    "ShuntSettings",
    "SourceSettings",
    "StorageSettings",
    "TimingSettings",
    "built_in_curve_note",
    "config_to_dict",
    "default_config",
    "effective_remote_window",
    "load_config",
    "parse_config",
    "validate_control_settings",
]
