"""Turn the add-on's options and the Supervisor's MQTT service into an sbms-agent config file.

run.sh calls this inside the add-on container (the agent's venv has PyYAML). The MQTT service
comes in through SBMS_MQTT_* environment variables so the password never shows on a command
line. A user file (/config/sbms-agent.yaml in the add-on's config folder) replaces the options
entirely, for settings the options do not cover; it still gets the Supervisor's broker unless
it names its own, and a state path inside /data, the only folder that survives updates.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import yaml

STATE_PATH = "/data/state.db"
_OUTPUT_KEYS = {
    "mcp23008": ("address", "pin"),
    "gpiod": ("chip", "line"),
}


def options_to_config(options: Mapping[str, Any]) -> dict[str, Any]:
    """The agent configuration described by the add-on options (without MQTT)."""
    config: dict[str, Any] = {
        "agent_id": options["agent_id"],
        "battery": {
            "chemistry": "lfp",
            "cells": options["cells"],
            "capacity_ah": options["capacity_ah"],
        },
        "i2c_bus": options["i2c_bus"],
        "cell_monitor": {
            "chip": options["cell_monitor_chip"],
            "address": options["cell_monitor_address"],
        },
        "battery_shunt": _shunt(options, "battery_shunt"),
        "outputs": [_output(item) for item in options["outputs"]],
        "storage": {"state_path": STATE_PATH},
    }
    if options.get("pv_shunt_chip"):
        config["pv_shunt"] = _shunt(options, "pv_shunt")
    return config


def _shunt(options: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    # The agent reports a missing rating or address by key name; pass only what is set.
    names = ("chip", "address", "rated_current_a", "rated_millivolts")
    return {name: options[f"{prefix}_{name}"] for name in names if f"{prefix}_{name}" in options}


def _output(item: Mapping[str, Any]) -> dict[str, Any]:
    output: dict[str, Any] = {"name": item["name"], "type": item["type"], "driver": item["driver"]}
    for key in _OUTPUT_KEYS.get(item["driver"], ()):
        if key in item:
            output[key] = item[key]
    line = output.get("line")
    if isinstance(line, str) and line.isdigit():
        output["line"] = int(line)  # the add-on schema has strings only: "17" is an offset
    if "active_low" in item:
        output["active_low"] = item["active_low"]
    return output


def mqtt_from_environment(environ: Mapping[str, str]) -> dict[str, Any]:
    """The `mqtt:` section for the Supervisor's broker (SBMS_MQTT_* variables)."""
    section: dict[str, Any] = {
        "host": environ["SBMS_MQTT_HOST"],
        "port": int(environ["SBMS_MQTT_PORT"]),
    }
    username = environ.get("SBMS_MQTT_USERNAME", "")
    if username:
        section["username"] = username
        section["password"] = environ.get("SBMS_MQTT_PASSWORD", "")
    if environ.get("SBMS_MQTT_SSL", "false").lower() == "true":
        section["tls"] = True
    return section


def build_config(
    options: Mapping[str, Any], user_config: Mapping[str, Any] | None, mqtt: Mapping[str, Any]
) -> dict[str, Any]:
    """The file the agent runs with: options, or the user's file, plus broker and state path."""
    if user_config is None:
        config = options_to_config(options)
        config["mqtt"] = {**mqtt, "ha_discovery": bool(options.get("ha_discovery", False))}
        return config
    config = dict(user_config)
    config.setdefault("mqtt", dict(mqtt))
    config.setdefault("storage", {"state_path": STATE_PATH})
    return config


def _read_user_config(path: Path) -> dict[str, Any] | None:
    if not path.exists():
        return None
    loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
    if not isinstance(loaded, dict):
        raise ValueError(f"{path}: expected a mapping of agent settings")
    return loaded


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--options", type=Path, required=True)
    parser.add_argument("--user-config", type=Path, required=True)
    parser.add_argument("--output", type=Path, required=True)
    args = parser.parse_args(argv)
    options = json.loads(args.options.read_text(encoding="utf-8"))
    try:
        user_config = _read_user_config(args.user_config)
    except (OSError, ValueError, yaml.YAMLError) as err:
        print(f"sbms-agent add-on: {err}", file=sys.stderr)
        return 2
    config = build_config(options, user_config, mqtt_from_environment(os.environ))
    # The file holds the broker password: readable by its owner only.
    descriptor = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="utf-8") as output:
        yaml.safe_dump(config, output, sort_keys=False)
    source = args.user_config if user_config is not None else "the add-on options"
    print(f"sbms-agent add-on: configuration written from {source}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
