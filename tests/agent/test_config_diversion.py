"""The configuration file's PV diversion keys (issue 19): type 7 outputs on a heater wiring,
`diverts`, the `diversion` section and `heat_shunt`; every bad value named by its key path."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge_agent.config import ConfigError, ShuntSettings, config_to_dict, parse_config
from edge_agent.control.settings import ArraySettings, DiversionSettings, OutputType, Wiring

DIVERSION_YAML = """
battery: {cells: 8, capacity_ah: 100}
battery_shunt: {chip: ina228, address: 0x40, rated_current_a: 250, rated_millivolts: 75}
pv_shunt: {chip: ina228, address: 0x41, rated_current_a: 50, rated_millivolts: 50}
heat_shunt: {chip: ina226, address: 0x44, rated_current_a: 20, rated_millivolts: 50}
outputs:
  - {name: extio3, type: 2, wiring: load, driver: mcp23008, address: 0x20, pin: 0}
  - {name: extio4, type: 1, wiring: charge, driver: mcp23008, address: 0x20, pin: 1}
  - {name: extio5, type: 6, wiring: charge, driver: mcp23008, address: 0x20, pin: 2}
  - {name: extio6, type: 5, wiring: fault, driver: mcp23008, address: 0x20, pin: 3}
  - {name: heat1, type: 7, wiring: heater, diverts: extio4, driver: mcp23008, address: 0x20, pin: 5}
  - {name: heat2, type: 7, wiring: heater, diverts: extio5, driver: mcp23008, address: 0x20, pin: 6}
diversion:
  dead_time_s: 3
  heater_warms_battery: false
  latitude_deg: 45.5
  longitude_deg: 7.6
  tilt_deg: 30
  azimuth_deg: 170
  tank_temperature: external2
  arrays:
    - {output: extio4, rated_current_a: 18, open_circuit_v: 46, heater_ohm: 1.6}
    - {output: extio5, rated_current_a: 9}
"""


def data() -> dict[str, Any]:
    loaded = yaml.safe_load(DIVERSION_YAML)
    assert isinstance(loaded, dict)
    return loaded


def problems_of(value: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(value)
    return caught.value.problems


def test_every_diversion_key_is_read() -> None:
    config = parse_config(data())
    outputs = {output.name: output for output in config.control.outputs}
    assert outputs["heat1"].type is OutputType.DIVERSION
    assert outputs["heat1"].wiring is Wiring.HEATER
    assert (outputs["heat1"].diverts, outputs["heat2"].diverts) == ("extio4", "extio5")
    assert outputs["extio4"].diverts is None
    assert config.control.diversion == DiversionSettings(
        dead_time_s=3.0,
        heater_warms_battery=False,
        arrays=(
            ArraySettings("extio4", 18.0, 46.0, 1.6),
            ArraySettings("extio5", 9.0, None, None),
        ),
        latitude_deg=45.5,
        longitude_deg=7.6,
        tilt_deg=30.0,
        azimuth_deg=170.0,
        tank_temperature="external2",
    )
    assert config.hardware.heat_shunt == ShuntSettings("ina226", 0x44, 20.0, 50.0)
    # The pins stay hardware: `diverts` is the control core's, like the type.
    assert {pin.name for pin in config.hardware.outputs} == set(outputs)
    assert config.warnings == ()


def test_defaults_without_a_diversion_section() -> None:
    config = parse_config({})
    assert config.control.diversion == DiversionSettings()
    assert config.control.diversion.heater_warms_battery  # the safe default
    assert config.control.diversion.tank_temperature is None  # no tank sensor
    assert config.hardware.heat_shunt is None
    assert "heat_shunt" not in config_to_dict(config)


def test_round_trip_through_json_and_yaml() -> None:
    config = parse_config(data())
    written = config_to_dict(config)
    assert written["outputs"][4]["diverts"] == "extio4"
    assert written["diversion"]["tank_temperature"] == "external2"
    assert "diverts" not in written["outputs"][1]
    assert written["diversion"]["arrays"][1] == {
        "output": "extio5",
        "rated_current_a": 9.0,
        "open_circuit_v": None,
        "heater_ohm": None,
    }
    assert parse_config(json.loads(json.dumps(written))) == config
    assert parse_config(yaml.safe_load(yaml.safe_dump(written))) == config


def _output(value: dict[str, Any], name: str, **changes: Any) -> dict[str, Any]:
    changed = copy.deepcopy(value)
    for item in changed["outputs"]:
        if item["name"] == name:
            item.update(changes)
    return changed


@pytest.mark.parametrize(
    ("name", "changes", "expected"),
    [
        (
            "heat1",
            {"diverts": "extio3"},
            "outputs[4].diverts: must name a charge-wired output (got 'extio3')",
        ),
        (
            "heat1",
            {"diverts": "extio9"},
            "outputs[4].diverts: must name a charge-wired output (got 'extio9')",
        ),
        (
            "extio3",
            {"diverts": "extio4"},
            "outputs[0].diverts: only a diversion output (type 7, heater) names its array",
        ),
        ("heat1", {"diverts": 4}, "outputs[4].diverts: must be 1 to 64 letters, digits"),
        (
            "heat1",
            {"wiring": "signal"},
            "outputs[4].type: an output wired to signal may be type 0, 1, 2, 3, 4 or 5 (got 7)",
        ),
        (
            "heat1",
            {"wiring": "charge"},
            "outputs[4].type: an output wired to charge may be type 0, 1, 3 or 6 (got 7)",
        ),
        (
            "heat1",
            {"type": 1},
            "outputs[4].type: an output wired to heater may be type 0 or 7 (got 1)",
        ),
        ("heat1", {"type": 8}, "outputs[4].type: must be an output type 0 to 7 (got 8)"),
        ("heat1", {"wiring": "boiler"}, "outputs[4].wiring: must be one of charge, load"),
    ],
)
def test_bad_diversion_outputs(name: str, changes: dict[str, Any], expected: str) -> None:
    problems = problems_of(_output(data(), name, **changes))
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_heater_without_any_charge_output_is_refused() -> None:
    value = data()
    value["outputs"] = [item for item in value["outputs"] if item["name"] in ("extio3", "heat1")]
    value["outputs"][1].pop("diverts")
    value.pop("diversion")
    value.pop("heat_shunt")
    assert problems_of(value) == (
        "outputs[1].diverts: a diversion output needs a charge-wired output",
    )


def test_a_type_7_output_without_wiring_is_taken_as_a_heater() -> None:
    value = _output(data(), "heat1", wiring=None)
    next(item for item in value["outputs"] if item["name"] == "heat1").pop("wiring")
    config = parse_config(value)
    assert next(o for o in config.control.outputs if o.name == "heat1").wiring is Wiring.HEATER
    assert any("taken as 'heater'" in note for note in config.notes)


@pytest.mark.parametrize(
    ("section", "expected"),
    [
        ({"dead_time_s": "2 s"}, "diversion.dead_time_s: must be a number (got '2 s')"),
        ({"dead_time_s": True}, "diversion.dead_time_s: must be a number (got True)"),
        ({"dead_time_s": -1}, "diversion.dead_time_s: must be between 0 and 60 s"),
        ({"dead_time_s": 61}, "diversion.dead_time_s: must be between 0 and 60 s"),
        (
            {"heater_warms_battery": "no"},
            "diversion.heater_warms_battery: must be true or false (got 'no')",
        ),
        *(
            (
                {"tank_temperature": value},
                "diversion.tank_temperature: must be a temperature input that can read the "
                "heater tank: external2 (the cell monitor's xT2), or null for no tank sensor "
                f"(got {value!r})",
            )
            # A misspelt input, the die and xT1 (the battery's), a pin number.
            for value in ("xt2", "internal", "battery", 2)
        ),
        ({"latitude_deg": 91}, "diversion.latitude_deg: must be between -90 and 90 degrees"),
        ({"longitude_deg": -181}, "diversion.longitude_deg: must be between -180 and 180"),
        ({"tilt_deg": 95}, "diversion.tilt_deg: must be between 0 and 90 degrees"),
        ({"azimuth_deg": 400}, "diversion.azimuth_deg: must be between 0 and 360 degrees"),
        ({"azimuth": 180}, "diversion.azimuth: unknown key (did you mean 'azimuth_deg'?)"),
        ({"arrays": {"output": "extio4"}}, "diversion.arrays: must be a list of arrays"),
        ({"arrays": [{"rated_current_a": 18}]}, "diversion.arrays[0].output: required key"),
        (
            {"arrays": [{"output": "extio3"}]},
            "diversion.arrays[0].output: must name a charge-wired output",
        ),
        (
            {"arrays": [{"output": "extio4"}, {"output": "extio4"}]},
            "diversion.arrays[1].output: 'extio4' is already described by diversion.arrays[0]",
        ),
        (
            {"arrays": [{"output": "extio4", "heater_ohm": 0}]},
            "diversion.arrays[0].heater_ohm: must be greater than 0 (got 0)",
        ),
        (
            {"arrays": [{"output": "extio4", "rated_current_a": "18 A"}]},
            "diversion.arrays[0].rated_current_a: must be a number (got '18 A')",
        ),
        (
            {"arrays": [{"output": "extio4", "voc": 46}]},
            "diversion.arrays[0].voc: unknown key",
        ),
    ],
)
def test_bad_diversion_settings(section: dict[str, Any], expected: str) -> None:
    value = data()
    value["diversion"] = {**value["diversion"], **section}
    problems = problems_of(value)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_no_tank_sensor_is_the_same_as_none_configured() -> None:
    value = data()
    value["diversion"]["tank_temperature"] = None
    assert parse_config(value).control.diversion.tank_temperature is None


def test_a_stock_sbms_has_no_input_to_read_a_tank_with() -> None:
    source = {"type": "sbms0", "serial": {"port": "/dev/ttyUSB0"}}
    assert parse_config({"source": source}).control.diversion.tank_temperature is None
    problems = problems_of({"source": source, "diversion": {"tank_temperature": "external2"}})
    assert problems == (
        "diversion.tank_temperature: not with source type sbms0 (a stock SBMS has no xT2 "
        "input, external2, to read a tank with)",
    )


def test_a_diversion_section_that_is_not_a_mapping() -> None:
    value = data()
    value["diversion"] = [1, 2]
    assert problems_of(value) == ("diversion: must be a mapping",)


@pytest.mark.parametrize(
    ("shunt", "expected"),
    [
        ({"address": 0x41}, "heat_shunt.address: must differ from pv_shunt.address (both 0x41)"),
        ({"address": 0x50}, "heat_shunt.address: must be between 0x40 and 0x4F"),
        ({"chip": "ina219"}, "heat_shunt.chip: must be one of ina228, ina226"),
        ({"rated_current_a": 0}, "heat_shunt.rated_current_a: must be greater than 0"),
    ],
)
def test_bad_heat_shunts(shunt: dict[str, Any], expected: str) -> None:
    value = data()
    value["heat_shunt"] = {**value["heat_shunt"], **shunt}
    problems = problems_of(value)
    assert any(problem.startswith(expected) for problem in problems), problems


def test_a_heat_shunt_needs_something_to_measure() -> None:
    value = data()
    value["outputs"] = value["outputs"][:4]
    value.pop("diversion")
    assert problems_of(value) == (
        "heat_shunt: measures the heat paths of a diversion: needs a diversion output (type 7, "
        "wiring heater) or the array it heats from under diversion.arrays",
    )
    # The DEXT16 way (the heat path inverted in hardware): the array named, the heat measured.
    value["diversion"] = {"arrays": [{"output": "extio4"}]}
    assert parse_config(value).hardware.heat_shunt is not None


def test_a_heat_shunt_without_its_rating_is_a_warning() -> None:
    value = data()
    value["heat_shunt"] = {"chip": "ina228", "address": 0x44}
    assert any(
        warning.startswith("heat_shunt.rated_current_a: not given")
        for warning in parse_config(value).warnings
    )


def test_the_examples_in_docs_diversion_are_valid() -> None:
    """docs/diversion.md's outputs and `diversion:` examples make one valid file."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "diversion.md").read_text("utf-8")
    merged: dict[str, Any] = {}
    for block in re.findall(r"```yaml\n(.*?)```", text, flags=re.DOTALL):
        merged.update(yaml.safe_load(block))
    assert {"outputs", "diversion", "heat_shunt"} <= set(merged)
    config = parse_config(merged)
    assert [o.name for o in config.control.outputs if o.type is OutputType.DIVERSION] == [
        "heat1",
        "heat2",
    ]
    assert config.control.diversion.arrays[0].heater_ohm == 1.6
