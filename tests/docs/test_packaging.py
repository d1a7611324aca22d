"""The packaging files the install guide relies on, checked without the tools that use them.

No Docker engine, Supervisor or GitHub runner exists on the test machines, so these tests check
what can be checked here: the systemd unit with systemd-analyze, the Dockerfiles' paths, user
and entrypoint, the add-on's options against the agent's real configuration loader, the
workflows' actions, the licence and the examples the wiring guide documents.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tomllib
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from edge_agent import __version__
from edge_agent.config import load_config, parse_config
from edge_agent.drivers.ina2xx import Ina226, Ina228
from edge_agent.mqtt.payloads import announce_payload

ROOT = Path(__file__).resolve().parents[2]
UNIT = ROOT / "packaging" / "systemd" / "sbms-agent.service"
DOCKERFILE = ROOT / "packaging" / "docker" / "Dockerfile"
ADDON = ROOT / "addon" / "sbms_agent"
INSTALLED_AGENT = "/opt/sbms-agent/bin/sbms-agent"


def _pyproject() -> dict[str, Any]:
    return tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))


def _yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# systemd unit
# ---------------------------------------------------------------------------------------------


def _unit_entries() -> list[tuple[str, str, str]]:
    """(section, key, value) in file order; keys may repeat (DeviceAllow=)."""
    entries: list[tuple[str, str, str]] = []
    section = ""
    for raw_line in UNIT.read_text(encoding="utf-8").splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#"):
            continue
        if line.startswith("["):
            section = line.strip("[]")
            continue
        key, _, value = line.partition("=")
        entries.append((section, key, value))
    return entries


def _unit_values(key: str) -> list[str]:
    return [value for section, name, value in _unit_entries() if name == key]


def test_unit_runs_unprivileged_with_the_device_groups() -> None:
    assert _unit_values("User") == ["sbms"]
    assert set(_unit_values("SupplementaryGroups")[0].split()) == {"i2c", "gpio", "dialout"}
    assert _unit_values("Restart") == ["on-failure"]
    assert _unit_values("RestartPreventExitStatus") == ["2"]  # invalid configuration


def test_unit_hardening_keeps_i2c_gpio_and_serial_usable() -> None:
    for key, value in {
        "NoNewPrivileges": "yes",
        "ProtectSystem": "strict",
        "ProtectHome": "yes",
        "PrivateTmp": "yes",
        "DevicePolicy": "closed",
        "StateDirectory": "sbms-agent",
    }.items():
        assert _unit_values(key) == [value], key
    allowed = {value.split()[0] for value in _unit_values("DeviceAllow")}
    assert {"char-i2c", "char-gpiochip", "char-ttyUSB", "char-ttyACM"} <= allowed
    # Each of these would hide or deny the character devices the agent opens.
    assert not _unit_values("PrivateDevices")
    assert not _unit_values("PrivateUsers")
    assert "ioctl" not in " ".join(_unit_values("SystemCallFilter"))  # never denied by name


def test_unit_has_systemd_watch_the_control_loop() -> None:
    """The agent notifies (READY, then WATCHDOG after every sample: tests/agent/test_systemd.py);
    a hung loop is killed and restarted within WatchdogSec."""
    assert _unit_values("Type") == ["notify"]
    assert _unit_values("NotifyAccess") == ["main"]
    watchdog_s = int(_unit_values("WatchdogSec")[0])
    assert 5 <= watchdog_s <= 30  # several samples, yet a hang does not last


def test_unit_paths_match_the_guide_and_the_examples() -> None:
    exec_start = _unit_values("ExecStart")[0].split()
    assert exec_start[:3] == [INSTALLED_AGENT, "--config", "/etc/sbms-agent/config.yaml"]
    install_guide = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    assert f"python3 -m venv {INSTALLED_AGENT.removesuffix('/bin/sbms-agent')}" in install_guide
    state_directory = Path("/var/lib") / _unit_values("StateDirectory")[0]
    for example in ("config-4s-lfp.yaml", "config-8s-lfp.yaml"):
        config = load_config(ROOT / "examples" / example)
        assert config.storage.state_path.parent == state_directory, example


def test_unit_verifies(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed (package systemd)")
    agent = Path(sys.executable).with_name("sbms-agent")
    assert agent.exists(), "the test venv has no sbms-agent (pip install -e .)"
    # verify insists that ExecStart= exists: point it at this venv's console script.
    unit = tmp_path / "sbms-agent.service"
    unit.write_text(UNIT.read_text(encoding="utf-8").replace(INSTALLED_AGENT, str(agent)))
    completed = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, check=False
    )
    assert completed.returncode == 0, completed.stderr
    # Unknown or misspelt options are only warnings: any line about our unit fails the test.
    assert "sbms-agent.service" not in completed.stderr + completed.stdout, completed.stderr


# ---------------------------------------------------------------------------------------------
# Dockerfiles
# ---------------------------------------------------------------------------------------------


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    instructions: list[tuple[str, str]] = []
    pending = ""
    for line in dockerfile.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        pending += " " + stripped.removesuffix("\\").strip()
        if stripped.endswith("\\"):
            continue
        word, _, rest = pending.strip().partition(" ")
        instructions.append((word.upper(), rest.strip()))
        pending = ""
    return instructions


def _copy_sources(instructions: list[tuple[str, str]]) -> list[str]:
    sources: list[str] = []
    for word, rest in instructions:
        if word != "COPY" or rest.startswith("--from"):
            continue
        sources += rest.split()[:-1]
    return sources


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last matching pattern wins; a pattern matches a path or a parent."""
    parts = path.split("/")
    candidates = ["/".join(parts[: index + 1]) for index in range(len(parts))]
    ignored = False
    for pattern in patterns:
        negated = pattern.startswith("!")
        body = pattern.removeprefix("!").rstrip("/")
        if any(fnmatch.fnmatchcase(candidate, body) for candidate in candidates):
            ignored = not negated
    return ignored


def _dockerignore_patterns() -> list[str]:
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def test_dockerfile_base_user_and_entrypoint() -> None:
    instructions = _instructions(DOCKERFILE)
    bases = [rest.split()[0] for word, rest in instructions if word == "FROM"]
    assert bases
    assert all(base == "python:3.11-slim-bookworm" for base in bases)
    final_stage = instructions[
        max(i for i, (word, _) in enumerate(instructions) if word == "FROM") :
    ]
    users = [rest for word, rest in final_stage if word == "USER"]
    assert users
    assert users[-1] not in {"root", "0"}
    entrypoint = json.loads(next(rest for word, rest in final_stage if word == "ENTRYPOINT"))
    assert entrypoint == ["sbms-agent"]
    assert "sbms-agent" in _pyproject()["project"]["scripts"]
    volumes = [json.loads(rest) for word, rest in final_stage if word == "VOLUME"]
    assert ["/data"] in volumes
    assert json.loads(next(rest for word, rest in final_stage if word == "CMD"))[:2] == [
        "--config",
        "/config/config.yaml",
    ]
    assert any(word == "RUN" and "pip install" in rest for word, rest in instructions)


def test_dockerfile_copies_what_exists_and_is_not_ignored() -> None:
    patterns = _dockerignore_patterns()
    sources = _copy_sources(_instructions(DOCKERFILE))
    assert sources
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not _dockerignored(source, patterns), source
    # pip install . needs everything pyproject.toml names: readme, licence files, the package.
    project = _pyproject()["project"]
    for needed in [project["readme"], *project["license-files"], "edge_agent/cli.py"]:
        assert any(needed == s or needed.startswith(s.rstrip("/") + "/") for s in sources), needed
        assert not _dockerignored(needed, patterns), needed
    for kept_out in (
        ".venv/bin/python",
        ".git/HEAD",
        "tests/conftest.py",
        "edge_agent/__pycache__",
    ):
        assert _dockerignored(kept_out, patterns), kept_out


def test_install_guide_builds_the_dockerfile_from_the_top() -> None:
    guide = (ROOT / "docs" / "install.md").read_text(encoding="utf-8")
    assert f"docker build -f {DOCKERFILE.relative_to(ROOT)} -t sbms-agent ." in guide


# ---------------------------------------------------------------------------------------------
# Home Assistant add-on
# ---------------------------------------------------------------------------------------------


def _addon_config() -> dict[str, Any]:
    loaded: dict[str, Any] = _yaml(ADDON / "config.yaml")
    return loaded


def _addon_converter() -> ModuleType:
    spec = importlib.util.spec_from_file_location("addon_config", ADDON / "addon_config.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


MQTT_SERVICE = {
    "SBMS_MQTT_HOST": "core-mosquitto",
    "SBMS_MQTT_PORT": "1883",
    "SBMS_MQTT_USERNAME": "addons",
    "SBMS_MQTT_PASSWORD": "secret",
    "SBMS_MQTT_SSL": "false",
}


def test_addon_manifest() -> None:
    config = _addon_config()
    for key in ("name", "version", "slug", "description", "arch", "startup", "boot"):
        assert config.get(key), key
    assert config["slug"] == ADDON.name
    assert config["version"] == _pyproject()["project"]["version"]  # the image installs it
    assert config["i2c"] is True
    assert config["gpio"] is True
    assert config["uart"] is True
    assert all(device.startswith("/dev/gpiochip") for device in config["devices"])
    assert "mqtt:need" in config["services"]
    assert config["init"] is False  # run.sh runs under the base image's s6 init
    build = _yaml(ADDON / "build.yaml")
    assert set(build["build_from"]) == set(config["arch"])
    assert all(
        image.startswith("ghcr.io/home-assistant/") for image in build["build_from"].values()
    )
    repository = _yaml(ROOT / "repository.yaml")
    assert repository["name"]
    assert repository["url"].startswith("https://")


def test_addon_options_match_schema_and_translations() -> None:
    config = _addon_config()
    options, schema = config["options"], config["schema"]
    assert set(options) <= set(schema)
    required = {key for key, rule in schema.items() if not str(rule).endswith("?")}
    assert required <= set(options), required - set(options)
    item_schema = schema["outputs"][0]
    for item in options["outputs"]:
        assert set(item) <= set(item_schema)
    translated = _yaml(ADDON / "translations" / "en.yaml")["configuration"]
    assert set(translated) == set(schema)
    docs = (ADDON / "DOCS.md").read_text(encoding="utf-8")
    for key in schema:
        assert f"`{key.split('_shunt_')[0]}" in docs, key


def test_addon_default_options_give_a_valid_agent_config() -> None:
    converter = _addon_converter()
    options = _addon_config()["options"]
    mqtt = converter.mqtt_from_environment(MQTT_SERVICE)
    config = parse_config(converter.build_config(options, None, mqtt))
    assert config.control.cell_count == options["cells"]
    assert [output.name for output in config.control.outputs] == [
        item["name"] for item in options["outputs"]
    ]
    assert config.mqtt is not None
    assert config.mqtt.host == "core-mosquitto"
    assert config.mqtt.username == "addons"
    assert not config.mqtt.tls
    assert str(config.storage.state_path).startswith("/data/")


def test_addon_gpio_pv_shunt_and_tls_options() -> None:
    converter = _addon_converter()
    options = {
        **_addon_config()["options"],
        "cells": 4,
        "pv_shunt_chip": "ina228",
        "pv_shunt_address": "0x41",
        "pv_shunt_rated_current_a": 50,
        "pv_shunt_rated_millivolts": 50,
        "outputs": [
            {"name": "extio3", "type": 2, "driver": "gpiod", "chip": "pinctrl-rp1", "line": "17"},
            {
                "name": "extio4",
                "type": 1,
                "driver": "gpiod",
                "chip": "pinctrl-rp1",
                "line": "GPIO27",
            },
        ],
    }
    mqtt = converter.mqtt_from_environment({**MQTT_SERVICE, "SBMS_MQTT_SSL": "true"})
    config = parse_config(converter.build_config(options, None, mqtt))
    assert config.hardware.pv_shunt is not None
    assert config.hardware.pv_shunt.address == 0x41
    assert [pin.line for pin in config.hardware.outputs] == [17, "GPIO27"]
    assert config.mqtt is not None
    assert config.mqtt.tls


def test_addon_writes_a_private_file_from_a_user_config(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    converter = _addon_converter()
    options_file = tmp_path / "options.json"
    options_file.write_text(json.dumps(_addon_config()["options"]))
    user_file = tmp_path / "sbms-agent.yaml"
    shutil.copy(ROOT / "examples" / "config-4s-lfp.yaml", user_file)
    output = tmp_path / "out.yaml"
    for name, value in MQTT_SERVICE.items():
        monkeypatch.setenv(name, value)
    argv = [
        "--options",
        str(options_file),
        "--user-config",
        str(user_file),
        "--output",
        str(output),
    ]
    assert converter.main(argv) == 0
    assert stat.S_IMODE(output.stat().st_mode) == 0o600  # holds the broker password
    config = load_config(output)
    assert config.agent_id == "van-box"  # the user's file, not the options
    assert config.mqtt is not None
    assert config.mqtt.host == "core-mosquitto"
    user_file.write_text("- not a mapping\n")
    assert converter.main(argv) == 2


def test_addon_image_and_run_script_agree() -> None:
    instructions = _instructions(ADDON / "Dockerfile")
    assert instructions[0] == ("ARG", "BUILD_FROM")
    assert ("FROM", "$BUILD_FROM") in instructions
    for source in _copy_sources(instructions):
        assert (ADDON / source).exists(), source
    copies = {rest.split()[0]: rest.split()[-1] for word, rest in instructions if word == "COPY"}
    run_script = (ADDON / "run.sh").read_text(encoding="utf-8")
    assert run_script.startswith("#!/usr/bin/with-contenv bashio")
    assert copies["addon_config.py"] in run_script
    assert json.loads(next(rest for word, rest in instructions if word == "CMD")) == [
        copies["run.sh"]
    ]
    assert os.access(ADDON / "run.sh", os.X_OK)
    assert "pip install" in " ".join(rest for word, rest in instructions if word == "RUN")
    bash = shutil.which("bash")
    assert bash is not None
    syntax = subprocess.run([bash, "-n", str(ADDON / "run.sh")], capture_output=True, check=False)
    assert syntax.returncode == 0, syntax.stderr


# ---------------------------------------------------------------------------------------------
# Workflows, licence, changelog
# ---------------------------------------------------------------------------------------------


def _workflow_steps(name: str) -> list[dict[str, Any]]:
    workflow = _yaml(ROOT / ".github" / "workflows" / name)
    triggers = workflow.get("on", workflow.get(True))  # YAML 1.1 reads a bare `on` as true
    assert "push" in triggers
    assert "pull_request" in triggers
    return [step for job in workflow["jobs"].values() for step in job["steps"]]


def test_workflows_run_hassfest_hacs_and_the_suite() -> None:
    validate = _workflow_steps("validate.yaml")
    uses = [step.get("uses", "") for step in validate]
    assert any(use.startswith("home-assistant/actions/hassfest@") for use in uses)
    hacs = next(step for step in validate if step.get("uses", "").startswith("hacs/action@"))
    assert hacs["with"]["category"] == "integration"
    assert "ignore" not in hacs["with"]  # the default store wants every check passing
    tests = _workflow_steps("tests.yaml")
    assert any(step.get("run", "").strip() == "./scripts/test" for step in tests)
    versions = {
        step["with"]["python-version"] for step in tests if "setup-python" in step.get("uses", "")
    }
    assert versions == {"3.11", "3.13"}


def test_licence_agrees_with_the_package_metadata() -> None:
    licence = (ROOT / "LICENSE").read_text(encoding="utf-8")
    assert "Apache License" in licence
    assert "Version 2.0, January 2004" in licence
    assert "END OF TERMS AND CONDITIONS" in licence  # the full text, not a stub
    project = _pyproject()["project"]
    assert project["license"] == "Apache-2.0"
    assert project["license-files"] == ["LICENSE"]
    assert not any("License ::" in c for c in project.get("classifiers", []))


def test_one_version_for_the_whole_release() -> None:
    """The agent's package, what it announces (the device page's firmware), the add-on and
    the integration's manifest (the integration page) carry one version (issue 20)."""
    version = _pyproject()["project"]["version"]
    manifest = json.loads(
        (ROOT / "custom_components" / "sbms" / "manifest.json").read_text(encoding="utf-8")
    )
    config = parse_config(yaml.safe_load((ROOT / "examples" / "config-8s-lfp.yaml").read_text()))
    announced = announce_payload(config, "diy", "rpi-1", ())["agent_version"]
    assert re.fullmatch(r"\d+\.\d+\.\d+", version), version
    assert (__version__, announced, manifest["version"], _addon_config()["version"]) == (
        version,
        version,
        version,
        version,
    )


def test_changelog_follows_keep_a_changelog() -> None:
    changelog = (ROOT / "CHANGELOG.md").read_text(encoding="utf-8")
    assert changelog.startswith("# Changelog")
    assert "keepachangelog.com" in changelog
    assert re.search(r"^## \[Unreleased\]$", changelog, re.MULTILINE)
    sections = re.findall(r"^### (\w+)$", changelog, re.MULTILINE)
    assert sections
    assert set(sections) <= {
        "Added",
        "Changed",
        "Deprecated",
        "Removed",
        "Fixed",
        "Security",
    }


# ---------------------------------------------------------------------------------------------
# Examples and the wiring guide
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("example", "cells", "volts"),
    [("config-4s-lfp.yaml", 4, "12 V"), ("config-8s-lfp.yaml", 8, "24 V")],
)
def test_examples_are_the_packs_they_say(example: str, cells: int, volts: str) -> None:
    path = ROOT / "examples" / example
    assert load_config(path).control.cell_count == cells
    assert volts in path.read_text(encoding="utf-8").splitlines()[0]
    wiring = (ROOT / "docs" / "wiring.md").read_text(encoding="utf-8")
    assert f"examples/{example}" in wiring


def test_every_example_is_documented() -> None:
    wiring = (ROOT / "docs" / "wiring.md").read_text(encoding="utf-8")
    for example in sorted((ROOT / "examples").glob("*.yaml")):
        assert f"examples/{example.name}" in wiring, example.name


def test_wiring_shunt_table_matches_the_drivers() -> None:
    """The resolution table in docs/wiring.md is what the drivers actually compute."""
    wiring = (ROOT / "docs" / "wiring.md").read_text(encoding="utf-8")
    rows = re.findall(
        r"^\| (\d+) A / (\d+) mV \| ±([\d.]+) mV "
        r"\| ([\d.]+) A \| ([\d.]+) mA \| ([\d.]+) A \| ([\d.]+) mA \|$",
        wiring,
        re.MULTILINE,
    )
    assert len(rows) >= 4
    for amps, millivolts, range_mv, ina228_max, ina228_step, ina226_max, ina226_step in rows:
        ina228 = Ina228(None, "doc", 0x40, float(amps), float(millivolts))  # type: ignore[arg-type]
        ina226 = Ina226(None, "doc", 0x40, float(amps), float(millivolts))  # type: ignore[arg-type]
        assert float(range_mv) == (40.96 if ina228.adc_range else 163.84)
        assert float(ina228_max) == pytest.approx(ina228.max_current_a, abs=0.05)
        assert float(ina228_step) == pytest.approx(ina228.current_lsb_a * 1000, abs=0.0005)
        assert float(ina226_max) == pytest.approx(ina226.max_current_a, abs=0.05)
        assert float(ina226_step) == pytest.approx(ina226.current_lsb_a * 1000, abs=0.005)
