"""`sbms-agent`: run on hardware, run against the simulated box, or check a configuration.

sbms-agent --config /etc/sbms-agent/config.yaml   run on the battery box
sbms-agent --simulate [--cells 4] [--speed 60]     run against the simulated box
sbms-agent --config FILE --simulated-bus SOCKET    (development) FILE's box on a served bus
sbms-agent --sbms0-serial /dev/ttyUSB0 [--cells 8]  read a stock SBMS0 (or --sbms0-url URL)
sbms-agent check-config FILE                       validate a configuration file
sbms-agent probe [--config FILE] [--pulse-outputs]  bring-up: host, chips, one reading
sbms-agent ... --record FILE                       also record what the agent reads
sbms-agent replay FILE [--config FILE]             replay a recording through the control core
sbms-agent export --config FILE --from ISO --to ISO  write data log records as CSV or JSON
sbms-agent log-info --config FILE                  what the data log holds
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from edge_agent import __version__
from edge_agent.config import (
    SBMS0_BAUD_DEFAULT,
    AgentConfig,
    ConfigError,
    DataLogSettings,
    MqttProtocol,
    MqttSettings,
    built_in_curve_note,
    load_config,
    parse_config,
)
from edge_agent.control.model import ControlReport
from edge_agent.datalog.recorder import DataRecorder, open_recorder
from edge_agent.diy.agent import Agent
from edge_agent.diy.hardware import open_hardware
from edge_agent.drivers.bus import DeviceError, SMBusLike
from edge_agent.drivers.bus_log import RecordingBus
from edge_agent.recording.record import DEFAULT_MAX_BYTES, SessionRecorder
from edge_agent.runtime.clock import Clock, WallClock
from edge_agent.runtime.history import HistoryReader
from edge_agent.runtime.remote import RemoteControl, load_effective_config
from edge_agent.runtime.service import Identity, build_link, serve
from edge_agent.runtime.status import status_line
from edge_agent.runtime.systemd import SystemdNotifier
from edge_agent.storage.box_id import BoxIdError, box_id_path_for, load_or_create_box_id
from edge_agent.storage.config_overlay import (
    ConfigOverlay,
    ConfigOverlayError,
    overlay_path_for,
)
from edge_agent.storage.state_store import StateStore, StateStoreError

_LOGGER = logging.getLogger("edge_agent")

EXIT_OK = 0
EXIT_CONFIG = 2
EXIT_HARDWARE = 3


# --mqtt-protocol value -> paho's protocol number (MqttSettings.protocol)
_MQTT_PROTOCOLS: dict[str, MqttProtocol] = {"5": 5, "3.1.1": 4}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] == "check-config":
        return _check_config(args[1:])
    if args and args[0] == "probe":
        return _probe(args[1:])
    if args and args[0] == "replay":
        return _replay(args[1:])
    if args and args[0] in ("export", "log-info"):
        from edge_agent.datalog.export import data_log_command  # noqa: PLC0415

        return data_log_command(args[0], args[1:])
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
    for note in config.notes:
        print(f"{args.file}: note: {note}")
    for warning in config.warnings:
        print(f"{args.file}: warning: {warning}")
    if (curve_note := built_in_curve_note(config)) is not None:
        print(f"{args.file}: note: {curve_note}")
    caveat = f", {len(config.warnings)} warning(s) above" if config.warnings else ""
    if config.source.type == "sbms0":
        print(
            f"{args.file}: OK (stock SBMS0 on {_sbms0_where(config)}, "
            f"{control.cell_count} cells{caveat})"
        )
        return EXIT_OK
    print(
        f"{args.file}: OK ({control.cell_count} cells, {control.soc.capacity_ah:g} Ah, "
        f"{len(control.outputs)} outputs{caveat})"
    )
    return EXIT_OK


_PROBE_EPILOG = """\
exit codes:
  0  everything found and sane (warnings may be printed)
  2  invalid configuration or command line
  3  I2C or GPIO not enabled or not accessible (the fix is printed)
  4  a configured chip is missing, at another address, or another chip
  5  the chips answer, but a reading shows a wiring or rating problem
     (wrong cell count, a disconnected sense wire, a saturated shunt, no thermistor)
  6  --pulse-outputs refused (no terminal, not confirmed) or an output failed
The lowest applicable code wins. Every problem is printed as "FAIL  <name>: ..." with a fix.
Stop the agent first (sudo systemctl stop sbms-agent): probe calibrates the shunt monitors,
which clears the INA228's charge counter.
"""


def _probe(argv: list[str]) -> int:
    from edge_agent.diy import probe  # noqa: PLC0415
    from edge_agent.diy.host_check import check_gpio, check_i2c  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="sbms-agent probe",
        description="Bring-up of a new box: checks that I2C and GPIO are enabled and "
        "accessible, finds and identifies each configured chip, reads cells, currents, "
        "temperatures and flags once with sanity checks, and shows the thresholds the agent "
        "would write next to what the chip holds. Plain text, fine over SSH.",
        epilog=_PROBE_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--config", type=Path, default=Path("/etc/sbms-agent/config.yaml"), help="%(default)s"
    )
    parser.add_argument(
        "--pulse-outputs",
        action="store_true",
        help="also switch each output on for a moment, after typing yes on a terminal",
    )
    parser.add_argument(
        "--pulse-seconds", type=float, default=1.0, help="how long each output conducts"
    )
    parser.add_argument(
        "--no-scan", action="store_true", help="only touch the configured addresses"
    )
    parser.add_argument(
        "--simulated-bus", type=Path, metavar="SOCKET", help="development: a served simulated box"
    )
    args = parser.parse_args(argv)
    if not 0.05 <= args.pulse_seconds <= 10.0:
        parser.error("--pulse-seconds must be within 0.05-10")
    try:
        config = load_config(args.config)
    except ConfigError as err:
        print(f"{args.config}: invalid configuration\n{err}", file=sys.stderr)
        return probe.EXIT_CONFIG
    if config.source.type == "sbms0":
        print(
            f"{args.config}: reads a stock SBMS0 (source.type sbms0); probe checks a DIY box's "
            "I2C chips",
            file=sys.stderr,
        )
        return probe.EXIT_CONFIG
    printer = probe.Printer(sys.stdout)
    bus_number = config.hardware.i2c_bus
    printer.line(
        f"sbms-agent probe {__version__}: {args.config} ({config.control.cell_count} cells)"
    )
    printer.section("Host")
    if args.simulated_bus is None:
        for finding in check_i2c(bus_number):
            printer.add(finding)
    else:
        printer.line(f"  simulated bus {args.simulated_bus}: /dev/i2c-{bus_number} not checked")
    for finding in check_gpio(probe.gpio_chips(config)):
        printer.add(finding)
    if printer.failed():
        return printer.summary()
    try:
        bus, bus_name = _open_bus(config, args.simulated_bus)
    except OSError as err:
        printer.line(f"  cannot open the bus: {err}")
        return probe.EXIT_HOST
    options = probe.ProbeOptions(
        pulse_outputs=args.pulse_outputs, pulse_s=args.pulse_seconds, scan=not args.no_scan
    )
    try:
        return probe.run_probe(config, bus, bus_name, printer, options=options, stdin=sys.stdin)
    finally:
        bus.close()


def _sbms0_where(config: AgentConfig) -> str:
    serial, http = config.source.serial, config.source.http
    if serial is not None:
        return f"{serial.port} at {serial.baud} baud"
    return http.url if http is not None else "?"


_SUBCOMMANDS = """\
subcommands (each with --help):
  check-config FILE   validate a configuration file; name every wrong key and every default
                      that stands in for the box's wiring or security
  probe               bring-up of a new box: I2C and GPIO, the chips, one reading, thresholds
  replay FILE         run a --record recording through the drivers and the controller again
  export              the data log's 2-minute records of a time range as CSV or JSON
  log-info            what the data log holds: span, records, size
"""


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="sbms-agent",
        description="Solar battery box agent: measures, computes SoC, drives the EXTIO outputs\n"
        "and protects the pack; talks MQTT when its configuration has an mqtt section.\n"
        "Runs on one source: the box's own chips (--config), a stock SBMS0 (--sbms0-serial,\n"
        "--sbms0-url) or the simulated box (--simulate).",
        epilog=_SUBCOMMANDS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--config", type=Path, help="run on hardware with this YAML file")
    source.add_argument("--simulate", action="store_true", help="run on the simulated box")
    source.add_argument("--sbms0-serial", metavar="PORT", help="read a stock SBMS on this port")
    source.add_argument("--sbms0-url", metavar="URL", help="poll a stock SBMS's rawData page")
    parser.add_argument(
        "--baud",
        type=int,
        default=SBMS0_BAUD_DEFAULT,
        help="--sbms0-serial: the port's speed (default %(default)s, the SBMS0's)",
    )
    parser.add_argument(
        "--simulated-bus",
        type=Path,
        metavar="SOCKET",
        help="development, with --config: the I2C bus of a simulated box served on this Unix "
        "socket (python -m edge_agent.simulator.bus_server) instead of /dev/i2c-N",
    )
    parser.add_argument(
        "--cells",
        type=int,
        default=8,
        choices=range(3, 9),
        metavar="3..8",
        help="--simulate: cells in series (default %(default)s)",
    )
    parser.add_argument(
        "--capacity",
        type=float,
        default=100.0,
        help="--simulate: the pack's Ah (default %(default)g)",
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="--simulate: the weather's seed (default %(default)s)"
    )
    parser.add_argument(
        "--heater",
        action="store_true",
        help="--simulate: PV diversion (issue 19): the array's DSSR20 heat path to a 1.6 ohm "
        "element in a 50 L water heater, switched by a type 7 output (heat1); the tank's "
        "thermistor on xT2 (diversion.tank_temperature: external2, so the state carries "
        "temperatures.heater_tank)",
    )
    parser.add_argument(
        "--start-hour",
        type=float,
        default=7.0,
        help="--simulate: the simulated hour to start at, UTC (default %(default)g)",
    )
    parser.add_argument(
        "--speed",
        type=float,
        default=1.0,
        help="--simulate: simulated seconds per real second (default %(default)g)",
    )
    parser.add_argument("--duration", type=float, help="stop after this many (simulated) hours")
    parser.add_argument(
        "--state",
        type=Path,
        help="the state database (SoC, learned values, counters; default: the configuration's "
        "storage.state_path, none with --simulate)",
    )
    parser.add_argument(
        "--agent-id", default="simulator", help="--simulate: the box's agent id (MQTT topics)"
    )
    parser.add_argument("--mqtt-host", help="--simulate: publish to this MQTT broker")
    parser.add_argument(
        "--mqtt-port", type=int, default=1883, help="--mqtt-host's port (default %(default)s)"
    )
    parser.add_argument(
        "--mqtt-protocol",
        choices=sorted(_MQTT_PROTOCOLS),
        default="5",
        help="MQTT version for --mqtt-host (3.1.1 for brokers without MQTT 5)",
    )
    parser.add_argument(
        "--record",
        type=Path,
        metavar="FILE",
        help="record what the agent reads (JSON lines, for `sbms-agent replay` and bug "
        "reports: every I2C transaction and the decoded samples; the mqtt section is left out)",
    )
    parser.add_argument(
        "--record-max-mb",
        type=float,
        default=DEFAULT_MAX_BYTES / 2**20,
        help="rotate the recording to FILE.1 past this size (%(default)g MB; an 8S box takes "
        "about 1.1 kB a sample: 95 MB a day at a sample a second)",
    )
    parser.add_argument("--quiet", action="store_true", help="no status line on the terminal")
    parser.add_argument(
        "--log-level",
        default="INFO",
        type=str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        help="what goes to the log (default %(default)s)",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    return parser


@dataclass(slots=True)
class _Setup:
    agent: Agent
    clock: Clock
    remote: RemoteControl
    mqtt: MqttSettings | None
    identity: Identity
    recorder: DataRecorder | None = None
    history: HistoryReader | None = None  # the recorder's log, read for history/get


def _run(argv: list[str]) -> int:
    parser = _run_parser()
    args = parser.parse_args(argv)
    if args.simulated_bus is not None and args.config is None:
        parser.error("--simulated-bus needs --config")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if _wants_sbms0(args):
            return _run_sbms0(args)
        setup = _simulated_setup(args) if args.simulate else _hardware_setup(args)
    except ConfigError as err:
        where = args.config or "command line"
        print(f"{where}: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    except (
        DeviceError,
        StateStoreError,
        BoxIdError,
        ConfigOverlayError,
        OSError,
        ValueError,
    ) as err:
        print(f"sbms-agent: cannot start: {err}", file=sys.stderr)
        return EXIT_HARDWARE
    interval = setup.agent.config.timing.sample_interval_s
    max_samples = None if args.duration is None else int(args.duration * 3600 / interval)
    listener = None if args.quiet else _status_printer(sys.stdout, args.speed)
    link = None
    if setup.mqtt is not None:
        link = build_link(
            setup.mqtt, setup.remote, setup.identity, history=setup.history, clock=setup.clock
        )
    for note in (*setup.agent.config.notes, *setup.agent.config.warnings):
        _LOGGER.warning("Configuration: %s", note)
    if (curve_note := built_in_curve_note(setup.agent.config)) is not None:
        _LOGGER.info("Configuration: %s", curve_note)
    systemd = SystemdNotifier()
    if systemd.watchdog_usec is not None:
        _LOGGER.info("systemd watchdog: %.0f s", systemd.watchdog_usec / 1e6)
    systemd.ready(f"{setup.agent.config.control.cell_count} cells, sampling every {interval:g} s")
    try:
        asyncio.run(
            serve(
                setup.agent,
                setup.clock,
                interval,
                link=link,
                listener=listener,
                recorder=setup.recorder,
                max_samples=max_samples,
                keep_alive=systemd.watchdog,
            )
        )
    finally:
        systemd.stopping()
        systemd.close()
    if listener is not None:
        print()
    return EXIT_OK


def _wants_sbms0(args: argparse.Namespace) -> bool:
    if args.sbms0_serial is not None or args.sbms0_url is not None:
        return True
    return args.config is not None and load_config(args.config).source.type == "sbms0"


def _sbms0_config(args: argparse.Namespace) -> AgentConfig:
    """The file's configuration, or one built from the command line's --sbms0-* options."""
    if args.config is not None:
        return load_config(args.config)
    source: dict[str, Any] = {"type": "sbms0"}
    if args.sbms0_serial is not None:
        source["serial"] = {"port": args.sbms0_serial, "baud": args.baud}
    else:
        source["http"] = {"url": args.sbms0_url}
    data: dict[str, Any] = {
        "agent_id": args.agent_id,
        "battery": {"cells": args.cells, "capacity_ah": args.capacity},
        "source": source,
    }
    if args.mqtt_host is not None:
        data["mqtt"] = {
            "host": args.mqtt_host,
            "port": args.mqtt_port,
            "protocol": _MQTT_PROTOCOLS[args.mqtt_protocol],
        }
    return parse_config(data)


def _run_sbms0(args: argparse.Namespace) -> int:
    """A stock SBMS: no I2C, no outputs, no state store; the SBMS keeps its own state."""
    from edge_agent.runtime.sbms0_runner import build_sbms0, serve_sbms0  # noqa: PLC0415

    config = _sbms0_config(args)
    clock = WallClock()
    setup = build_sbms0(config, clock, _recorder(args))
    recorder, history = _sbms0_recorder(args, config)
    link = None
    if config.mqtt is not None:
        link = build_link(
            config.mqtt, config, Identity("sbms0", _sbms0_serial(config)), history=history
        )
    listener = None if args.quiet else _status_printer(sys.stdout, 1.0)
    max_samples = None
    if args.duration is not None:
        max_samples = int(args.duration * 3600 / config.timing.sample_interval_s)
    systemd = SystemdNotifier()
    systemd.ready("reading a stock SBMS")
    try:
        asyncio.run(
            serve_sbms0(
                setup,
                clock,
                config.timing.sample_interval_s,
                link=link,
                listener=listener,
                max_samples=max_samples,
                recorder=recorder,
                keep_alive=systemd.watchdog,
            )
        )
    finally:
        systemd.stopping()
        systemd.close()
    return EXIT_OK


def _sbms0_recorder(
    args: argparse.Namespace, config: AgentConfig
) -> tuple[DataRecorder | None, HistoryReader | None]:
    """A stock SBMS keeps about a year in its own flash, but only the agent's log can back-fill
    Home Assistant: logged like a DIY box, beside --state or the config file's storage."""
    if args.state is None and args.config is None and config.storage.data_log_path is None:
        return None, None  # --sbms0-serial/--sbms0-url alone: nowhere chosen to keep files
    return _open_data_log(config.data_log, _data_log_file(config, args.state))


def _data_log_file(config: AgentConfig, state: Path | None) -> Path:
    """The configured data log, else the one beside the state database in use: `--state`
    moves it with the database."""
    storage = config.storage
    if state is not None and storage.data_log_path is None:
        storage = dataclasses.replace(storage, state_path=state)
    return storage.data_log_file


def _open_data_log(
    settings: DataLogSettings, path: Path
) -> tuple[DataRecorder | None, HistoryReader | None]:
    """The recorder and, beside it, the reader that answers history/get from its file."""
    recorder = open_recorder(settings, path)
    if recorder is None:
        return None, None
    return recorder, HistoryReader(path, settings.interval_s)


def _hardware_setup(args: argparse.Namespace) -> _Setup:
    file_config = load_config(args.config)
    state_path = args.state or file_config.storage.state_path
    overlay = ConfigOverlay(overlay_path_for(state_path))
    config, _revision = load_effective_config(file_config, overlay)
    bus, bus_name = _open_bus(config, args.simulated_bus)
    session = _recorder(args)
    # Recording: every register transaction too, so `replay` runs the real drivers again.
    bus_log = RecordingBus(bus, bus_name) if session is not None else None
    hardware = open_hardware(config.hardware, config.control.cell_count, bus_log or bus, bus_name)
    store = StateStore(state_path)
    clock = WallClock()
    agent = Agent(config, hardware, store, clock.now(), recorder=session, bus_log=bus_log)
    remote = RemoteControl(agent, config, overlay, clock.now())
    identity = Identity("diy", load_or_create_box_id(box_id_path_for(state_path)))
    recorder, history = _open_data_log(config.data_log, _data_log_file(config, args.state))
    return _Setup(agent, clock, remote, config.mqtt, identity, recorder, history)


def _recorder(args: argparse.Namespace) -> SessionRecorder | None:
    if args.record is None:
        return None
    return SessionRecorder(args.record, max_bytes=int(args.record_max_mb * 2**20))


def _replay(argv: list[str]) -> int:
    from edge_agent.diy.replay import replay_diy, replay_registers  # noqa: PLC0415
    from edge_agent.recording.read import RecordingError, read_recording  # noqa: PLC0415

    parser = argparse.ArgumentParser(
        prog="sbms-agent replay",
        description="Replay a recording (--record) through the control core: the decisions "
        "(outputs, events) of the recorded run, or of another configuration with --config. "
        "A recording with its I2C transactions from the start runs through the real drivers "
        "too, each write checked against the recorded one. "
        "Exit 0, or 2 when the file is not a valid recording (the line and the problem are "
        "named).",
    )
    parser.add_argument("file", type=Path)
    parser.add_argument(
        "--config", type=Path, help="decide with this configuration instead of the recorded one"
    )
    parser.add_argument(
        "--every", action="store_true", help="a line per sample, not only at changes"
    )
    args = parser.parse_args(argv)
    try:
        header, entries = read_recording(args.file)
        config = load_config(args.config) if args.config is not None else None
    except RecordingError as err:
        print(f"sbms-agent replay: {err}", file=sys.stderr)
        return EXIT_CONFIG
    except ConfigError as err:
        print(f"{args.config}: invalid configuration\n{err}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{args.file}: {header.source}, recorded by agent {header.agent_version or '?'}")
    if header.source == "sbms0":
        from edge_agent.sbms0.replay import replay_sbms0  # noqa: PLC0415

        reports = replay_sbms0(header, entries, config)
    elif header.bus == "start" and config is None:
        print("register transactions: replayed through the real drivers")
        reports = replay_registers(header, entries)
    else:
        if header.bus == "continued":
            print("register transactions from a rotation on: replayed from the decoded samples")
        elif header.bus == "start":
            print("another configuration: replayed from the decoded samples")
        reports = replay_diy(header, entries, config)
    previous: dict[str, bool] | None = None
    count = 0
    try:
        for report in reports:
            count += 1
            previous = _print_replayed(report, previous, every=args.every)
    except RecordingError as err:
        print(f"sbms-agent replay: {args.file}: after {count} steps: {err}", file=sys.stderr)
        return EXIT_CONFIG
    print(f"{count} decisions replayed")
    return EXIT_OK


def _print_replayed(
    report: ControlReport, previous: dict[str, bool] | None, *, every: bool
) -> dict[str, bool]:
    changed = previous is None or dict(report.outputs) != previous
    if every or changed or report.events:
        line = status_line(report)
        if report.events:
            line += " | events: " + ", ".join(event.kind.value for event in report.events)
        print(line)
    return dict(report.outputs)


def _open_bus(config: AgentConfig, simulated_bus: Path | None) -> tuple[SMBusLike, str]:
    if simulated_bus is not None:
        # A simulated box in another process (tests that kill the agent): only here does the
        # hardware path load the simulator.
        from edge_agent.simulator.bus_client import SocketSMBus  # noqa: PLC0415

        return SocketSMBus(simulated_bus), f"simulated bus {simulated_bus}"
    import smbus2  # noqa: PLC0415 - only a real battery box needs the kernel's I2C

    return smbus2.SMBus(config.hardware.i2c_bus), f"/dev/i2c-{config.hardware.i2c_bus}"


def _simulated_setup(args: argparse.Namespace) -> _Setup:
    # The simulator is only imported here: the production path never loads it.
    from edge_agent.simulator.box import BoxSpec, HeartbeatGateSpec  # noqa: PLC0415
    from edge_agent.simulator.clock import SimulatedClock  # noqa: PLC0415
    from edge_agent.simulator.harness import SimulatedSystem, simulated_config  # noqa: PLC0415
    from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec  # noqa: PLC0415

    # The box as docs/safety.md builds it: the heartbeat one-shot enables the outputs.
    # A top-balanced pack, as a balancer keeps one: the cells reach full within about 10 mV
    # of each other (with the default random spread, a new unbalanced pack's 250 mV).
    spec = BoxSpec.for_cells(
        args.cells,
        capacity_ah=args.capacity,
        seed=args.seed,
        heartbeat_gate=HeartbeatGateSpec(),
        top_balanced=True,
    )
    spec = dataclasses.replace(spec, start=spec.start + args.start_hour * 3600)
    if args.heater:
        # The element takes the primary array when the battery is full; pin 5 of the expander.
        spec = dataclasses.replace(
            spec,
            wiring=dataclasses.replace(spec.wiring, heat_primary_pin=5),
            # A small tank, so a sunny afternoon's surplus shows as degrees.
            heat=HeatPathSpec(
                tank=WaterTankSpec(volume_l=50.0, draws=((7.0, 10.0), (19.5, 20.0))),
                tank_sensor_on_xt2=True,
            ),
        )
    store = StateStore(args.state) if args.state is not None else None
    overlay = ConfigOverlay(overlay_path_for(args.state)) if args.state is not None else None
    config = dataclasses.replace(simulated_config(spec), agent_id=args.agent_id)
    if overlay is not None:
        config, _revision = load_effective_config(config, overlay)
    system = SimulatedSystem(spec, config, store, recorder=_recorder(args))
    clock = SimulatedClock(system.box, args.speed)
    remote = RemoteControl(system.agent, config, overlay, clock.now())
    mqtt = None
    if args.mqtt_host is not None:
        mqtt = MqttSettings(
            host=args.mqtt_host,
            port=args.mqtt_port,
            agent_id=args.agent_id,
            protocol=_MQTT_PROTOCOLS[args.mqtt_protocol],
        )
    # With the agent id: two simulated boxes on one broker are two boxes to Home Assistant.
    identity = Identity("simulator", f"simulator-{args.agent_id}-{args.cells}s-seed{args.seed}")
    recorder = history = None  # the simulator keeps a data log only beside a --state database
    if args.state is not None:
        recorder, history = _open_data_log(config.data_log, _data_log_file(config, args.state))
    return _Setup(system.agent, clock, remote, mqtt, identity, recorder, history)


def _sbms0_serial(config: AgentConfig) -> str:
    """A stock SBMS sends no serial: its port (a /dev/serial/by-id name carries the USB
    adapter's own serial) or its board's address names it, and differs between two SBMS."""
    serial, http = config.source.serial, config.source.http
    where = serial.port.rsplit("/", 1)[-1] if serial is not None else (http.url if http else "")
    return "sbms0-" + (re.sub(r"[^A-Za-z0-9]+", "-", where.removeprefix("http://")).strip("-"))


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
