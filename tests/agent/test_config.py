"""Configuration loading and validation: every rule, with the key path it reports."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.config import (
    AgentConfig,
    ConfigError,
    OutputPinSettings,
    config_to_dict,
    default_config,
    load_config,
    parse_config,
    validate_control_settings,
)
from edge_agent.control.settings import (
    CellThresholds,
    ControlSettings,
    OutputSettings,
    OutputType,
    Wiring,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((REPO_ROOT / "examples").glob("config-*.yaml"))

FULL_YAML = """
agent_id: garage-box
battery: {chemistry: lfp, cells: 8, capacity_ah: 280}
i2c_bus: 1
cell_monitor: {chip: isl94203, address: 0x28}
battery_shunt: {chip: ina228, address: 0x40, rated_current_a: 250, rated_millivolts: 75,
                zero_offset_a: 0.0}
pv_shunt: {chip: ina228, address: 0x41, rated_current_a: 50, rated_millivolts: 50}
outputs:
  - {name: extio3, type: 2, driver: mcp23008, address: 0x20, pin: 0}
  - {name: extio4, type: 1, driver: mcp23008, address: 0x20, pin: 1}
  - {name: extio5, type: 0, driver: gpiod, chip: pinctrl-bcm2835, line: GPIO17, active_low: true}
  - {name: extio6, type: 5, driver: mcp23008, address: 0x20, pin: 3}
thresholds: {uvlo: 2.5, lvd: 2.8, lvd_reconnect: 3.1, hvd_reconnect: 3.4, eoc: 3.53, hvd: 3.6,
             ovlo: 3.75}
balancing: {min_cell: 3.2, max_cell: 3.65, min_delta: 0.01, max_delta: 0.5,
            min_charge_current: 0.3}
soc: {coulombic_efficiency: 0.99, initial_soc: 60, learn_offset: false}
soc_alarms: {low: 15, low_release: 20, high_release: 85, high: 92}
temperature: {charge_min: 2, charge_max: 42, internal_cutoff: 65, internal_release: 55}
dual_pv: {imax: 40}
max_soc: {enabled: true, max_soc: 85}
timing: {sample_interval_s: 1, stale_after_s: 5, state_save_interval_s: 1}
storage: {state_path: /var/lib/sbms-agent/state.db}
lockouts_latch: false
"""


def full_data() -> dict[str, Any]:
    data = yaml.safe_load(FULL_YAML)
    assert isinstance(data, dict)
    return data


def problems_of(data: dict[str, Any]) -> tuple[str, ...]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.problems


def with_section(section: str, **values: Any) -> dict[str, Any]:
    data = full_data()
    data[section] = {**data.get(section, {}), **values}
    return data


# --- whole configurations ------------------------------------------------------------------


def test_empty_mapping_gives_the_default_config() -> None:
    assert parse_config({}) == default_config()


def test_default_config_is_a_valid_8s_box() -> None:
    config = default_config()
    assert config.control.cell_count == 8
    assert config.agent_id == "sbms"
    assert config.hardware.cell_monitor.address == 0x28
    assert [pin.pin for pin in config.hardware.outputs] == [0, 1, 2, 3]
    assert [pin.name for pin in config.hardware.outputs] == [
        output.name for output in config.control.outputs
    ]
    assert validate_control_settings(config.control) == []


def test_full_yaml_is_read_into_every_section() -> None:
    config = parse_config(full_data())
    control = config.control
    assert config.agent_id == "garage-box"
    assert control.cell_count == 8
    assert control.soc.capacity_ah == 280.0
    assert control.soc.coulombic_efficiency == 0.99
    assert control.soc.learn_offset is False
    assert control.cells.eoc == 3.53
    assert control.soc_alarms.high == 92.0
    assert control.temperature.internal_cutoff == 65.0
    assert control.dual_pv.imax == 40.0
    assert control.max_soc.enabled is True
    assert control.stale_after_s == 5.0
    assert [output.type for output in control.outputs] == [
        OutputType.LVD,
        OutputType.HVD,
        OutputType.UNUSED,
        OutputType.FAULT,
    ]
    hardware = config.hardware
    assert hardware.pv_shunt is not None
    assert hardware.pv_shunt.address == 0x41
    assert hardware.pv_shunt.rated_millivolts == 50.0
    assert hardware.outputs[2] == OutputPinSettings(
        name="extio5", driver="gpiod", chip="pinctrl-bcm2835", line="GPIO17", active_low=True
    )
    assert hardware.outputs[1].address == 0x20
    assert hardware.outputs[1].pin == 1
    assert config.storage.state_path == Path("/var/lib/sbms-agent/state.db")


@pytest.mark.parametrize("config", [default_config(), parse_config(full_data())], ids=str)
def test_config_to_dict_round_trips_through_json_and_yaml(config: AgentConfig) -> None:
    data = config_to_dict(config)
    assert parse_config(json.loads(json.dumps(data))) == config
    assert parse_config(yaml.safe_load(yaml.safe_dump(data))) == config


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda path: path.name)
def test_examples_load_and_round_trip(path: Path) -> None:
    config = load_config(path)
    assert parse_config(config_to_dict(config)) == config


def test_examples_exist() -> None:
    assert {path.name for path in EXAMPLES} >= {"config-8s-lfp.yaml", "config-4s-lfp.yaml"}


def test_4s_example_uses_dual_pv_on_gpio() -> None:
    config = load_config(REPO_ROOT / "examples" / "config-4s-lfp.yaml")
    assert config.control.cell_count == 4
    assert OutputType.DUAL_PV in [output.type for output in config.control.outputs]
    assert {pin.driver for pin in config.hardware.outputs} == {"gpiod"}


def test_hex_address_written_as_a_string_is_accepted() -> None:
    data = full_data()
    data["cell_monitor"] = {"chip": "isl94202", "address": "0x29"}
    assert parse_config(data).hardware.cell_monitor.address == 0x29


def test_null_pv_shunt_means_none_fitted() -> None:
    data = full_data()
    data["pv_shunt"] = None
    assert parse_config(data).hardware.pv_shunt is None


def test_empty_output_list_is_allowed() -> None:
    data = full_data()
    data["outputs"] = []
    config = parse_config(data)
    assert config.control.outputs == ()
    assert config.hardware.outputs == ()


# --- shape and type errors -----------------------------------------------------------------


def test_unknown_keys_are_named_with_their_path_and_the_key_meant() -> None:
    data = with_section("thresholds", hvdd=3.6)
    data["agentid"] = "typo"
    data["outputs"][1]["pinn"] = 2
    data["mqtt"] = {"host": "broker", "prot": 5}
    data["battery"]["zzz"] = 1
    assert set(problems_of(data)) == {
        "thresholds.hvdd: unknown key (did you mean 'hvd'?)",
        "agentid: unknown key (did you mean 'agent_id'?)",
        "outputs[1].pinn: unknown key (did you mean 'pin'?)",
        "mqtt.prot: unknown key (did you mean 'port'?)",
        "battery.zzz: unknown key",  # nothing close: no guess
    }


def test_unknown_key_messages_are_ours_not_the_validation_librarys() -> None:
    """The wording is the agent's own at every depth (voluptuous words extra keys differently
    from one release to the next; a message users and tests rely on must not follow it)."""
    data = with_section("temperature", charge_mx=40)
    data["outputs"][0]["Name"] = "x"
    data["publish"] = {"interval": 5}
    problems = problems_of(data)
    assert {problem.split(": ", 1)[1].split(" (")[0] for problem in problems} == {"unknown key"}
    assert "outputs[0].Name: unknown key (did you mean 'name'?)" in problems
    assert not any("extra keys" in problem or "valid option" in problem for problem in problems)


def test_capacity_belongs_under_battery_not_soc() -> None:
    # no guess: learn_capacity is not what was meant
    assert problems_of(with_section("soc", capacity_ah=100)) == ("soc.capacity_ah: unknown key",)


def test_problems_in_several_outputs_are_all_reported() -> None:
    data = full_data()
    data["outputs"][0]["type"] = 9
    data["outputs"][2].pop("line")
    data["outputs"][3]["driver"] = "spi"
    data["outputs"].append("extio7")
    assert problems_of(data) == (
        "outputs[0].type: must be an output type 0 to 7 (got 9)",
        "outputs[2].line: required key is missing",
        "outputs[3].driver: must be one of mcp23008, gpiod (got 'spi')",
        "outputs[4]: must be a mapping (got str)",
    )


def test_driver_specific_keys() -> None:
    data = full_data()
    data["outputs"][0] = {"name": "extio3", "type": 2, "driver": "gpiod", "chip": "c", "pin": 1}
    assert set(problems_of(data)) == {
        "outputs[0].pin: unknown key",
        "outputs[0].line: required key is missing",
    }


@pytest.mark.parametrize(
    ("section", "key", "value", "message"),
    [
        ("battery", "cells", True, "battery.cells: must be a whole number (got True)"),
        ("battery", "cells", 8.5, "battery.cells: must be a whole number (got 8.5)"),
        ("battery", "chemistry", "nmc", "battery.chemistry: must be one of lfp (got 'nmc')"),
        ("thresholds", "hvd", "3.6", "thresholds.hvd: must be a number (got '3.6')"),
        ("thresholds", "hvd", float("nan"), "thresholds.hvd: must be a finite number (got nan)"),
        ("max_soc", "enabled", "yes please", "max_soc.enabled: must be true or false"),
        ("cell_monitor", "chip", "bq76940", "cell_monitor.chip: must be one of isl94203, isl94202"),
        ("battery_shunt", "chip", "ina219", "battery_shunt.chip: must be one of ina228, ina226"),
        ("cell_monitor", "address", "forty", "cell_monitor.address: must be an I2C address"),
    ],
)
def test_type_errors(section: str, key: str, value: Any, message: str) -> None:
    (problem,) = problems_of(with_section(section, **{key: value}))
    assert problem.startswith(message)


def test_agent_id_must_be_topic_safe() -> None:
    data = full_data()
    data["agent_id"] = "garage/box"
    (problem,) = problems_of(data)
    assert problem.startswith("agent_id: must be 1 to 64 letters, digits")


def test_section_that_is_not_a_mapping() -> None:
    data = full_data()
    data["timing"] = 5
    assert problems_of(data) == ("timing: must be a mapping",)


def test_top_level_must_be_a_mapping() -> None:
    with pytest.raises(ConfigError, match="must be a mapping"):
        parse_config([1, 2])  # type: ignore[arg-type]


# --- rules across values -------------------------------------------------------------------


def test_cell_count_range() -> None:
    assert problems_of(with_section("battery", cells=9)) == (
        "battery.cells: must be between 3 and 8 (got 9)",
    )
    assert problems_of(with_section("battery", cells=2)) == (
        "battery.cells: must be between 3 and 8 (got 2)",
    )
    assert parse_config(with_section("battery", cells=3)).control.cell_count == 3


@pytest.mark.parametrize(
    ("lower", "upper", "expected"),
    [
        ("uvlo", "lvd", "must be at least 0.1 V below thresholds.lvd, so UVLO stays a second"),
        ("lvd", "lvd_reconnect", "must be at least 0.1 V below thresholds.lvd_reconnect, LVD"),
        ("lvd_reconnect", "hvd_reconnect", "must be below thresholds.hvd_reconnect (got"),
        ("hvd_reconnect", "hvd", "must be at least 0.1 V below thresholds.hvd, HVD hysteresis"),
        ("hvd", "ovlo", "must be at least 0.05 V below thresholds.ovlo, so OVLO stays a second"),
    ],
)
def test_threshold_order(lower: str, upper: str, expected: str) -> None:
    upper_value = full_data()["thresholds"][upper]
    problems = problems_of(with_section("thresholds", **{lower: upper_value}))
    assert f"thresholds.{lower}: {expected}" in "\n".join(problems)


def test_eoc_between_hvd_reconnect_and_hvd() -> None:
    assert problems_of(with_section("thresholds", eoc=3.65)) == (
        "thresholds.eoc: must not exceed thresholds.hvd (got 3.65 > 3.6)",
    )
    assert problems_of(with_section("thresholds", eoc=3.4)) == (
        "thresholds.hvd_reconnect: must be below thresholds.eoc (got 3.4 >= 3.4)",
    )
    assert parse_config(with_section("thresholds", eoc=3.6)).control.cells.eoc == 3.6


def test_threshold_voltage_range() -> None:
    problems = problems_of(with_section("thresholds", ovlo=4.5))
    assert problems == (
        "thresholds.ovlo: must be between 3.6 and 3.8 V, the LFP safety envelope (got 4.5)",
    )
    problems = problems_of(with_section("thresholds", uvlo=1.5))
    assert problems == (
        "thresholds.uvlo: must be between 2.5 and 3 V, the LFP safety envelope (got 1.5)",
    )


@pytest.mark.parametrize(
    ("section", "values", "expected"),
    [
        ("balancing", {"min_cell": 3.7}, "balancing.min_cell: must be below balancing.max_cell"),
        ("balancing", {"min_delta": 0.6}, "balancing.min_delta: must be below balancing.max_delta"),
        ("balancing", {"max_cell": 4.5}, "balancing.max_cell: must be between 3.3 and 3.65 V"),
        ("soc_alarms", {"low": 30}, "soc_alarms.low: must be at least 1 % below soc_alarms.low"),
        ("soc_alarms", {"high": 80}, "soc_alarms.high_release: must be at least 1 % below"),
        (
            "soc_alarms",
            {"low_release": 88},
            "soc_alarms.low_release: must be below soc_alarms.high_release",
        ),
        ("soc_alarms", {"high": 120}, "soc_alarms.high: must be between 0 and 100 %"),
        (
            "temperature",
            {"charge_min": 20, "charge_max": 25},
            "temperature.charge_min: must be at least 10 C below temperature.charge_max",
        ),
        (
            "temperature",
            {"internal_release": 70},
            "temperature.internal_release: must be at least 5 C below temperature.internal_cut",
        ),
        ("dual_pv", {"imax": 0}, "dual_pv.imax: must be between 2.8 and 280 A, the LFP safety"),
        (
            "dual_pv",
            {"up_to_l2_fraction": 0.7},
            "dual_pv.up_to_l2_fraction: must be below dual_pv.up_to_l3_fraction",
        ),
        ("dual_pv", {"up_to_l3_fraction": 1.0}, "dual_pv.up_to_l3_fraction: must be between"),
        ("dual_pv", {"down_fraction": 0.9}, "dual_pv.down_fraction: must be between 1.01 and 2"),
        ("battery", {"capacity_ah": 0}, "battery.capacity_ah: must be greater than 0"),
        ("soc", {"initial_soc": 101}, "soc.initial_soc: must be between 0 and 100 %"),
        ("battery_shunt", {"rated_current_a": 0}, "battery_shunt.rated_current_a: must be greater"),
        ("pv_shunt", {"rated_millivolts": -5}, "pv_shunt.rated_millivolts: must be greater than 0"),
        ("timing", {"sample_interval_s": 0}, "timing.sample_interval_s: must be between 0.05"),
        (
            "timing",
            {"sample_interval_s": 3},
            "timing.stale_after_s: must be at least 2 x timing.sample_interval_s (got 5 < 6)",
        ),
    ],
)
def test_value_rules(section: str, values: dict[str, Any], expected: str) -> None:
    problems = problems_of(with_section(section, **values))
    assert any(problem.startswith(expected) for problem in problems), problems


@pytest.mark.parametrize(
    ("section", "address", "expected"),
    [
        (
            "cell_monitor",
            0x30,
            "cell_monitor.address: must be 0x28 or 0x29 for isl94203 (got 0x30)",
        ),
        (
            "battery_shunt",
            0x50,
            "battery_shunt.address: must be between 0x40 and 0x4F for ina228 (got 0x50)",
        ),
        ("pv_shunt", 0x40, "pv_shunt.address: must differ from battery_shunt.address (both 0x40)"),
    ],
)
def test_chip_addresses(section: str, address: int, expected: str) -> None:
    assert problems_of(with_section(section, address=address)) == (expected,)


def test_output_expander_address_and_pin_ranges() -> None:
    data = full_data()
    data["outputs"][0]["address"] = 0x28
    data["outputs"][1]["pin"] = 8
    assert problems_of(data) == (
        "outputs[0].address: must be between 0x20 and 0x27 for mcp23008 (got 0x28)",
        "outputs[1].pin: must be between 0 and 7 (got 8)",
    )


def test_one_output_per_expander_pin() -> None:
    data = full_data()
    data["outputs"][3]["pin"] = 1
    assert problems_of(data) == ("outputs[3]: mcp23008 0x20 pin 1 is already used by outputs[1]",)


def test_same_pin_number_on_another_expander_is_fine() -> None:
    data = full_data()
    data["outputs"][3].update(address=0x21, pin=1)
    assert parse_config(data).hardware.outputs[3].address == 0x21


def test_one_output_per_gpio_line() -> None:
    data = full_data()
    data["outputs"][0] = {
        "name": "extio3",
        "type": 2,
        "driver": "gpiod",
        "chip": "pinctrl-bcm2835",
        "line": "GPIO17",
    }
    assert problems_of(data) == (
        "outputs[2]: gpiod pinctrl-bcm2835 line GPIO17 is already used by outputs[0]",
    )


def test_output_names_are_unique() -> None:
    data = full_data()
    data["outputs"][2]["name"] = "extio3"
    assert problems_of(data) == (
        "outputs[2].name: duplicate output name 'extio3' (also outputs[0])",
    )


def test_dual_pv_output_needs_a_charge_output() -> None:
    data = full_data()
    data["outputs"][1]["type"] = 6  # the only type 1 output becomes type 6
    assert problems_of(data) == (
        "outputs[1].type: type 6 (dual PV) needs at least one type 1 (HVD) output",
    )
    data["outputs"][2]["type"] = 1
    assert parse_config(data).control.outputs[1].type is OutputType.DUAL_PV


def test_every_problem_is_reported_at_once() -> None:
    data = full_data()
    data["battery"]["cells"] = 12
    data["thresholds"]["lvd"] = 3.2
    data["pv_shunt"]["address"] = 0x40
    data["timing"]["stale_after_s"] = 1
    problems = problems_of(data)
    assert len(problems) == 4
    assert str(ConfigError(problems)).splitlines() == list(problems)


def test_validate_control_settings_is_usable_on_its_own() -> None:
    assert validate_control_settings(ControlSettings()) == []
    broken = ControlSettings(
        cell_count=1,
        cells=CellThresholds(hvd=3.3),
        outputs=(
            OutputSettings("a", OutputType.DUAL_PV, Wiring.CHARGE),
            OutputSettings("a", OutputType.LVD, Wiring.LOAD),
        ),
        stale_after_s=0,
    )
    problems = validate_control_settings(broken)
    assert "battery.cells: must be between 3 and 8 (got 1)" in problems
    assert (
        "thresholds.hvd: must be between 3.4 and 3.65 V, the LFP safety envelope (got 3.3)"
        in problems
    )
    assert (
        "thresholds.hvd_reconnect: must be at least 0.1 V below thresholds.hvd, HVD hysteresis "
        "(got 3.4 and 3.3)" in problems
    )
    assert "thresholds.eoc: must not exceed thresholds.hvd (got 3.53 > 3.3)" in problems
    assert "outputs[1].name: duplicate output name 'a' (also outputs[0])" in problems
    assert "outputs[0].type: type 6 (dual PV) needs at least one type 1 (HVD) output" in problems
    assert (
        "timing.stale_after_s: must be between 0.2 and 60 s, the LFP safety envelope (got 0)"
        in problems
    )


# --- files ---------------------------------------------------------------------------------


def test_load_config_reads_a_file(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text(FULL_YAML, encoding="utf-8")
    assert load_config(path) == parse_config(full_data())


def test_missing_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError, match=r"nope\.yaml: file not found"):
        load_config(path)


def test_a_directory_is_not_a_config_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read the file"):
        load_config(tmp_path)


def test_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("agent_id: box\nbattery: {cells: 8\ni2c_bus: 1\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: invalid YAML at line ")
    assert "line 3" in message or "line 4" in message


def test_duplicate_yaml_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text("battery: {cells: 8}\ni2c_bus: 1\nbattery: {cells: 4}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"dup\.yaml: invalid YAML at line 3.*duplicate key"):
        load_config(path)


def test_yaml_merge_keys_may_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "merge.yaml"
    path.write_text(
        "battery_shunt: &shunt {chip: ina228, address: 0x40, rated_current_a: 250}\n"
        "pv_shunt: {<<: *shunt, address: 0x41}\n",
        encoding="utf-8",
    )
    config = load_config(path)
    assert config.hardware.pv_shunt is not None
    assert config.hardware.pv_shunt.address == 0x41
    assert config.hardware.pv_shunt.rated_current_a == 250.0


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "the file is empty"),
        ("- a\n- b\n", "the top level must be a mapping of settings (got list)"),
        ("just text\n", "the top level must be a mapping of settings (got str)"),
    ],
)
def test_file_that_is_not_a_mapping(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "odd.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match=re.escape(message)) as caught:
        load_config(path)
    assert str(caught.value).startswith(str(path))


def test_validation_problems_are_prefixed_with_the_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("battery: {cells: 9}\n", encoding="utf-8")
    with pytest.raises(ConfigError) as caught:
        load_config(path)
    assert str(caught.value) == f"{path}: battery.cells: must be between 3 and 8 (got 9)"
    assert caught.value.problems == ("battery.cells: must be between 3 and 8 (got 9)",)
    assert caught.value.source == path


def test_relative_state_path_is_taken_from_the_config_directory(tmp_path: Path) -> None:
    path = tmp_path / "agent.yaml"
    path.write_text("storage: {state_path: data/state.db}\n", encoding="utf-8")
    assert load_config(path).storage.state_path == tmp_path / "data" / "state.db"


# --- robustness ----------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3)
    ),
    max_leaves=10,
)
sections = st.sampled_from(sorted(config_to_dict(default_config())))


@settings(max_examples=300, deadline=None)
@given(section=sections, key=st.text(max_size=20), value=json_values)
def test_any_input_is_either_accepted_or_a_config_error(section: str, key: str, value: Any) -> None:
    data = config_to_dict(default_config())
    if isinstance(data[section], dict) and key:
        data[section][key] = value
    else:
        data[section] = value
    problems: tuple[str, ...] = ()
    try:
        config = parse_config(data)
    except ConfigError as exc:
        problems = exc.problems
        assert problems
    else:
        assert parse_config(config_to_dict(config)) == config
    assert all(": " in problem for problem in problems)


# --- mqtt: native Home Assistant discovery ----------------------------------------------------


def test_mqtt_ha_discovery_keys_are_read_and_round_trip() -> None:
    data = full_data()
    data["mqtt"] = {"host": "broker", "ha_discovery": True, "ha_discovery_prefix": "ha/site1"}
    config = parse_config(data)
    assert config.mqtt is not None
    assert config.mqtt.ha_discovery is True
    assert config.mqtt.ha_discovery_prefix == "ha/site1"
    assert config_to_dict(config)["mqtt"]["ha_discovery"] is True
    assert parse_config(yaml.safe_load(yaml.safe_dump(config_to_dict(config)))) == config

    default = parse_config({**full_data(), "mqtt": {"host": "broker"}})
    assert default.mqtt is not None
    assert default.mqtt.ha_discovery is False
    assert default.mqtt.ha_discovery_prefix == "homeassistant"


@pytest.mark.parametrize("prefix", ["home/#", "/homeassistant", "homeassistant/", "a/+"])
def test_mqtt_ha_discovery_prefix_must_be_a_topic_base(prefix: str) -> None:
    data = {**full_data(), "mqtt": {"host": "broker", "ha_discovery_prefix": prefix}}
    assert any(problem.startswith("mqtt.ha_discovery_prefix") for problem in problems_of(data))


def test_mqtt_ha_discovery_must_be_a_boolean() -> None:
    data = {**full_data(), "mqtt": {"host": "broker", "ha_discovery": "yes please"}}
    assert any(problem.startswith("mqtt.ha_discovery") for problem in problems_of(data))


SINOPOLY_DATASHEET = [[0, 2.8], [10, 3.184], [25, 3.235], [40, 3.271], [65, 3.294], [75, 3.307],
                      [89, 3.324], [98, 3.385], [100, 3.4]]  # fmt: skip


def test_an_ocv_curve_from_the_datasheet_goes_under_battery_and_round_trips() -> None:
    data = full_data()
    data["battery"]["ocv_curve"] = SINOPOLY_DATASHEET
    config = parse_config(data)
    assert config.control.soc.ocv_curve == tuple((float(s), v) for s, v in SINOPOLY_DATASHEET)
    assert parse_config(config_to_dict(config)) == config
    assert "ocv_curve" not in config_to_dict(parse_config(full_data()))["battery"]


@pytest.mark.parametrize(
    ("curve", "problem"),
    [
        ("3.2 V", "battery.ocv_curve: must be a list of [soc %, volts] pairs (got '3.2 V')"),
        ([[0, 2.8], [50]], "battery.ocv_curve[1]: must be a [soc %, volts] pair (got [50])"),
        ([[0, 2.8], [50, "x"]], "battery.ocv_curve[1]: must be a number (got 'x')"),
        ([[0, 2.8], [50, 3.3], [100, 3.4]], "battery.ocv_curve: needs at least 4 [soc, volts]"),
        (
            [[5, 2.8], [50, 3.3], [90, 3.35], [100, 3.4]],
            "battery.ocv_curve: must run from SoC 0 to 100 %, runs from 5 to 100",
        ),
        (
            [[0, 2.8], [50, 3.3], [40, 3.35], [100, 3.4]],
            "battery.ocv_curve: SoC must increase: 40 % follows 50 %",
        ),
        (
            [[0, 2.8], [50, 3.3], [90, 3.29], [100, 3.4]],
            "battery.ocv_curve: voltage must increase with SoC: 3.29 V at 90 % follows 3.3 V",
        ),
        (
            [[0, 2.8], [50, 3.3], [90, 3.35], [100, 4.2]],
            "battery.ocv_curve: voltages must lie within 2..3.65 V for LiFePO4, got 2.8..4.2 V",
        ),
    ],
)
def test_a_bad_ocv_curve_is_named(curve: Any, problem: str) -> None:
    data = full_data()
    data["battery"]["ocv_curve"] = curve
    problems = problems_of(data)
    assert len(problems) == 1
    assert problems[0].startswith(problem), problems
