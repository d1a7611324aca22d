"""A Home Assistant config dir for the demo, seeded so it opens on the dashboard.

Clean on every Home Assistant we support (no repair raised, no dialog): what changed between
2025.4 and 2026.x is detected in the installed Home Assistant (`HomeAssistantStyle`), not
guessed from its version number. 2026.x keeps the HTTP server's settings in `.storage/http`
and raises a repair for an `http:` block; it wants YAML dashboards as `lovelace: dashboards:`
entries, not `mode: yaml`; and it opens on its own "home" overview unless the system-wide
default dashboard (`frontend.system_data`, key `core`) names another.

Seeded, not clicked through: onboarding marked done, one owner user that the trusted_networks
provider logs in without a password (127.0.0.1 and ::1 only, the server listens on 127.0.0.1
only), the MQTT and sbms config entries, entity registry entries that enable the per-cell
sensors the dashboard shows (they are off by default), and the Energy dashboard's sources
(`.storage/energy`: solar, battery in and out, the DC loads and the water heater's diverted
energy as devices). Storage files are
written at an old minor version with only the keys that version needs: Home Assistant's own
migrations fill in the rest, which keeps the seed valid on newer releases too.
"""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import homeassistant.components
from homeassistant.components.mqtt.const import CONFIG_ENTRY_MINOR_VERSION, CONFIG_ENTRY_VERSION
from homeassistant.util import slugify

from dashboards.sbms_dashboard import Box, Load, reads_tank, render

OWNER_ID: Final = "5b4d2f7e0c9a4d1e8f3a6b2c1d0e9f87"
OWNER_NAME: Final = "Demo"
MQTT_ENTRY_ID: Final = "01SBMSDEMOMQTT00000000000"
SBMS_ENTRY_ID: Final = "01SBMSDEMOBOX000000000000"
BACKUP_ENTRY_ID: Final = "01SBMSDEMOBACKUP000000000"
REPO_ROOT: Final = Path(__file__).resolve().parent.parent

DASHBOARD_FILE: Final = "ui-lovelace.yaml"
DASHBOARD_URL_PATH: Final = "lovelace"  # the default dashboard's own path, "/" on both

_HTTP_YAML: Final = """\
http:
  server_host: 127.0.0.1
  server_port: {port}

"""
_LOVELACE_LEGACY_YAML: Final = """\
lovelace:
  mode: yaml
"""
_LOVELACE_DASHBOARD_YAML: Final = f"""\
lovelace:
  dashboards:
    {DASHBOARD_URL_PATH}:
      mode: yaml
      filename: {DASHBOARD_FILE}
      title: Battery
      icon: mdi:home-battery
      show_in_sidebar: true
"""

CONFIGURATION_YAML: Final = """\
# Written by the SBMS demo (demo/home_assistant.py) on every start: edits do not last.
homeassistant:
  name: SBMS demo
  latitude: 48.21
  longitude: 16.37
  elevation: 190
  unit_system: metric
  time_zone: UTC
  currency: EUR
  country: AT
  # The demo only: anyone on this machine is logged in as the demo owner, without a password.
  auth_providers:
    - type: trusted_networks
      trusted_networks:
        - 127.0.0.1/32
        - ::1/128
      allow_bypass_login: true

{http}# Two household loads the box's load shedding switches off as the battery runs low.
input_boolean:
  water_heater:
    name: Water heater
    icon: mdi:water-boiler
    initial: true
  pool_pump:
    name: Pool pump
    icon: mdi:pump
    initial: true
  # A surplus load (issue 19): off until the battery is full and the panels heat the water.
  ev_charger:
    name: EV charger
    icon: mdi:ev-station
    initial: false

# Only what the dashboards need (default_config would pull in many more requirements).
frontend:
config:
energy:
history:
# The dashboard shows each cell's balancing; the logbook has the box's one "Balancing" line
# per episode instead of eight lines per HVD cycle (docs/integration.md).
logbook:
  exclude:
    entity_globs:
      - binary_sensor.sbms_*_cell_*_balancing
repairs:
recorder:
  commit_interval: 1
  purge_keep_days: 1
{lovelace}
logger:
  default: warning
"""


@dataclass(frozen=True, slots=True)
class HomeAssistantStyle:
    """How the installed Home Assistant wants the demo's configuration."""

    http_in_storage: bool  # 2026.x: `.storage/http`, an `http:` block raises a repair
    dashboards_as_entries: bool  # 2026.x: `mode: yaml` raises a repair

    @classmethod
    def detect(cls) -> HomeAssistantStyle:
        components = Path(homeassistant.components.__file__).parent
        lovelace_strings = components / "lovelace" / "strings.json"
        issues = json.loads(lovelace_strings.read_text(encoding="utf-8")).get("issues", {})
        return cls(
            http_in_storage=importlib.util.find_spec("homeassistant.components.http.config")
            is not None,
            dashboards_as_entries="yaml_mode_deprecated" in issues,
        )


@dataclass(frozen=True, slots=True)
class DemoBox:
    """What the seed needs to know about the agent: its id, topics and retained announce."""

    agent_id: str
    topic_prefix: str
    announce: Mapping[str, Any]
    # Its retained `config`: whether it reads a heater tank (`diversion.tank_temperature`).
    config: Mapping[str, Any] = field(default_factory=dict)

    @property
    def cells(self) -> int:
        return int(self.announce["cells"])

    @property
    def entity_prefix(self) -> str:
        """Home Assistant's entity ids for the box start with this, after the platform."""
        return f"sbms_{slugify(self.agent_id)}"

    @property
    def serial(self) -> str:
        """The box's id as it announces it (the integration's unique ids start with it)."""
        return str(self.announce["serial"])


def configuration_yaml(http_port: int, style: HomeAssistantStyle) -> str:
    return CONFIGURATION_YAML.format(
        http="" if style.http_in_storage else _HTTP_YAML.format(port=http_port),
        lovelace=_LOVELACE_DASHBOARD_YAML if style.dashboards_as_entries else _LOVELACE_LEGACY_YAML,
    )


def seed_config_dir(
    config_dir: Path,
    *,
    http_port: int,
    mqtt_port: int,
    box: DemoBox,
    speed: float,
    style: HomeAssistantStyle | None = None,
) -> None:
    """A fresh config dir: nothing of an earlier run is kept."""
    style = style or HomeAssistantStyle.detect()
    if config_dir.exists():
        shutil.rmtree(config_dir)
    (config_dir / ".storage").mkdir(parents=True)
    (config_dir / "custom_components").mkdir()
    (config_dir / "custom_components" / "sbms").symlink_to(
        REPO_ROOT / "custom_components" / "sbms", target_is_directory=True
    )
    (config_dir / "configuration.yaml").write_text(
        configuration_yaml(http_port, style), encoding="utf-8"
    )
    # The "lovelace" dashboard (at "/") reads ui-lovelace.yaml in both styles.
    (config_dir / DASHBOARD_FILE).write_text(demo_dashboard(box, speed=speed), encoding="utf-8")
    _write_storage(config_dir, "auth", 1, 1, _auth())
    _write_storage(config_dir, "onboarding", 4, 1, {"done": _ONBOARDING_DONE})
    _write_storage(config_dir, "core.config_entries", 1, 1, _config_entries(mqtt_port, box))
    _write_storage(config_dir, "core.entity_registry", 1, 1, _entity_registry(box))
    _write_storage(config_dir, "energy", 1, 1, energy_preferences(box))
    if style.http_in_storage:
        # Version 1 is the flat settings: Home Assistant's migration fills in every default
        # as the confirmed ("stable") configuration, so nothing is on trial and no dialog asks
        # to confirm it; no `http:` block, so nothing to migrate and no repair.
        _write_storage(config_dir, "http", 1, 1, _http_settings(http_port))
    # The system-wide start page where Home Assistant has one (2026.x opens on its own "home"
    # overview otherwise); 2025.4 starts on the "lovelace" dashboard anyway.
    _write_storage(
        config_dir, "frontend.system_data", 1, 1, {"core": {"default_panel": DASHBOARD_URL_PATH}}
    )


def _http_settings(port: int) -> dict[str, Any]:
    return {"server_host": ["127.0.0.1"], "server_port": port}


def demo_dashboard(box: DemoBox, *, speed: float) -> str:
    """The dashboard for this box, as `dashboards/sbms_dashboard.py` prints it for a user's,
    its history graphs spanning simulated time: at 60x, a simulated day in 24 minutes."""

    def scaled(match: re.Match[str]) -> str:
        return f"{match.group(1)}{float(match.group(2)) / speed:.4g}"

    loads = [Load(title, entity_id) for entity_id, title, *_ in DEMO_LOADS]
    surplus = [Load(title, entity_id) for entity_id, title, *_ in DEMO_SURPLUS_LOADS]
    announce = {**box.announce, "agent_id": box.agent_id}
    box_info = Box.from_announce(announce, loads, surplus, tank=reads_tank(box.config))
    dashboard = render(box_info)
    return re.sub(r"(hours_to_show: )([0-9.]+)", scaled, dashboard)


def energy_preferences(box: DemoBox) -> dict[str, Any]:
    """The Energy dashboard set up as docs/integration.md says: solar, the battery's two
    counters (from the battery: discharge; to it: charge), the DC loads as a device, and the
    water heater's diverted energy as another (PV that would have been lost)."""
    sensor = f"sensor.{box.entity_prefix}"
    return {
        "energy_sources": [
            {
                "type": "solar",
                "stat_energy_from": f"{sensor}_pv_energy",
                "config_entry_solar_forecast": None,
            },
            {
                "type": "battery",
                "stat_energy_from": f"{sensor}_battery_discharge_energy",
                "stat_energy_to": f"{sensor}_battery_charge_energy",
            },
        ],
        "device_consumption": [
            {"stat_consumption": f"{sensor}_load_energy", "name": "DC loads"},
            {
                "stat_consumption": f"{sensor}_diverted_energy",
                "name": "Water heater (PV diversion)",
            },
        ],
    }


_ONBOARDING_DONE: Final = ["user", "core_config", "analytics", "integration"]


def _write_storage(
    config_dir: Path, key: str, version: int, minor_version: int, data: Mapping[str, Any]
) -> None:
    document = {"version": version, "minor_version": minor_version, "key": key, "data": data}
    path = config_dir / ".storage" / key
    path.write_text(json.dumps(document, indent=2), encoding="utf-8")


def _auth() -> dict[str, Any]:
    # No groups: Home Assistant adds its system groups and makes the users admins on load.
    owner = {
        "id": OWNER_ID,
        "group_ids": [],
        "is_owner": True,
        "is_active": True,
        "name": OWNER_NAME,
        "system_generated": False,
        "local_only": True,
    }
    return {"users": [owner], "groups": [], "credentials": [], "refresh_tokens": []}


def _config_entries(mqtt_port: int, box: DemoBox) -> dict[str, Any]:
    mqtt = {
        "entry_id": MQTT_ENTRY_ID,
        "domain": "mqtt",
        "title": "Demo broker",
        "source": "user",
        "version": CONFIG_ENTRY_VERSION,
        "minor_version": CONFIG_ENTRY_MINOR_VERSION,
        "unique_id": None,
        "data": {"broker": "127.0.0.1", "port": mqtt_port},
        "options": {},
    }
    sbms = {
        "entry_id": SBMS_ENTRY_ID,
        "domain": "sbms",
        "title": f"SBMS {box.agent_id}",
        "source": "user",
        # As the integration's flow writes it today (entry version 2: the box known by its
        # announced serial), so the demo starts without a migration.
        "version": 2,
        "minor_version": 1,
        "unique_id": box.serial,
        "data": {
            "agent_id": box.agent_id,
            "topic_prefix": box.topic_prefix,
            "serial": box.serial,
        },
        "options": {},
        "subentries": [_load_subentry(load) for load in DEMO_LOADS]
        + [_surplus_load_subentry(load) for load in DEMO_SURPLUS_LOADS],
    }
    # What Home Assistant's onboarding leaves: the backup integration's entry. Without it the
    # first start makes it in a "system" flow, which posts a "New devices discovered"
    # notification that stays on the demo's sidebar.
    backup = {
        "entry_id": BACKUP_ENTRY_ID,
        "domain": "backup",
        "title": "Backup",
        "source": "system",
        "version": 1,
        "minor_version": 1,
        "unique_id": None,
        "data": {},
        "options": {},
    }
    return {"entries": [mqtt, sbms, backup]}


# (entity, title, priority, shed below %, restore above %): the water heater goes first.
DEMO_LOADS: Final = (
    ("input_boolean.water_heater", "Water heater", 1, 40.0, 60.0),
    ("input_boolean.pool_pump", "Pool pump", 2, 30.0, 50.0),
)


def _load_subentry(load: tuple[str, str, int, float, float]) -> dict[str, Any]:
    """A load as the integration's "Add optional load" flow stores it."""
    entity_id, title, priority, shed_below, restore_above = load
    return {
        "subentry_id": f"demo{priority:022d}",
        "subentry_type": "load",
        "title": title,
        "unique_id": entity_id,
        "data": {
            "entity_id": entity_id,
            "priority": priority,
            "shed_below": shed_below,
            "restore_above": restore_above,
            "min_off_time": 2.0,
            "min_on_time": 1.0,
        },
    }


# (entity, title, priority, switch off below %, maximum battery discharge W): a surplus load
# (issue 19), switched on once the battery is full and the panels heat the water. While they
# do, the battery carries the simulated box's daytime loads (45-135 W), so the limit is above
# them; the evening peak (about 300 W for an hour and more of the demo's day: its minute at
# 60x, a kettle's minutes ridden out) or SoC below 95 % switches it off once the sun has gone.
DEMO_SURPLUS_LOADS: Final = (("input_boolean.ev_charger", "EV charger", 10, 95.0, 200.0),)


def _surplus_load_subentry(load: tuple[str, str, int, float, float]) -> dict[str, Any]:
    """A surplus load as the integration's "Add surplus load" flow stores it."""
    entity_id, title, priority, min_soc, max_discharge_w = load
    return {
        "subentry_id": f"demosurplus{priority:015d}",
        "subentry_type": "surplus_load",
        "title": title,
        "unique_id": entity_id,
        "data": {
            "entity_id": entity_id,
            "priority": priority,
            "min_soc": min_soc,
            "max_discharge_power": max_discharge_w,
            "discharge_time": 60.0,
            "min_on_time": 1.0,
            "min_off_time": 2.0,
        },
    }


def _entity_registry(box: DemoBox) -> dict[str, Any]:
    """Enabled entries for the per-cell voltages, balancing flags and distances from the mean
    the dashboard shows."""
    entities: list[dict[str, Any]] = []
    for cell in range(1, box.cells + 1):
        entities.append(
            _registry_entry(
                f"sensor.{box.entity_prefix}_cell_{cell}_voltage",
                f"{box.serial}_cell_voltage_{cell}",
            )
        )
        entities.append(
            _registry_entry(
                f"binary_sensor.{box.entity_prefix}_cell_{cell}_balancing",
                f"{box.serial}_balancing_{cell}",
            )
        )
        # Each cell's distance from the pack's mean: the colours of the cell gauges.
        entities.append(
            _registry_entry(
                f"sensor.{box.entity_prefix}_cell_{cell}_from_mean",
                f"{box.serial}_cell_from_mean_{cell}",
            )
        )
    return {"entities": entities, "deleted_entities": []}


def _registry_entry(entity_id: str, unique_id: str) -> dict[str, Any]:
    return {
        "entity_id": entity_id,
        "unique_id": unique_id,
        "platform": "sbms",
        "config_entry_id": SBMS_ENTRY_ID,
    }
