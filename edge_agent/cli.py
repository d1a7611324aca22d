"""`sbms-agent`: run on hardware, run against the simulated box, or check a configuration.

sbms-agent --config /etc/sbms-agent/config.yaml   run on the battery box
sbms-agent --simulate [--cells 4] [--speed 60]     run against the simulated box
sbms-agent check-config FILE                       validate a configuration file
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import logging
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TextIO

from edge_agent import __version__
from edge_agent.config import AgentConfig, ConfigError, load_config
from edge_agent.control.model import ControlReport
from edge_agent.drivers.bus import DeviceError
from edge_agent.runtime.agent import Agent
from edge_agent.runtime.clock import Clock, WallClock
from edge_agent.runtime.hardware import open_hardware
from edge_agent.runtime.loop import run_agent
from edge_agent.runtime.status import status_line
from edge_agent.storage.state_store import StateStore, StateStoreError

_LOGGER = logging.getLogger("edge_agent")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_HARDWARE = 3


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check-config":
        return _check_config(args[1:])
    return _run(args)


def _check_config(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="sbms-agent check-config", description="Validate an agent configuration file."
    )
    parser.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.file)
    except ConfigError as err:
        print(f"{args.file}: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    control = config.control
    print(
        f"{args.file}: OK ({control.cell_count} cells, {control.soc.capacity_ah:g} Ah, "
        f"{len(control.outputs)} outputs)"
    )
    return EXIT_OK


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbms-agent",
        description="Solar battery box agent: measures, computes SoC, drives the EXTIO outputs.",
        epilog="Subcommand: sbms-agent check-config FILE",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="run on hardware with this YAML file")
    source.add_argument("--simulate", action="store_true", help="run on the simulated box")
    parser.add_argument("--cells", type=int, default=8, choices=range(3, 9), metavar="3..8")
    parser.add_argument("--capacity", type=float, default=100.0, help="simulated Ah")
    parser.add_argument("--seed", type=int, default=1, help="simulated weather seed")
    parser.add_argument(
        "--start-hour", type=float, default=7.0, help="simulated time of day to start at (UTC)"
    )
    parser.add_argument(
        "--speed", type=float, default=1.0, help="simulated seconds per real second"
    )
    parser.add_argument("--duration", type=float, help="stop after this many (simulated) hours")
    parser.add_argument("--state", type=Path, help="state database (default: config or none)")
    parser.add_argument("--quiet", action="store_true", help="no status line")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


def _run(argv: list[str]) -> int:
    args = _run_parser().parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.simulate:
            agent, clock, config = _simulated_agent(args)
        else:
            agent, clock, config = _hardware_agent(args.config, args.state)
    except ConfigError as err:
        print(f"{args.config}: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    except (DeviceError, StateStoreError, OSError) as err:
        print(f"sbms-agent: cannot start: {err}", file=sys.stderr)
        return EXIT_HARDWARE
    interval = config.timing.sample_interval_s
    max_samples = None if args.duration is None else int(args.duration * 3600 / interval)
    listener = None if args.quiet else _status_printer(sys.stdout, args.speed)
    asyncio.run(_run_until_signal(agent, clock, interval, listener, max_samples))
    return EXIT_OK


def _hardware_agent(config_path: Path, state_path: Path | None) -> tuple[Agent, Clock, AgentConfig]:
    import smbus2  # noqa: PLC0415 - only a real battery box needs the kernel's I2C

    config = load_config(config_path)
    bus = smbus2.SMBus(config.hardware.i2c_bus)
    bus_name = f"/dev/i2c-{config.hardware.i2c_bus}"
    hardware = open_hardware(config.hardware, config.control.cell_count, bus, bus_name)
    store = StateStore(state_path or config.storage.state_path)
    clock = WallClock()
    return Agent(config, hardware, store, clock.now()), clock, config


def _simulated_agent(args: argparse.Namespace) -> tuple[Agent, Clock, AgentConfig]:
    # The simulator is only imported here: the production path never loads it.
    from edge_agent.simulator.box import BoxSpec  # noqa: PLC0415
    from edge_agent.simulator.clock import SimulatedClock  # noqa: PLC0415
    from edge_agent.simulator.harness import SimulatedSystem, simulated_config  # noqa: PLC0415

    spec = BoxSpec.for_cells(args.cells, capacity_ah=args.capacity, seed=args.seed)
    spec = dataclasses.replace(spec, start=spec.start + args.start_hour * 3600)
    store = StateStore(args.state) if args.state is not None else None
    config = simulated_config(spec)
    system = SimulatedSystem(spec, config, store)
    return system.agent, SimulatedClock(system.box, args.speed), config


async def _run_until_signal(
    agent: Agent,
    clock: Clock,
    interval: float,
    listener: Callable[[ControlReport], None] | None,
    max_samples: int | None,
) -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):  # not on every platform
            loop.add_signal_handler(signum, stop.set)
    await run_agent(agent, clock, interval, stop, on_report=listener, max_samples=max_samples)
    if listener is not None:
        print()


def _status_printer(stream: TextIO, speed: float) -> Callable[[ControlReport], None]:
    """On a terminal, one line rewritten in place; otherwise a line per simulated minute."""
    interactive = stream.isatty()
    last_printed = [float("-inf")]
    every = 0.0 if interactive and speed <= 10 else 60.0

    def show(report: ControlReport) -> None:
        if report.timestamp - last_printed[0] < every:
            return
        last_printed[0] = report.timestamp
        line = status_line(report)
        if interactive:
            stream.write("\r\x1b[K" + line)
        else:
            stream.write(line + "\n")
        stream.flush()

    return show


if __name__ == "__main__":
    sys.exit(main())
