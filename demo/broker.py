"""The demo's MQTT broker: mosquitto when it is installed, else amqtt (pure Python)."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from demo.processes import ManagedProcess

MOSQUITTO_PATHS = ("/usr/sbin/mosquitto", "/usr/bin/mosquitto")
BROKERS = ("auto", "mosquitto", "amqtt")


def mosquitto_binary() -> str | None:
    for path in MOSQUITTO_PATHS:
        if os.access(path, os.X_OK):
            return path
    return shutil.which("mosquitto")


def broker_process(kind: str, *, port: int, work_dir: Path) -> ManagedProcess:
    """The broker to start: `kind` is auto, mosquitto or amqtt; anonymous, 127.0.0.1 only."""
    work_dir.mkdir(parents=True, exist_ok=True)
    mosquitto = mosquitto_binary()
    if kind == "mosquitto" or (kind == "auto" and mosquitto is not None):
        if mosquitto is None:
            raise RuntimeError("mosquitto is not installed (apt-get install -y mosquitto)")
        return _mosquitto(mosquitto, port, work_dir)
    return _amqtt(port, work_dir)


def _mosquitto(binary: str, port: int, work_dir: Path) -> ManagedProcess:
    conf = work_dir / "mosquitto.conf"
    conf.write_text(
        f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nlog_dest stdout\n",
        encoding="utf-8",
    )
    return ManagedProcess("mosquitto", [binary, "-c", str(conf)], work_dir / "mosquitto.log")


def _amqtt(port: int, work_dir: Path) -> ManagedProcess:
    conf = work_dir / "amqtt.yaml"
    conf.write_text(
        "listeners:\n"
        "  default:\n"
        "    type: tcp\n"
        f"    bind: 127.0.0.1:{port}\n"
        "plugins:\n"
        "  amqtt.plugins.authentication.AnonymousAuthPlugin:\n"
        "    allow_anonymous: true\n",
        encoding="utf-8",
    )
    amqtt = Path(sys.executable).with_name("amqtt")
    return ManagedProcess("amqtt", [str(amqtt), "-c", str(conf)], work_dir / "amqtt.log")
