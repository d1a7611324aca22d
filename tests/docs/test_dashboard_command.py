"""`python3 dashboards/sbms_dashboard.py DIAGNOSTICS.json`, the command docs/integration.md gives
for the dashboard on one's own Home Assistant: it prints the dashboard fitted to the box."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from dashboards.sbms_dashboard import TEMPLATE, Box, Load, render

REPO_ROOT = Path(__file__).resolve().parents[2]
COMMAND = REPO_ROOT / "dashboards" / "sbms_dashboard.py"
ENTITY = re.compile(r"\b(?:sensor|binary_sensor|switch|input_boolean)\.[a-z0-9_]+")

# The demo's simulated box as it announces itself (edge_agent/sim, ./scripts/demo).
DEMO_ANNOUNCE: dict[str, Any] = {
    "agent_id": "simulator",
    "cells": 8,
    "measurements": {"pv_current": True, "temperatures": ["internal", "battery", "external2"]},
    "outputs": [
        {"name": "extio3", "type": 2, "type_name": "lvd"},
        {"name": "extio4", "type": 1, "type_name": "hvd"},
        {"name": "extio5", "type": 0, "type_name": "unused"},
        {"name": "extio6", "type": 5, "type_name": "fault"},
        {"name": "heat1", "type": 7, "type_name": "diversion"},
    ],
}
DEMO_LOADS = (
    Load("Water heater", "input_boolean.water_heater"),
    Load("Pool pump", "input_boolean.pool_pump"),
)
DEMO_SURPLUS_LOADS = (Load("EV charger", "input_boolean.ev_charger"),)


def _diagnostics(tmp_path: Path) -> Path:
    """What *Download diagnostics* saves for a 4S box without a PV shunt or battery sensor
    (the announce as the integration keeps it: output types as numbers, flat measurements)."""
    document = {
        "home_assistant": {"version": "2026.11.0"},
        "data": {
            "entry": {"title": "SBMS Garage", "data": {"agent_id": "Garage", "announce": {}}},
            "announce": {
                "agent_id": "Garage",
                "serial": "**REDACTED**",
                "cells": 4,
                "pv_current": False,
                "temperatures": ["internal"],
                "outputs": [
                    {"name": "loads", "type": 2, "wiring": "load"},
                    {"name": "charger", "type": 1, "wiring": "charge"},
                ],
            },
            "load_shedding": {
                "enabled": True,
                "loads": [{"title": "Boiler", "entity_id": "switch.boiler", "priority": 1}],
            },
        },
    }
    path = tmp_path / "config_entry-sbms-01ABC.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def test_the_shipped_dashboard_is_what_the_command_prints_for_the_demo_box() -> None:
    """One source: the command changes nothing for the box sbms.yaml is written for."""
    printed = render(Box.from_announce(DEMO_ANNOUNCE, DEMO_LOADS, DEMO_SURPLUS_LOADS, tank=True))
    assert printed == TEMPLATE.read_text(encoding="utf-8")


def test_the_command_fits_the_dashboard_to_a_box_from_its_diagnostics(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(COMMAND), str(_diagnostics(tmp_path))],
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,  # runs from anywhere, on the standard library alone
    )
    dashboard = yaml.safe_load(result.stdout)
    assert dashboard["views"][0]["type"] == "sections"
    entities = set(ENTITY.findall(result.stdout))
    assert {f"sensor.sbms_garage_cell_{cell}_voltage" for cell in range(1, 5)} <= entities
    assert "binary_sensor.sbms_garage_cell_4_balancing" in entities
    assert {
        "binary_sensor.sbms_garage_output_loads",
        "binary_sensor.sbms_garage_output_charger",
        "sensor.sbms_garage_load_shedding_boiler",
        "switch.boiler",
        "sensor.sbms_garage_battery_charge_energy",
        "sensor.sbms_garage_battery_discharge_energy",
    } <= entities
    assert "LOADS (LVD, loads)" in result.stdout
    assert "CHARGER (HVD, chargers)" in result.stdout
    # Nothing the box lacks, nothing of the demo's box.
    absent = ("_cell_5_", "_pv_", "_load_power", "_load_energy", "_battery_temperature")
    assert not [entity for entity in entities if any(part in entity for part in absent)]
    assert not [entity for entity in entities if "simulator" in entity or "extio" in entity]
    assert "input_boolean" not in result.stdout
    # Each cell coloured by its distance from the pack's mean; no water heater on this box.
    assert {f"sensor.sbms_garage_cell_{cell}_from_mean" for cell in range(1, 5)} <= entities
    assert "Water heater" not in result.stdout
    assert "external_temperature_2" not in result.stdout
    # Cards keep their other entities: the power graph shows the battery alone.
    history = dashboard["views"][0]["sections"][-1]["cards"]
    power = next(card for card in history if card.get("title") == "Power")
    assert power["entities"] == [{"entity": "sensor.sbms_garage_battery_power", "name": "Battery"}]


def test_the_command_takes_a_bare_announce_and_says_what_it_cannot_read(tmp_path: Path) -> None:
    announce = tmp_path / "announce.json"
    announce.write_text(json.dumps(DEMO_ANNOUNCE | {"agent_id": "shed"}), encoding="utf-8")
    printed = subprocess.run(
        [sys.executable, str(COMMAND), "-"],
        input=announce.read_text(encoding="utf-8"),
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "sensor.sbms_shed_cell_8_voltage" in printed
    assert "sbms_simulator" not in printed
    assert "input_boolean" not in printed  # a bare announce names no loads

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"hello": 1}), encoding="utf-8")
    failed = subprocess.run(
        [sys.executable, str(COMMAND), str(wrong)], capture_output=True, text=True, check=False
    )
    assert failed.returncode == 2
    assert "not a box's diagnostics or announce" in failed.stderr


def test_a_box_that_diverts_gets_its_heater_and_tank(tmp_path: Path) -> None:
    """Issue 19: the diversion output under "Today" and in its own history graph, with the
    tank's temperature when the box reads one (its config's `diversion.tank_temperature`, in
    diagnostics); without one the output alone. Issue 20: the tank's entity, Heater tank
    temperature, not External temperature 2 (the same xT2 reading, which the integration no
    longer offers twice)."""
    path = _diagnostics(tmp_path)
    document = json.loads(path.read_text(encoding="utf-8"))
    announce = document["data"]["announce"]
    announce["outputs"] = [*announce["outputs"], {"name": "boiler", "type": 7}]
    announce["temperatures"] = ["internal", "external2"]
    document["data"]["config"] = {"diversion": {"tank_temperature": "external2"}}
    path.write_text(json.dumps(document), encoding="utf-8")
    dashboard = subprocess.run(
        [sys.executable, str(COMMAND), str(path)], capture_output=True, text=True, check=True
    ).stdout
    assert "binary_sensor.sbms_garage_output_boiler" in dashboard
    assert "sensor.sbms_garage_heater_tank_temperature" in dashboard
    assert "external_temperature_2" not in dashboard
    history = yaml.safe_load(dashboard)["views"][0]["sections"][-1]["cards"]
    heater = next(card for card in history if card.get("title") == "Water heater")
    assert [item["entity"] for item in heater["entities"]] == [
        "sensor.sbms_garage_heater_tank_temperature",
        "binary_sensor.sbms_garage_output_boiler",
    ]
    # xT2 read, but no tank named: the heater alone (an announce never says it either).
    document["data"]["config"] = {"diversion": {"tank_temperature": None}}
    without_tank = render(Box.from_json(document))
    assert "binary_sensor.sbms_garage_output_boiler" in without_tank
    assert "heater_tank_temperature" not in without_tank
    assert "external_temperature_2" not in without_tank
    assert not Box.from_announce(announce).tank


def test_surplus_loads_from_diagnostics_without_a_diversion(tmp_path: Path) -> None:
    """Issue 19: a box that does not divert still shows its surplus loads (under a heading of
    their own), and nothing of a heater; one that diverts gets them in the water heater's part."""
    path = _diagnostics(tmp_path)
    document = json.loads(path.read_text(encoding="utf-8"))
    document["data"]["surplus_loads"] = {
        "enabled": True,
        "loads": [{"title": "Pool pump", "entity_id": "switch.pool", "priority": 10}],
    }
    box = Box.from_json(document)
    assert box.surplus_loads == (Load("Pool pump", "switch.pool"),)
    dashboard = render(box)
    cards = yaml.safe_load(dashboard)["views"][0]["sections"][2]["cards"]
    headings = [card.get("heading") for card in cards if card["type"] == "heading"]
    assert "Surplus loads" in headings
    assert "Water heater" not in dashboard
    surplus = next(card for card in cards if card.get("name") == "Pool pump")
    assert surplus["entity"] == "sensor.sbms_garage_surplus_load_pool_pump"
    assert "diversion_power" not in dashboard
    assert "diverted_energy" not in dashboard

    demo = render(Box.from_announce(DEMO_ANNOUNCE, DEMO_LOADS, DEMO_SURPLUS_LOADS, tank=True))
    flows = yaml.safe_load(demo)["views"][0]["sections"][2]["cards"]
    heater = flows[[card.get("heading") for card in flows].index("Water heater") + 1 :]
    assert [card.get("name") for card in heater[:3]] == ["Heating", "Tank", "Heated today"]
    assert heater[2]["entity"] == "sensor.sbms_simulator_diverted_energy"
    assert heater[2]["stat_type"] == "change"
    # Beside today's heat: the heater's power, then the surplus load.
    assert [(card["name"], card["entity"]) for card in heater[3]["cards"]] == [
        ("Heater power", "sensor.sbms_simulator_diversion_power"),
        ("EV charger", "sensor.sbms_simulator_surplus_load_ev_charger"),
    ]
