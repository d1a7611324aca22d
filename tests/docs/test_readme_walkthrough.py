"""Every shell command in README.md and docs/install.md, run the way a reader would run it.

The commands are read from the documents' ```sh blocks, so a document that drifts from the code
fails here. Each command is looked up in HANDLING:

- Install: creating the agent's virtual environment and `pip install .` (from PyPI, about
  10-20 s): run once, by the `installed_agent` fixture, into a temporary directory.
- Run: run in this checkout's top directory, with the system paths a reader would use
  (/opt/sbms-agent, /etc/sbms-agent, /config, /etc/systemd/system) moved into a sandbox and
  `sudo` dropped. Commands that need the battery box's hardware run against what is here: the
  simulator, or a clean "cannot start" for the missing I2C bus.
- RunUntilAnnounced: a command that runs until stopped: started against a real mosquitto, then
  stopped with Ctrl-C (SIGINT) once the broker has its announcement, as a reader would.
- Skip: commands that cannot run on a test machine, each with the reason.

A command in a document that HANDLING does not know fails `test_every_command_is_classified`,
and so does a HANDLING entry that no document uses any more.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import signal
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from tests.helpers.mqtt_broker import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
DOCUMENTS = ("README.md", "docs/install.md")
SHELL_FENCES = {"sh", "bash", "shell", "console"}
DEMO_SECTION = "Try it"
COMMAND_TIMEOUT_S = 120.0
ANNOUNCE_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class Command:
    document: str
    line: int
    section: str
    text: str  # as written, continuation lines joined
    argv: tuple[str, ...]  # shell words without comments and without a leading sudo

    @property
    def key(self) -> str:
        return " ".join(self.argv)

    @property
    def where(self) -> str:
        return f"{self.document}:{self.line}"


@dataclass(frozen=True, slots=True)
class Skip:
    reason: str


@dataclass(frozen=True, slots=True)
class Install:
    """Part of installing the agent: run once by the `installed_agent` fixture."""


@dataclass(frozen=True, slots=True)
class Run:
    returncode: int = 0
    output: str = ""  # a regular expression stdout + stderr must match
    append: tuple[str, ...] = ()  # bounds a long-running command (e.g. --duration)
    drop_options: tuple[str, ...] = ()  # option + value pairs the sandbox cannot honour
    creates: str | None = None  # a sandbox path that must exist afterwards


@dataclass(frozen=True, slots=True)
class RunUntilAnnounced:
    topic: str  # retained announcement that shows the command is working


Handling = Skip | Install | Run | RunUntilAnnounced

NO_GITHUB = Skip(
    "clones from GitHub, which test machines cannot reach; the test uses this checkout"
)
NO_SYSTEMD = Skip(
    "needs systemd as the init system and would install a service on the test machine; "
    "test_packaging.py runs systemd-analyze verify on the unit instead"
)
NO_DOCKER = Skip(
    "no Docker engine on the test machines; test_packaging.py checks the Dockerfile's paths, "
    "user and entrypoint"
)
MACHINE_CHANGE = "changes the test machine's {what}"
NO_HARDWARE_EXIT = 3  # sbms-agent: a device could not be opened
PROBE_NO_HOST_EXIT = 3  # sbms-agent probe: I2C or GPIO not enabled or not accessible

HANDLING: dict[str, Handling] = {
    # README.md
    "./scripts/test": Skip("the command that runs this test: CI runs it (.github/workflows)"),
    "python3 -m venv /opt/sbms-agent": Install(),
    "/opt/sbms-agent/bin/pip install .": Install(),
    "/opt/sbms-agent/bin/sbms-agent check-config examples/config-8s-lfp.yaml": Run(
        output=r"examples/config-8s-lfp\.yaml: OK \(8 cells"
    ),
    "mkdir -p /etc/sbms-agent": Run(creates="etc-sbms-agent"),
    "cp examples/config-8s-lfp.yaml /etc/sbms-agent/config.yaml": Run(
        creates="etc-sbms-agent/config.yaml"
    ),
    "/opt/sbms-agent/bin/sbms-agent --config /etc/sbms-agent/config.yaml": Run(
        returncode=NO_HARDWARE_EXIT, output=r"cannot start: .*/dev/i2c-1"
    ),
    "sbms-agent --simulate --cells 4 --speed 600": Run(
        append=("--duration", "0.1"), output=r"SoC +\d+\.\d% +1[2-4]\.\d\dV"
    ),
    "sbms-agent --simulate --mqtt-host 127.0.0.1": RunUntilAnnounced("sbms/simulator/announce"),
    "sbms-agent --help": Run(output=r"--simulate"),
    "sbms-agent probe --help": Run(output=r"exit codes:"),
    "sbms-agent replay --help": Run(output=r"usage: sbms-agent replay"),
    # docs/install.md: integration
    "git clone https://github.com/sbms-ha/sbms-ha.git": NO_GITHUB,
    "mkdir -p /config/custom_components": Run(creates="config/custom_components"),
    "cp -r sbms-ha/custom_components/sbms /config/custom_components/": Run(
        creates="config/custom_components/sbms/manifest.json"
    ),
    # docs/install.md: agent with pip and systemd
    "raspi-config nonint do_i2c 0": Skip(MACHINE_CHANGE.format(what="boot configuration")),
    "apt-get install -y python3-venv git i2c-tools": Skip(MACHINE_CHANGE.format(what="packages")),
    "cd sbms-ha": Skip("the walkthrough runs in this checkout's top directory"),
    "/opt/sbms-agent/bin/sbms-agent --version": Run(output=r"^sbms-agent \d+\.\d+\.\d+"),
    "i2cdetect -y 1": Skip("needs an I2C bus with the box's chips on it"),
    "groupadd --system --force i2c": Skip(MACHINE_CHANGE.format(what="groups")),
    "groupadd --system --force gpio": Skip(MACHINE_CHANGE.format(what="groups")),
    (
        "useradd --system --user-group --groups i2c,gpio,dialout --home-dir /var/lib/sbms-agent "
        "--no-create-home --shell /usr/sbin/nologin sbms"
    ): Skip(MACHINE_CHANGE.format(what="users")),
    (
        'printf %s\\n SUBSYSTEM=="i2c-dev", GROUP="i2c", MODE="0660" '
        'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660" | '
        "sudo tee /etc/udev/rules.d/60-sbms-agent.rules"
    ): Skip(MACHINE_CHANGE.format(what="udev rules")),
    "udevadm control --reload && sudo udevadm trigger": Skip(
        MACHINE_CHANGE.format(what="device permissions")
    ),
    # No sbms group here: the sandbox files get the test user's group instead.
    "install -d -m 0750 -g sbms /etc/sbms-agent": Run(
        drop_options=("-g",), creates="etc-sbms-agent"
    ),
    "install -m 0640 -g sbms examples/config-8s-lfp.yaml /etc/sbms-agent/config.yaml": Run(
        drop_options=("-g",), creates="etc-sbms-agent/config.yaml"
    ),
    "sudoedit /etc/sbms-agent/config.yaml": Skip("opens an interactive editor"),
    "/opt/sbms-agent/bin/sbms-agent check-config /etc/sbms-agent/config.yaml": Run(
        output=r"config\.yaml: OK \(8 cells"
    ),
    "install -m 0644 packaging/systemd/sbms-agent.service /etc/systemd/system/": Run(
        creates="systemd-system/sbms-agent.service"
    ),
    "systemctl daemon-reload": NO_SYSTEMD,
    "systemctl enable --now sbms-agent": NO_SYSTEMD,
    "systemctl status sbms-agent": NO_SYSTEMD,
    "journalctl -u sbms-agent -f": NO_SYSTEMD,
    "git pull": Skip("updates the checkout from GitHub, which test machines cannot reach"),
    "systemctl restart sbms-agent": NO_SYSTEMD,
    # docs/install.md: the bring-up checklist. A test machine has no I2C bus: probe names it
    # and says how to enable I2C, before touching anything (so --pulse-outputs ends there too).
    "/opt/sbms-agent/bin/sbms-agent probe --config /etc/sbms-agent/config.yaml": Run(
        returncode=PROBE_NO_HOST_EXIT, output=r"FAIL  no-i2c: /dev/i2c-1 does not exist"
    ),
    (
        "/opt/sbms-agent/bin/sbms-agent probe --config /etc/sbms-agent/config.yaml --pulse-outputs"
    ): Run(returncode=PROBE_NO_HOST_EXIT, output=r"FAIL  no-i2c: /dev/i2c-1 does not exist"),
    # docs/install.md: Docker
    "docker build -f packaging/docker/Dockerfile -t sbms-agent .": NO_DOCKER,
    (
        "docker run -d --name sbms-agent --restart unless-stopped --device /dev/i2c-1 "
        "--device /dev/gpiochip0 --group-add $(getent group i2c | cut -d: -f3) --group-add "
        "$(getent group gpio | cut -d: -f3) -v /etc/sbms-agent:/config:ro "
        "-v sbms-agent-data:/data sbms-agent"
    ): NO_DOCKER,
    "docker logs -f sbms-agent": NO_DOCKER,
}

DEMO = Skip("the demo: started and checked through Home Assistant by the demo's own test")


# ---------------------------------------------------------------------------------------------
# Reading the documents
# ---------------------------------------------------------------------------------------------


def extract_commands(document: str) -> list[Command]:
    """The commands of every shell block, one per logical line, with the section they are in."""
    commands: list[Command] = []
    section = ""
    fence: str | None = None
    pending: list[str] = []
    pending_line = 0
    lines = (ROOT / document).read_text(encoding="utf-8").splitlines()
    for number, line in enumerate(lines, start=1):
        stripped = line.strip()
        if fence is None:
            if stripped.startswith("#"):
                section = stripped.lstrip("#").strip()
            elif stripped.startswith("```"):
                fence = stripped[3:].strip().lower()
            continue
        if stripped.startswith("```"):
            fence = None
            continue
        if fence not in SHELL_FENCES or not stripped or stripped.startswith("#"):
            continue
        if not pending:
            pending_line = number
        pending.append(stripped.removeprefix("$ ").removesuffix("\\").strip())
        if stripped.endswith("\\"):
            continue
        text = " ".join(pending)
        pending = []
        commands.append(Command(document, pending_line, section, text, _words(text)))
    return commands


def _words(text: str) -> tuple[str, ...]:
    words = shlex.split(text, comments=True)
    if words[:1] == ["sudo"]:
        words = words[3:] if words[1:2] == ["-u"] else words[1:]
    return tuple(words)


def handling_for(command: Command) -> Handling | None:
    if command.section == DEMO_SECTION or command.argv[0].startswith("./scripts/demo"):
        return DEMO
    return HANDLING.get(command.key)


def all_commands() -> list[Command]:
    return [command for document in DOCUMENTS for command in extract_commands(document)]


# ---------------------------------------------------------------------------------------------
# The sandbox
# ---------------------------------------------------------------------------------------------


@dataclass(slots=True)
class Sandbox:
    root: Path
    venv: Path
    prefixes: dict[str, Path] = field(default_factory=dict)

    def path(self, relative: str) -> Path:
        return self.root / relative

    def argv(self, words: tuple[str, ...], drop_options: tuple[str, ...] = ()) -> list[str]:
        """The command with the reader's system paths moved into the sandbox."""
        result: list[str] = []
        skip_next = False
        for word in words:
            if skip_next:
                skip_next = False
                continue
            if word in drop_options:
                skip_next = True
                continue
            result.append(self._relocate(word))
        if result[0] == "sbms-agent":
            result[0] = str(self.venv / "bin" / "sbms-agent")
        return result

    def _relocate(self, word: str) -> str:
        for prefix, target in self.prefixes.items():
            if word == prefix or word.startswith(prefix.rstrip("/") + "/"):
                return str(target) + word[len(prefix.rstrip("/")) :]
        return word


def _make_sandbox(root: Path) -> Sandbox:
    sandbox = Sandbox(root=root, venv=root / "opt-sbms-agent")
    sandbox.prefixes = {
        "/opt/sbms-agent": sandbox.venv,
        "/etc/sbms-agent": root / "etc-sbms-agent",
        "/etc/systemd/system": root / "systemd-system",
        "/config": root / "config",
        "sbms-ha": ROOT,
    }
    (root / "systemd-system").mkdir(parents=True, exist_ok=True)
    return sandbox


def _environment() -> dict[str, str]:
    environment = {
        key: value for key, value in os.environ.items() if key not in {"VIRTUAL_ENV", "PYTHONPATH"}
    }
    environment["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return environment


def _run(argv: list[str], timeout_s: float = COMMAND_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        argv,
        cwd=ROOT,
        env=_environment(),
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


@pytest.fixture(scope="session")
def installed_agent(tmp_path_factory: pytest.TempPathFactory) -> Sandbox:
    """The README's install commands, run once into a sandbox (pip reaches PyPI)."""
    sandbox = _make_sandbox(tmp_path_factory.mktemp("walkthrough"))
    install_steps = [c for c in extract_commands("README.md") if handling_for(c) == Install()]
    assert [c.argv[-1] for c in install_steps] == ["/opt/sbms-agent", "."], install_steps
    for command in install_steps:
        completed = _run(sandbox.argv(command.argv), timeout_s=600.0)
        assert completed.returncode == 0, f"{command.where} {command.text}\n{completed.stderr}"
    assert (sandbox.venv / "bin" / "sbms-agent").exists()
    return sandbox


# ---------------------------------------------------------------------------------------------
# Running one command
# ---------------------------------------------------------------------------------------------


def _check_run(command: Command, handling: Run, sandbox: Sandbox) -> str | None:
    """None when the command did what the document promises, else what went wrong."""
    argv = sandbox.argv(command.argv, handling.drop_options) + list(handling.append)
    completed = _run(argv)
    output = completed.stdout + completed.stderr
    if completed.returncode != handling.returncode:
        return f"exit {completed.returncode}, expected {handling.returncode}:\n{output[-2000:]}"
    if handling.output and not re.search(handling.output, output, re.MULTILINE):
        return f"output does not match {handling.output!r}:\n{output[-2000:]}"
    if handling.creates is not None and not sandbox.path(handling.creates).exists():
        return f"{handling.creates} was not created"
    return None


class _Announcements:
    """Collects the retained announcement and the final status of one agent."""

    def __init__(self, port: int, topic: str) -> None:
        self.announced = threading.Event()
        self.status: list[str] = []
        self._topic = topic
        self._status_topic = topic.rsplit("/", 1)[0] + "/status"
        self.client = paho.Client(CallbackAPIVersion.VERSION2, client_id="walkthrough")
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", port)
        self.client.subscribe([(topic, 1), (self._status_topic, 1)])
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic == self._topic and json.loads(message.payload):
            self.announced.set()
        elif message.topic == self._status_topic:
            self.status.append(message.payload.decode())

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _check_until_announced(
    command: Command, handling: RunUntilAnnounced, sandbox: Sandbox, broker: MosquittoBroker
) -> str | None:
    argv = [*sandbox.argv(command.argv), "--mqtt-port", str(broker.port), "--quiet"]
    watcher = _Announcements(broker.port, handling.topic)
    process = subprocess.Popen(argv, cwd=ROOT, env=_environment(), stderr=subprocess.PIPE)
    try:
        if not watcher.announced.wait(ANNOUNCE_TIMEOUT_S):
            return f"no announcement on {handling.topic} within {ANNOUNCE_TIMEOUT_S:g} s"
        process.send_signal(signal.SIGINT)  # Ctrl-C
        _, stderr = process.communicate(timeout=30)
        if process.returncode != 0:
            return f"Ctrl-C gave exit {process.returncode}:\n{stderr.decode()[-2000:]}"
        return None
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
        watcher.close()


@pytest.fixture
def broker(tmp_path: Path, allow_sockets: None) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


@pytest.fixture
def allow_sockets(request: pytest.FixtureRequest) -> None:
    """pytest-socket (from Home Assistant's test plugin) would block the watcher's socket."""
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")


# ---------------------------------------------------------------------------------------------
# Tests
# ---------------------------------------------------------------------------------------------


def test_documents_have_commands() -> None:
    """The extraction itself: it finds the commands a reader sees, in order, with sections."""
    readme = extract_commands("README.md")
    keys = [c.key for c in readme]
    # The README's two commands come first: the demo (and its options), then the tests.
    assert keys[0] == "./scripts/demo"
    first_other = next(i for i, key in enumerate(keys) if not key.startswith("./scripts/demo"))
    assert keys[first_other] == "./scripts/test"
    assert all(c.section == DEMO_SECTION for c in readme[:first_other])
    install = extract_commands("docs/install.md")
    assert len(install) >= 30
    keys = [c.key for c in install]
    assert keys.index("python3 -m venv /opt/sbms-agent") < keys.index(
        "/opt/sbms-agent/bin/pip install ."
    )


def test_every_command_is_classified() -> None:
    commands = all_commands()
    unknown = [f"{c.where}: {c.key}" for c in commands if handling_for(c) is None]
    assert not unknown, "commands without a HANDLING entry:\n" + "\n".join(unknown)
    used = {c.key for c in commands}
    stale = sorted(set(HANDLING) - used)
    assert not stale, "HANDLING entries that no document uses any more:\n" + "\n".join(stale)


def test_documented_commands_work(installed_agent: Sandbox, broker: MosquittoBroker) -> None:
    """Walk through both documents in order, as a reader would, and run what can run here."""
    failures: list[str] = []
    ran: list[str] = []
    for command in all_commands():
        handling = handling_for(command)
        if isinstance(handling, Run):
            problem = _check_run(command, handling, installed_agent)
        elif isinstance(handling, RunUntilAnnounced):
            problem = _check_until_announced(command, handling, installed_agent, broker)
        else:
            continue  # Install: done by the fixture; Skip: see its reason
        ran.append(command.key)
        if problem is not None:
            failures.append(f"{command.where}: {command.text}\n  {problem}")
    assert not failures, "\n\n".join(failures)
    assert len(ran) >= 12, ran  # the walk really ran the runnable commands


def test_skips_say_why() -> None:
    for key, handling in HANDLING.items():
        if isinstance(handling, Skip):
            assert len(handling.reason) > 20, key
