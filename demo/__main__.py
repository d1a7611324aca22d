"""`./scripts/demo`: a broker, the agent on the simulated box and Home Assistant, Ctrl-C stops all.

    .venv-demo/bin/python -m demo [--port 8123] [--mqtt-port N] [--speed 60] [--start-hour 8]

Everything lives under .demo/ (logs, broker config, Home Assistant's config dir), rebuilt on
every start so a run never sees an earlier one's leftovers.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import signal
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType
from typing import Any

import aiohttp
import aiomqtt
from homeassistant import const as ha_const

from demo.broker import BROKERS, broker_process
from demo.ha_api import connect_when_running
from demo.home_assistant import REPO_ROOT, DemoBox, seed_config_dir
from demo.processes import ManagedProcess, free_port, port_in_use, wait_for_port

BASE_TOPIC = "sbms"
START_TIMEOUT_S = 120.0


class DemoError(Exception):
    """The demo cannot start; the message says why."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="scripts/demo",
        description="Home Assistant with the SBMS integration and the simulated battery box.",
    )
    parser.add_argument("--port", type=int, default=8123, help="Home Assistant's HTTP port")
    parser.add_argument("--mqtt-port", type=int, help="the broker's port (default: a free one)")
    parser.add_argument(
        "--broker",
        choices=BROKERS,
        default="auto",
        help="default: mosquitto if installed, else amqtt",
    )
    parser.add_argument("--speed", type=float, default=60.0, help="simulated seconds per second")
    parser.add_argument("--start-hour", type=float, default=8.0, help="simulated hour (UTC)")
    parser.add_argument("--cells", type=int, default=8, choices=range(3, 9), metavar="3..8")
    parser.add_argument("--agent-id", default="simulator")
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".demo", help="working directory")
    parser.add_argument(
        "--newest",
        action="store_true",
        help="the newest Home Assistant on Python 3.14, in a Debian sid chroot built once by "
        "scripts/newest-env (root only; handled by scripts/demo before Python starts)",
    )
    return parser


def say(message: str) -> None:
    print(f"[demo] {message}", flush=True)


class Demo:
    """The three processes, started in order and stopped in reverse."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.work_dir: Path = args.dir.resolve()
        self.logs = self.work_dir / "logs"
        self.mqtt_port: int = args.mqtt_port or free_port()
        self.processes: list[ManagedProcess] = []
        self.broker_name = ""

    def start(self) -> None:
        if port_in_use(self.args.port):
            raise DemoError(f"port {self.args.port} is taken: choose another with --port")
        if port_in_use(self.mqtt_port):
            raise DemoError(f"port {self.mqtt_port} is taken: choose another with --mqtt-port")
        self._start_broker()
        self._start_agent()
        box = asyncio.run(self._read_box())
        say(f"agent '{box.agent_id}' announced itself on {box.topic_prefix}/announce")
        config_dir = self.work_dir / "homeassistant"
        seed_config_dir(
            config_dir,
            http_port=self.args.port,
            mqtt_port=self.mqtt_port,
            box=box,
            speed=self.args.speed,
        )
        self._start_home_assistant(config_dir)
        asyncio.run(self._wait_for_home_assistant(box))

    def _start(self, process: ManagedProcess) -> ManagedProcess:
        process.start(cwd=self.work_dir)
        self.processes.append(process)
        return process

    def _start_broker(self) -> None:
        broker = self._start(
            broker_process(self.args.broker, port=self.mqtt_port, work_dir=self.work_dir / "broker")
        )
        wait_for_port(self.mqtt_port, broker, timeout_s=15.0)
        self.broker_name = broker.name
        say(f"{broker.name} MQTT broker on 127.0.0.1:{self.mqtt_port} (log: {broker.log_path})")

    def _start_agent(self) -> None:
        # amqtt speaks MQTT 3.1.1 only; the agent's default is MQTT 5.
        protocol = "3.1.1" if self.broker_name == "amqtt" else "5"
        command = [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--simulate",
            f"--mqtt-protocol={protocol}",
            f"--cells={self.args.cells}",
            f"--agent-id={self.args.agent_id}",
            "--mqtt-host=127.0.0.1",
            f"--mqtt-port={self.mqtt_port}",
            f"--speed={self.args.speed:g}",
            f"--start-hour={self.args.start_hour:g}",
            # PV diversion (issue 19): once the pack is full the array heats a water tank.
            "--heater",
        ]
        agent = self._start(ManagedProcess("sbms-agent", command, self.logs / "agent.log"))
        say(
            f"sbms-agent on the simulated {self.args.cells}-cell box, a sunny day from "
            f"{self.args.start_hour:g}:00 at {self.args.speed:g}x (log: {agent.log_path})"
        )

    async def _read_box(self) -> DemoBox:
        """The agent's retained announce, which the sbms config entry is made from, and its
        config (the dashboard shows the heater tank the box reads)."""
        prefix = f"{BASE_TOPIC}/{self.args.agent_id}"
        deadline = time.monotonic() + 30.0
        while time.monotonic() < deadline:
            self._check_alive()
            try:
                announce = await asyncio.wait_for(self._retained(f"{prefix}/announce"), 5.0)
                config = await asyncio.wait_for(self._retained(f"{prefix}/config"), 5.0)
            except (TimeoutError, aiomqtt.MqttError):
                continue
            return DemoBox(
                agent_id=self.args.agent_id, topic_prefix=prefix, announce=announce, config=config
            )
        raise DemoError("the agent did not announce itself within 30 s")

    async def _retained(self, topic: str) -> dict[str, Any]:
        async with aiomqtt.Client("127.0.0.1", self.mqtt_port) as client:
            await client.subscribe(topic, qos=1)
            async for message in client.messages:
                payload = message.payload
                if isinstance(payload, bytes | bytearray) and payload:
                    result: dict[str, Any] = json.loads(payload)
                    return result
        raise DemoError(f"no message on {topic}")

    def _start_home_assistant(self, config_dir: Path) -> None:
        command = [
            sys.executable,
            "-m",
            "homeassistant",
            "--config",
            str(config_dir),
            "--skip-pip",  # requirements/demo.txt installed everything beforehand
            "--log-no-color",
        ]
        hass = self._start(ManagedProcess("Home Assistant", command, self.logs / "hass.log"))
        say(
            f"Home Assistant {ha_const.__version__} on Python {platform.python_version()} starting"
            f" (config: {config_dir}, log: {hass.log_path})"
        )

    async def _wait_for_home_assistant(self, box: DemoBox) -> None:
        base_url = f"http://127.0.0.1:{self.args.port}"
        soc = f"sensor.{box.entity_prefix}_state_of_charge"
        async with aiohttp.ClientSession() as session:
            task = asyncio.create_task(
                connect_when_running(session, base_url, timeout_s=START_TIMEOUT_S)
            )
            while not task.done():
                await asyncio.sleep(0.5)
                if not all(process.running() for process in self.processes):
                    task.cancel()
                    self._check_alive()
            api = await task
            deadline = time.monotonic() + 30.0
            while (await api.states()).get(soc, {}).get("state") in (
                None,
                "unavailable",
                "unknown",
            ):
                if time.monotonic() > deadline:
                    raise DemoError(f"Home Assistant runs but {soc} has no value")
                await asyncio.sleep(0.5)

    def _check_alive(self) -> None:
        for process in self.processes:
            if not process.running():
                raise DemoError(
                    f"{process.name} exited (code {process.exit_code()}); the end of "
                    f"{process.log_path}:\n{process.log_tail()}"
                )

    def wait(self) -> None:
        """Until Ctrl-C, or until one of the processes dies."""
        while True:
            self._check_alive()
            time.sleep(0.5)

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.running():
                say(f"stopping {process.name}")
            process.stop()
        self.processes.clear()


def _interrupt(_signum: int, _frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    # Ctrl-C and `kill` stop the demo; SIGINT explicitly too, because a shell starts background
    # jobs with SIGINT ignored and Python then never raises KeyboardInterrupt.
    signal.signal(signal.SIGINT, _interrupt)
    signal.signal(signal.SIGTERM, _interrupt)
    demo = Demo(args)
    status = 0
    try:
        demo.start()
        say(f"ready: open http://localhost:{args.port} (no login on this machine)")
        say("press Ctrl-C to stop")
        demo.wait()
    except KeyboardInterrupt:
        print(flush=True)
        say("Ctrl-C: stopping")
    except (DemoError, RuntimeError, TimeoutError) as err:  # the processes' own failures too
        say(f"error: {err}")
        status = 1
    finally:
        # A second Ctrl-C must not leave processes behind half-stopped.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        demo.stop()
    say("stopped")
    return status


if __name__ == "__main__":
    sys.exit(main())
