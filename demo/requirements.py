"""`python -m demo.requirements`: the Python packages the demo's Home Assistant imports, read
from the installed Home Assistant itself, one requirement per line.

The demo starts Home Assistant with `--skip-pip`, so everything it imports must be installed
beforehand. Pinned runs take requirements/demo.txt; the newest Home Assistant
(scripts/newest-env) is whatever the package index offers today, so its list comes from its
own manifests: the components the demo configures, the entity platforms MQTT sets up (from
2026.x it sets up every platform it supports, cameras and infrared included), the "base
components" Home Assistant imports to list services for the frontend, and every entity
component, each with its dependencies and after-dependencies.
"""

from __future__ import annotations

import ast
import json
from collections.abc import Iterable
from pathlib import Path

import homeassistant.components
import homeassistant.helpers.service
from homeassistant.components.mqtt import const as mqtt_const

CONFIGURED = (
    "frontend",
    "config",
    "energy",
    "history",
    "logbook",
    "recorder",
    "lovelace",
    "mqtt",
    "http",
    "input_boolean",
    "logger",
    "repairs",
)
COMPONENTS_DIR = Path(homeassistant.components.__file__).parent


def _base_components() -> list[str]:
    """The components `homeassistant.helpers.service._base_components` imports."""
    source = Path(homeassistant.helpers.service.__file__).read_text(encoding="utf-8")
    names: list[str] = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef) and node.name == "_base_components":
            names += [
                alias.name
                for inner in ast.walk(node)
                if isinstance(inner, ast.ImportFrom) and inner.module == "homeassistant.components"
                for alias in inner.names
            ]
    return names


def _mqtt_platforms() -> list[str]:
    platforms = [str(platform) for platform in getattr(mqtt_const, "ENTITY_PLATFORMS", [])]
    return platforms + list(getattr(mqtt_const, "SUPPORTED_COMPONENTS", ()))


def _entity_components() -> list[str]:
    """Components of integration type "entity" (sensor, camera, radio_frequency, ...): the
    newest Home Assistant sets some up for other components' sake without a configuration."""
    names: list[str] = []
    for manifest_path in COMPONENTS_DIR.glob("*/manifest.json"):
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        if manifest.get("integration_type") == "entity":
            names.append(manifest_path.parent.name)
    return names


def requirements(start: Iterable[str]) -> set[str]:
    """Every requirement of these components and of what they depend on."""
    todo = list(start)
    seen: set[str] = set()
    found: set[str] = set()
    while todo:
        name = todo.pop()
        manifest_path = COMPONENTS_DIR / name / "manifest.json"
        if name in seen or not manifest_path.exists():
            continue
        seen.add(name)
        manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        found.update(manifest.get("requirements", []))
        todo += manifest.get("dependencies", []) + manifest.get("after_dependencies", [])
    return found


def main() -> None:
    wanted = requirements(
        [*CONFIGURED, *_mqtt_platforms(), *_base_components(), *_entity_components()]
    )
    print("\n".join(sorted(wanted)))


if __name__ == "__main__":
    main()
