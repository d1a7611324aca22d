"""Phase 2 of validation: rules across values (threshold order, address ranges, pin clashes,
timing against the heartbeat, the remote window inside the LFP envelope), each problem as a
"key.path: rule" line."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from edge_agent.config.model import (
    CELL_COUNT_RANGE,
    HEARTBEAT_LINE,
    HEARTBEAT_MARGIN,
    INA_ADDRESS_RANGE,
    ISL_ADDRESSES,
    MCP_ADDRESS_RANGE,
    MCP_PIN_RANGE,
    NAME_PATTERN,
    NAME_RULE,
    AgentConfig,
    HardwareSettings,
    OutputPinSettings,
    ShuntSettings,
    SourceSettings,
)
from edge_agent.control.envelope import (
    SAMPLE_INTERVAL,
    Range,
    envelope_problems,
    envelope_range,
)
from edge_agent.control.extio import ALLOWED_TYPES, diversion_problems, diverts
from edge_agent.control.ocv_curve import curve_problem
from edge_agent.control.settings import (
    ControlSettings,
    DiversionSettings,
    OutputSettings,
    OutputType,
    Wiring,
)


def validate_remote_window(
    file_windows: Mapping[str, tuple[float, float]], control: ControlSettings
) -> list[str]:
    """A window may narrow the envelope, never widen it."""
    problems: list[str] = []
    if not control.soc.capacity_ah > 0.0:
        return problems  # named by the envelope check; C-rate ranges cannot be scaled
    for path, (low, high) in file_windows.items():
        allowed = envelope_range(path, control)
        if not Range(low, high).within(allowed):
            problems.append(
                f"remote_window.{path}: must lie within {allowed.describe()}, the LFP safety "
                f"envelope (got [{low:g}, {high:g}])"
            )
    return problems


def validate_control_settings(settings: ControlSettings) -> list[str]:
    """Every rule the control core relies on, as "key.path: problem" lines (empty = valid):
    the LFP safety envelope (control.envelope: ranges, order, hysteresis widths and the gaps
    between each limit and its lockout) and the output rules (types allowed by the wiring).

    Paths use the YAML names, so remote configuration can report them the same way.
    """
    problems: list[str] = []
    low, high = CELL_COUNT_RANGE
    if not low <= settings.cell_count <= high:
        problems.append(
            f"battery.cells: must be between {low} and {high} (got {settings.cell_count})"
        )
    if settings.soc.capacity_ah > 0.0:  # C-rate ranges scale with it; a bad one is named first
        problems += envelope_problems(settings)
    else:
        problems.append(
            f"battery.capacity_ah: must be greater than 0 (got {settings.soc.capacity_ah:g})"
        )
    curve = settings.soc.ocv_curve
    if curve is not None and (problem := curve_problem(curve)) is not None:
        problems.append(f"battery.ocv_curve: {problem}")
    problems += _check_control_outputs(settings.outputs)
    problems += _check_diversion(settings.diversion, settings.outputs)
    return problems


# The clear-sky model's site (docs/diversion.md): degrees, north and east positive; azimuth
# is where the panels face, clockwise from north.
_SITE_RANGES = {
    "latitude_deg": (-90.0, 90.0),
    "longitude_deg": (-180.0, 180.0),
    "tilt_deg": (0.0, 90.0),
    "azimuth_deg": (0.0, 360.0),
}
_ARRAY_VALUES = ("rated_current_a", "open_circuit_v", "heater_ohm")


def _check_diversion(diversion: DiversionSettings, outputs: Sequence[OutputSettings]) -> list[str]:
    """The `diversion` section: the site within the globe, each array named once and by a
    charge-wired output, its sizes positive (dead_time_s is in the envelope)."""
    problems: list[str] = []
    for key, (low, high) in _SITE_RANGES.items():
        value = getattr(diversion, key)
        if value is not None:
            problems += _between(f"diversion.{key}", value, low, high, " degrees")
    wirings = {output.name: output.wiring for output in outputs}
    seen: dict[str, int] = {}
    for index, array in enumerate(diversion.arrays):
        path = f"diversion.arrays[{index}]"
        if wirings.get(array.output) is not Wiring.CHARGE:
            problems.append(
                f"{path}.output: must name a charge-wired output, the one switching the "
                f"array's DSSR20s (got {array.output!r})"
            )
        if array.output in seen:
            problems.append(
                f"{path}.output: {array.output!r} is already described by "
                f"diversion.arrays[{seen[array.output]}]"
            )
        seen.setdefault(array.output, index)
        for key in _ARRAY_VALUES:
            value = getattr(array, key)
            if value is not None:
                problems += _at_least(f"{path}.{key}", value, 0.0, inclusive=False)
    return problems


def validate_heat_shunt(config: AgentConfig) -> list[str]:
    """A heat-path shunt measures what a diversion output or a described array heats:
    without either there is no diversion to measure (docs/diversion.md)."""
    control = config.control
    if config.hardware.heat_shunt is None:
        return []
    if any(diverts(output) for output in control.outputs) or control.diversion.arrays:
        return []
    return [
        "heat_shunt: measures the heat paths of a diversion: needs a diversion output (type 7, "
        "wiring heater) or the array it heats from under diversion.arrays"
    ]


def _between(path: str, value: float, low: float, high: float, unit: str = "") -> list[str]:
    if low <= value <= high:
        return []
    return [f"{path}: must be between {low:g} and {high:g}{unit} (got {value:g})"]


def _at_least(path: str, value: float, minimum: float, *, inclusive: bool = True) -> list[str]:
    if value > minimum or (inclusive and value == minimum):
        return []
    rule = "at least" if inclusive else "greater than"
    return [f"{path}: must be {rule} {minimum:g} (got {value:g})"]


def _check_control_outputs(outputs: Sequence[OutputSettings]) -> list[str]:
    problems: list[str] = []
    first_index: dict[str, int] = {}
    for index, output in enumerate(outputs):
        path = f"outputs[{index}]"
        if not NAME_PATTERN.match(output.name):
            problems.append(f"{path}.name: {NAME_RULE} (got {output.name!r})")
        if output.name in first_index:
            problems.append(
                f"{path}.name: duplicate output name {output.name!r} "
                f"(also outputs[{first_index[output.name]}])"
            )
        else:
            first_index[output.name] = index
        allowed = ALLOWED_TYPES[output.wiring]
        if output.type not in allowed:
            problems.append(
                f"{path}.type: an output wired to {output.wiring.value} may be type "
                f"{types_text(allowed)} (got {int(output.type)})"
            )
    problems += diversion_problems(outputs)
    types = [output.type for output in outputs]
    if OutputType.DUAL_PV in types and OutputType.HVD not in types:
        index = types.index(OutputType.DUAL_PV)
        problems.append(
            f"outputs[{index}].type: type 6 (dual PV) needs at least one type 1 (HVD) output"
        )
    return problems


def types_text(types: frozenset[OutputType]) -> str:
    numbers = sorted(int(output_type) for output_type in types)
    if len(numbers) == 1:
        return str(numbers[0])
    return ", ".join(str(number) for number in numbers[:-1]) + f" or {numbers[-1]}"


def validate_hardware(hardware: HardwareSettings) -> list[str]:
    problems = _at_least("i2c_bus", hardware.i2c_bus, 0)
    monitor = hardware.cell_monitor
    if monitor.address not in ISL_ADDRESSES:
        problems.append(
            f"cell_monitor.address: must be 0x28 or 0x29 for {monitor.chip} "
            f"(got {_hex(monitor.address)})"
        )
    shunts = [("battery_shunt", hardware.battery_shunt)]
    if hardware.pv_shunt is not None:
        shunts.append(("pv_shunt", hardware.pv_shunt))
    if hardware.heat_shunt is not None:
        shunts.append(("heat_shunt", hardware.heat_shunt))
    for path, shunt in shunts:
        problems += _check_shunt(path, shunt)
    for index, (path, shunt) in enumerate(shunts):
        for other, earlier in shunts[:index]:
            if shunt.address == earlier.address:
                problems.append(
                    f"{path}.address: must differ from {other}.address (both {_hex(shunt.address)})"
                )
    lines = hardware.outputs
    if hardware.heartbeat is not None:
        lines = (*lines, hardware.heartbeat.line)
    problems += _check_output_pins(lines)
    return problems


def _hex(address: int) -> str:
    return f"0x{address:02X}"


def _check_shunt(path: str, shunt: ShuntSettings) -> list[str]:
    problems: list[str] = []
    low, high = INA_ADDRESS_RANGE
    if not low <= shunt.address <= high:
        problems.append(
            f"{path}.address: must be between {_hex(low)} and {_hex(high)} for {shunt.chip} "
            f"(got {_hex(shunt.address)})"
        )
    problems += _at_least(f"{path}.rated_current_a", shunt.rated_current_a, 0.0, inclusive=False)
    problems += _at_least(f"{path}.rated_millivolts", shunt.rated_millivolts, 0.0, inclusive=False)
    return problems


def _check_output_pins(pins: Sequence[OutputPinSettings]) -> list[str]:
    problems: list[str] = []
    claimed: dict[tuple[str, str], str] = {}
    for index, pin in enumerate(pins):
        path = "heartbeat" if pin.name == HEARTBEAT_LINE else f"outputs[{index}]"
        if pin.driver == "mcp23008":
            problems += _check_mcp_pin(path, pin)
            key = ("mcp23008", f"{_hex(pin.address or 0)} pin {pin.pin}")
        else:
            key = ("gpiod", f"{pin.chip} line {pin.line}")
        if key in claimed:
            problems.append(f"{path}: {key[0]} {key[1]} is already used by {claimed[key]}")
        else:
            claimed[key] = path
    return problems


def _check_mcp_pin(path: str, pin: OutputPinSettings) -> list[str]:
    problems: list[str] = []
    low, high = MCP_ADDRESS_RANGE
    if pin.address is None or not low <= pin.address <= high:
        got = "none" if pin.address is None else _hex(pin.address)
        problems.append(
            f"{path}.address: must be between {_hex(low)} and {_hex(high)} for mcp23008 (got {got})"
        )
    first, last = MCP_PIN_RANGE
    if pin.pin is None or not first <= pin.pin <= last:
        problems.append(f"{path}.pin: must be between {first} and {last} (got {pin.pin})")
    return problems


def validate_source(source: SourceSettings, clean: Mapping[str, Any]) -> list[str]:
    if source.type == "i2c":
        return [
            f"source.{key}: only for type sbms0"
            for key in ("serial", "http", "stale_after_s", "require_checksum")
            if key in clean.get("source", {})
        ]
    problems: list[str] = []
    if (source.serial is None) == (source.http is None):
        problems.append("source: type sbms0 needs exactly one of serial or http")
    if "outputs" in clean:
        problems.append("outputs: not with source type sbms0 (the SBMS drives its own outputs)")
    if clean.get("diversion", {}).get("tank_temperature") is not None:
        problems.append(
            "diversion.tank_temperature: not with source type sbms0 (a stock SBMS has no xT2 "
            "input, external2, to read a tank with)"
        )
    if source.serial is not None:
        problems += _at_least("source.serial.baud", source.serial.baud, 1200)
    if source.http is not None:
        http = source.http
        if not re.match(r"^https?://[^/\s]+", http.url):
            problems.append(
                f"source.http.url: must be an http:// or https:// URL (got {http.url!r})"
            )
        problems += _between("source.http.interval_s", http.interval_s, 0.1, 3600.0, " s")
        problems += _between("source.http.timeout_s", http.timeout_s, 0.1, 60.0, " s")
    problems += _between("source.stale_after_s", source.stale_after_s, 1.0, 3600.0, " s")
    if source.http is not None and source.stale_after_s < 2 * source.http.interval_s:
        problems.append(
            "source.stale_after_s: must be at least 2 x source.http.interval_s "
            f"(got {source.stale_after_s:g} < {2 * source.http.interval_s:g})"
        )
    return problems


def validate_timing(config: AgentConfig) -> list[str]:
    timing = config.timing
    problems = [
        *_between(
            "timing.sample_interval_s",
            timing.sample_interval_s,
            SAMPLE_INTERVAL.low,
            SAMPLE_INTERVAL.high,
            " s",
        ),
        *_at_least(
            "timing.state_save_interval_s", timing.state_save_interval_s, 0.0, inclusive=False
        ),
        *_at_least("timing.status_interval_s", timing.status_interval_s, 0.0, inclusive=False),
    ]
    stale_after_s = config.control.stale_after_s
    if timing.sample_interval_s > 0 and stale_after_s < 2 * timing.sample_interval_s:
        problems.append(
            "timing.stale_after_s: must be at least 2 x timing.sample_interval_s "
            f"(got {stale_after_s:g} < {2 * timing.sample_interval_s:g})"
        )
    heartbeat = config.hardware.heartbeat
    if heartbeat is not None and (
        not heartbeat.hold_s >= HEARTBEAT_MARGIN * timing.sample_interval_s
    ):
        problems.append(
            f"heartbeat.hold_s: must be at least {HEARTBEAT_MARGIN:g} x "
            "timing.sample_interval_s, or the outputs drop between two samples "
            f"(got {heartbeat.hold_s:g} < {HEARTBEAT_MARGIN * timing.sample_interval_s:g})"
        )
    if heartbeat is not None and heartbeat.hold_s > 10.0:
        problems.append(
            f"heartbeat.hold_s: at most 10 s, the longest a dead agent may leave outputs on "
            f"(got {heartbeat.hold_s:g})"
        )
    return problems


def validate_data_log(config: AgentConfig) -> list[str]:
    # Intervals align to wall-clock multiples: a whole number of seconds up to an hour.
    data_log = config.data_log
    problems = [
        *_between("data_log.interval_s", data_log.interval_s, 10, 3600, " s"),
        *_between("data_log.retention_days", data_log.retention_days, 1, 3660, " days"),
    ]
    if data_log.interval_s < config.timing.sample_interval_s:
        problems.append(
            "data_log.interval_s: must be at least timing.sample_interval_s "
            f"(got {data_log.interval_s} < {config.timing.sample_interval_s:g})"
        )
    return problems
