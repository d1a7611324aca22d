"""`sbms-agent probe`: bring-up of a new box, one pass, plain text (fine over SSH).

What it does, in order, printing as it goes:

1. the host: /dev/i2c-N and the GPIO chips the outputs use (`host_check`), with the fix;
2. the bus: every address that answers, and what each configured chip turned out to be,
   identified by its ID registers (INA228 0x3E/0x3F, INA226 0xFE/0xFF; the ISL94203 has no ID
   register: a valid cell-configuration byte at 0x49 and readable status bytes; MCP23008: its
   unimplemented IOCON bits read 0 and IODIR is 0xFF after power-on);
3. one reading: cells (all eight inputs, so a wrong cell count and an open sense wire are
   told apart), currents, temperatures and flags, with sanity checks;
4. the ISL94203 thresholds the agent would write next to what the chip holds;
5. only with `pulse_outputs`, on a terminal, after the person types "yes": each output on for
   a moment, the heartbeat pulsing with it.

Reads are what the agent does at start: the shunt monitors are calibrated (`start`, which also
clears the INA228's charge counter), the cell monitor is only read, never configured. Run it
with the agent stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TextIO

from edge_agent.config import HEARTBEAT_LINE, AgentConfig, ShuntSettings
from edge_agent.diy.hardware import open_hardware, open_shunt
from edge_agent.diy.host_check import Area, Finding, Status
from edge_agent.drivers.bus import DeviceError, SMBusLike
from edge_agent.drivers.ina2xx import (
    INA226_DIE_ID,
    INA226_DIE_ID_VALUE,
    INA226_MANUFACTURER_ID,
    INA228_DEVICE,
    INA228_DEVICE_ID,
    INA228_MANUFACTURER_ID,
    TI_MANUFACTURER_ID,
    ShuntReading,
)
from edge_agent.drivers.isl94203 import (
    CELL_CONFIG_MASKS,
    CELL_VOLTS_PER_CODE,
    CODE_MASK,
    REG_CBMAX,
    REG_CBMAXDV,
    REG_CBMIN,
    REG_CBMINDV,
    REG_CELL1,
    REG_CELL_CONFIG,
    REG_EOC,
    REG_OV,
    REG_OV_DELAY,
    REG_OVLO,
    REG_OVR,
    REG_STATUS0,
    REG_UV,
    REG_UV_DELAY,
    REG_UVLO,
    REG_UVR,
    CellMonitorReading,
    Isl94203,
    cell_inputs,
    configuration_codes,
)

EXIT_OK = 0
EXIT_CONFIG = 2  # the configuration (or the command line) is invalid
EXIT_HOST = 3  # I2C or GPIO not enabled or not accessible
EXIT_CHIPS = 4  # a configured chip is missing, at another address, or another chip
EXIT_READINGS = 5  # the chips answer, but a reading shows a wiring or rating problem
EXIT_OUTPUTS = 6  # the output pulse was refused (no terminal, not confirmed) or failed
_EXIT_BY_AREA = {
    Area.HOST: EXIT_HOST,
    Area.CHIPS: EXIT_CHIPS,
    Area.READINGS: EXIT_READINGS,
    Area.OUTPUTS: EXIT_OUTPUTS,
}

SCAN_FIRST, SCAN_LAST = 0x08, 0x77  # the addresses i2cdetect scans
# A cell input below this carries no cell: a missing sense wire, or no cell there at all.
DEAD_CELL_V = 0.5
# Above any single LFP cell: the input spans two cells (the sense wire below it is off).
TWO_CELLS_V = 4.5
CELL_RANGE_V = (2.0, 3.8)  # a healthy LFP cell at rest or under charge
SATURATION_FRACTION = 0.99  # of the INA's full-scale current
TEMPERATURE_RANGE_C = (-30.0, 70.0)
SHUNT_SETTLE_S = 0.3  # a first conversion after calibration (64 x 2 x 1.1 ms, twice over)
CONCERNING_FLAGS = ("OVF", "OVLOF", "UVF", "UVLOF", "IOTF", "COCF", "DOCF", "DSCF", "CELLF")
MCP_IOCON, MCP_IODIR = 0x05, 0x00
MCP_IOCON_UNIMPLEMENTED = 0xC1  # bits 7, 6 and 0 read 0

_CHIP_NAMES = {"isl94203": "ISL94203", "ina228": "INA228", "ina226": "INA226"}
_THRESHOLD_NAMES = {
    REG_OV: "OV (the agent's ovlo)",
    REG_OVR: "OV release",
    REG_UV: "UV (the agent's uvlo)",
    REG_UVR: "UV release",
    REG_OVLO: "OVLO (chip lockout)",
    REG_UVLO: "UVLO (chip lockout)",
    REG_EOC: "EOC",
    REG_CBMIN: "balance min cell",
    REG_CBMAX: "balance max cell",
    REG_CBMINDV: "balance min delta",
    REG_CBMAXDV: "balance max delta",
    REG_OV_DELAY: "OV delay",
    REG_UV_DELAY: "UV delay",
}
_DELAY_UNITS = ("us", "ms", "s", "min")


@dataclass(frozen=True, slots=True)
class ExpectedChip:
    role: str  # the configuration key: cell_monitor, battery_shunt, pv_shunt, outputs
    chip: str  # ISL94203, INA228, INA226, MCP23008
    address: int


@dataclass(frozen=True, slots=True)
class Identity:
    chip: str  # ISL94203, INA228, INA226, MCP23008, or "unknown"
    detail: str


@dataclass(slots=True)
class ProbeOptions:
    pulse_outputs: bool = False
    pulse_s: float = 1.0
    shunt_settle_s: float = SHUNT_SETTLE_S
    scan: bool = True


class Printer:
    """Prints findings as they come and remembers them for the summary and exit code."""

    def __init__(self, out: TextIO) -> None:
        self._out = out
        self.findings: list[Finding] = []

    def line(self, text: str = "") -> None:
        self._out.write(text + "\n")
        self._out.flush()

    def section(self, title: str) -> None:
        self.line()
        self.line(title)

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)
        label = finding.status.value.upper() if finding.status is not Status.FAIL else "FAIL"
        code = f"{finding.code}: " if finding.code else ""
        self.line(f"  {label:<5} {code}{finding.text}")
        for fix in finding.fix:
            self.line(f"        fix: {fix}")

    def failed(self, area: Area | None = None) -> bool:
        return any(
            f.status is Status.FAIL and (area is None or f.area is area) for f in self.findings
        )

    def exit_code(self) -> int:
        for area in (Area.HOST, Area.CHIPS, Area.READINGS, Area.OUTPUTS):
            if self.failed(area):
                return _EXIT_BY_AREA[area]
        return EXIT_OK

    def summary(self) -> int:
        problems = [f for f in self.findings if f.status is Status.FAIL]
        warnings = [f for f in self.findings if f.status is Status.WARN]
        code = self.exit_code()
        self.line()
        if not problems:
            extra = f" ({len(warnings)} warnings above)" if warnings else ""
            self.line(f"Result: OK{extra}: the box is ready for the agent (exit {code})")
            return code
        self.line(f"Result: {len(problems)} problem(s) (exit {code}):")
        for finding in problems:
            self.line(f"  - {finding.code}: {finding.text}")
        return code


def expected_chips(config: AgentConfig) -> list[ExpectedChip]:
    hardware = config.hardware
    chips = [
        ExpectedChip("cell_monitor", "ISL94203", hardware.cell_monitor.address),
        ExpectedChip(
            "battery_shunt",
            _CHIP_NAMES[hardware.battery_shunt.chip],
            hardware.battery_shunt.address,
        ),
    ]
    for role, shunt in (("pv_shunt", hardware.pv_shunt), ("heat_shunt", hardware.heat_shunt)):
        if shunt is not None:
            chips.append(ExpectedChip(role, _CHIP_NAMES[shunt.chip], shunt.address))
    pins = list(hardware.outputs)
    if hardware.heartbeat is not None:
        pins.append(hardware.heartbeat.line)
    expanders = sorted({p.address for p in pins if p.driver == "mcp23008" and p.address})
    chips.extend(ExpectedChip("outputs", "MCP23008", address) for address in expanders)
    return chips


def gpio_chips(config: AgentConfig) -> list[str]:
    """The GPIO chips (labels or paths) the outputs and the heartbeat use."""
    pins = list(config.hardware.outputs)
    if config.hardware.heartbeat is not None:
        pins.append(config.hardware.heartbeat.line)
    return sorted({p.chip for p in pins if p.driver == "gpiod" and p.chip is not None})


def answers(bus: SMBusLike, address: int) -> bool:
    """Something acknowledges `address` (a register-0 read, like `i2cdetect -r`)."""
    try:
        bus.read_byte_data(address, 0x00)
    except OSError:
        return False
    return True


def scan(bus: SMBusLike) -> list[int]:
    return [address for address in range(SCAN_FIRST, SCAN_LAST + 1) if answers(bus, address)]


def identify(bus: SMBusLike, address: int) -> Identity:
    """Which of the agent's chips answers at `address`, by its ID registers (reads only)."""
    try:
        manufacturer = _read_u16(bus, address, INA228_MANUFACTURER_ID)
        device_id = _read_u16(bus, address, INA228_DEVICE_ID)
        if manufacturer == TI_MANUFACTURER_ID and device_id >> 4 == INA228_DEVICE:
            return Identity(
                "INA228", f"manufacturer 0x{manufacturer:04X}, device 0x{device_id:04X}"
            )
        manufacturer = _read_u16(bus, address, INA226_MANUFACTURER_ID)
        die = _read_u16(bus, address, INA226_DIE_ID)
        if manufacturer == TI_MANUFACTURER_ID and die == INA226_DIE_ID_VALUE:
            return Identity("INA226", f"manufacturer 0x{manufacturer:04X}, die 0x{die:04X}")
        cell_config = bus.read_byte_data(address, REG_CELL_CONFIG)
        if cell_config in CELL_CONFIG_MASKS.values():
            for offset in range(4):
                bus.read_byte_data(address, REG_STATUS0 + offset)
            cells = _count_for_mask(cell_config)
            return Identity(
                "ISL94203", f"cell configuration 0x49 = 0x{cell_config:02X} ({cells} cells)"
            )
        iocon = bus.read_byte_data(address, MCP_IOCON)
        iodir = bus.read_byte_data(address, MCP_IODIR)
    except OSError as err:
        return Identity("unknown", f"a read failed: {err}")
    if not iocon & MCP_IOCON_UNIMPLEMENTED:
        state = "power-on state" if iodir == 0xFF else "some pins are outputs"
        return Identity("MCP23008", f"IOCON 0x{iocon:02X}, IODIR 0x{iodir:02X}, {state}")
    return Identity("unknown", "no INA228/INA226 ID, no ISL94203 cell configuration")


def run_probe(
    config: AgentConfig,
    bus: SMBusLike,
    bus_name: str,
    printer: Printer,
    *,
    options: ProbeOptions,
    stdin: TextIO,
    sleep: Callable[[float], None] = time.sleep,
) -> int:
    """The chips, readings, thresholds and (on request) outputs; the host is checked before
    (the caller opens the bus). Returns the exit code."""
    expected = expected_chips(config)
    printer.section(f"I2C bus {bus_name}")
    present = scan(bus) if options.scan else [chip.address for chip in expected]
    if options.scan:
        listed = " ".join(f"0x{a:02X}" for a in present) or "none"
        printer.line(f"  answering addresses: {listed}")
    identities = {address: identify(bus, address) for address in present}
    _check_chips(expected, identities, printer)
    if printer.failed(Area.CHIPS):
        printer.line()
        printer.line("Readings skipped: fix the chips above first.")
        return printer.summary()
    reading = _read_everything(config, bus, bus_name, printer, options=options, sleep=sleep)
    if reading is not None:
        _show_thresholds(config, bus, printer)
    if options.pulse_outputs:
        _pulse_outputs(config, bus, bus_name, printer, options=options, stdin=stdin, sleep=sleep)
    else:
        _list_outputs(config, printer)
    return printer.summary()


# -- chips ------------------------------------------------------------------------------------


def _check_chips(
    expected: Sequence[ExpectedChip], identities: dict[int, Identity], printer: Printer
) -> None:
    printer.section("Chips")
    claimed = {chip.address for chip in expected}
    used_elsewhere: set[int] = set()
    for chip in expected:
        where = f"0x{chip.address:02X} {chip.role}"
        found = identities.get(chip.address)
        if found is not None and found.chip == chip.chip:
            printer.add(Finding(Status.OK, Area.CHIPS, f"{where}: {found.chip} ({found.detail})"))
            continue
        if found is not None:
            printer.add(
                Finding(
                    Status.FAIL,
                    Area.CHIPS,
                    f"{where}: the configuration says {chip.chip}, but a {found.chip} answers "
                    f"there ({found.detail})",
                    "wrong-chip",
                    (_chip_fix(chip, found),),
                )
            )
            continue
        elsewhere = [
            address
            for address, identity in sorted(identities.items())
            if identity.chip == chip.chip and address not in claimed | used_elsewhere
        ]
        if elsewhere:
            address = elsewhere[0]
            used_elsewhere.add(address)
            printer.add(
                Finding(
                    Status.FAIL,
                    Area.CHIPS,
                    f"{where}: nothing answers at 0x{chip.address:02X}, but a {chip.chip} "
                    f"answers at 0x{address:02X}",
                    "wrong-address",
                    (
                        f"set {_address_key(chip)} to 0x{address:02X} in the configuration, or "
                        "check the chip's address pins (docs/wiring.md)",
                    ),
                )
            )
            continue
        printer.add(
            Finding(
                Status.FAIL,
                Area.CHIPS,
                f"{where}: no {chip.chip} answers at 0x{chip.address:02X} (nothing "
                "acknowledges the address)",
                "missing-chip",
                ("check its supply, SDA/SCL and ground, and its address pins (docs/wiring.md)",),
            )
        )
    for address, identity in sorted(identities.items()):
        if address not in claimed and address not in used_elsewhere:
            printer.add(
                Finding(
                    Status.INFO,
                    Area.CHIPS,
                    f"0x{address:02X}: {identity.chip} ({identity.detail}), not in the "
                    "configuration",
                )
            )


def _chip_fix(chip: ExpectedChip, found: Identity) -> str:
    shunts = ("battery_shunt", "pv_shunt", "heat_shunt")
    if chip.role in shunts and found.chip in ("INA228", "INA226"):
        return f"set {chip.role}.chip: {found.chip.lower()} in the configuration"
    return "check which chip sits at this address and the address pins (docs/wiring.md)"


def _address_key(chip: ExpectedChip) -> str:
    if chip.role == "outputs":
        return "the outputs' (and heartbeat's) address"
    return f"{chip.role}.address"


# -- one reading ------------------------------------------------------------------------------


def _read_everything(
    config: AgentConfig,
    bus: SMBusLike,
    bus_name: str,
    printer: Printer,
    *,
    options: ProbeOptions,
    sleep: Callable[[float], None],
) -> CellMonitorReading | None:
    hardware = config.hardware
    cell_count = config.control.cell_count
    monitor = Isl94203(bus, bus_name, cell_count=cell_count, address=hardware.cell_monitor.address)
    printer.section("Readings")
    try:
        chip_count = monitor.verify()
        reading = monitor.read()
        inputs = [
            (bus.read_word_data(hardware.cell_monitor.address, REG_CELL1 + 2 * i) & CODE_MASK)
            * CELL_VOLTS_PER_CODE
            for i in range(8)
        ]
        shunts = _read_shunts(config, bus, bus_name, options, sleep)
    except (DeviceError, OSError) as err:
        printer.add(Finding(Status.FAIL, Area.READINGS, f"reading failed: {err}", "read-failed"))
        return None
    _show_cells(config, chip_count, reading, inputs, printer)
    for role, settings, shunt_reading, max_a in shunts:
        _show_shunt(
            role, settings, shunt_reading, max_current_a=max_a, cells=reading, printer=printer
        )
    _show_temperatures(config, reading, printer)
    _show_flags(reading, printer)
    return reading


def _read_shunts(
    config: AgentConfig,
    bus: SMBusLike,
    bus_name: str,
    options: ProbeOptions,
    sleep: Callable[[float], None],
) -> list[tuple[str, ShuntSettings, ShuntReading, float]]:
    roles = [("battery_shunt", config.hardware.battery_shunt)]
    if config.hardware.pv_shunt is not None:
        roles.append(("pv_shunt", config.hardware.pv_shunt))
    monitors = [(role, settings, open_shunt(bus, bus_name, settings)) for role, settings in roles]
    if options.shunt_settle_s > 0:
        sleep(options.shunt_settle_s)  # a first averaged conversion with the new calibration
    now = time.time()
    return [
        (role, settings, monitor.read(now), monitor.max_current_a)
        for role, settings, monitor in monitors
    ]


def _show_cells(
    config: AgentConfig,
    chip_count: int,
    reading: CellMonitorReading,
    inputs: Sequence[float],
    printer: Printer,
) -> None:
    count = config.control.cell_count
    wanted = cell_inputs(CELL_CONFIG_MASKS[count])
    printer.line(
        "  cells: "
        + "  ".join(f"{i + 1}:{v:.3f}" for i, v in enumerate(reading.cell_voltages))
        + f" V   (sum {sum(reading.cell_voltages):.2f} V)"
    )
    printer.line("  inputs VC1-VC8: " + " ".join(f"{v:.3f}" for v in inputs) + " V")
    if chip_count != count:
        printer.add(
            Finding(
                Status.WARN,
                Area.READINGS,
                f"the chip's cell configuration (0x49, from its EEPROM) is for {chip_count} "
                f"cells; the agent writes {count} into its RAM at start",
            )
        )
    live = tuple(i for i, volts in enumerate(inputs) if volts >= DEAD_CELL_V)
    doubled = [
        (cell, volts)
        for cell, (i, volts) in enumerate(zip(wanted, reading.cell_voltages, strict=True), 1)
        if volts > TWO_CELLS_V and i in live
    ]
    other_count = next(
        (n for n, mask in CELL_CONFIG_MASKS.items() if cell_inputs(mask) == live and n != count),
        None,
    )
    if not doubled and other_count is not None:
        printer.add(
            Finding(
                Status.FAIL,
                Area.READINGS,
                f"the inputs carry {other_count} cells (VC"
                + ",".join(str(i + 1) for i in live)
                + f"), the configuration says battery.cells: {count}",
                "wrong-cell-count",
                (
                    f"set battery.cells: {other_count}, or wire the cells to the inputs "
                    f"docs/wiring.md gives for {count} cells",
                ),
            )
        )
        return
    problems = False
    for cell, (i, volts) in enumerate(zip(wanted, reading.cell_voltages, strict=True), 1):
        if volts < DEAD_CELL_V:
            problems = True
            printer.add(
                Finding(
                    Status.FAIL,
                    Area.READINGS,
                    f"cell {cell} (input VC{i + 1}) reads {volts:.3f} V: a disconnected sense "
                    "wire (or no cell there)",
                    "sense-wire",
                    (f"check the sense wire to the top of cell {cell} and its fuse/resistor",),
                )
            )
    for cell, volts in doubled:
        problems = True
        printer.add(
            Finding(
                Status.FAIL,
                Area.READINGS,
                f"cell {cell} reads {volts:.3f} V, more than one LFP cell: its input spans two "
                "cells, so a sense wire below it is off",
                "sense-wire",
                (f"check the sense wires of cells {cell - 1} and {cell}",),
            )
        )
    stray = [i for i in live if i not in wanted]
    if stray:
        problems = True
        printer.add(
            Finding(
                Status.FAIL,
                Area.READINGS,
                "inputs "
                + ", ".join(f"VC{i + 1}" for i in stray)
                + f" carry a voltage but are not used for {count} cells",
                "wrong-cell-count",
                ("compare the cell wiring with docs/wiring.md",),
            )
        )
    if "OPENF" in reading.flags:
        problems = True
        printer.add(
            Finding(
                Status.FAIL,
                Area.READINGS,
                "the chip reports an open sense wire (OPENF)",
                "sense-wire",
            )
        )
    low, high = CELL_RANGE_V
    for cell, volts in enumerate(reading.cell_voltages, 1):
        if DEAD_CELL_V <= volts <= TWO_CELLS_V and not low <= volts <= high:
            printer.add(
                Finding(
                    Status.WARN,
                    Area.READINGS,
                    f"cell {cell} reads {volts:.3f} V, outside {low}-{high} V for an LFP cell",
                )
            )
    if not problems:
        printer.add(
            Finding(
                Status.OK,
                Area.READINGS,
                f"{count} cells, {min(reading.cell_voltages):.3f}-"
                f"{max(reading.cell_voltages):.3f} V",
            )
        )


def _show_shunt(
    role: str,
    settings: ShuntSettings,
    reading: ShuntReading,
    *,
    max_current_a: float,
    cells: CellMonitorReading,
    printer: Printer,
) -> None:
    rating = f"{settings.rated_current_a:g} A / {settings.rated_millivolts:g} mV"
    printer.line(
        f"  {role} ({settings.chip.upper()} 0x{settings.address:02X}, {rating}): "
        f"{reading.current_a:+.2f} A, bus {reading.bus_voltage_v:.2f} V "
        f"(measures up to +-{max_current_a:.0f} A)"
    )
    if abs(reading.current_a + settings.zero_offset_a) >= SATURATION_FRACTION * max_current_a:
        printer.add(
            Finding(
                Status.FAIL,
                Area.READINGS,
                f"{role} reads {reading.current_a:+.1f} A, the ADC's full scale: the shunt drops "
                f"more than a {rating} shunt would (wrong rating in the configuration, or a "
                "short across the shunt)",
                "saturated-shunt",
                (
                    f"check the shunt's label and set {role}.rated_current_a and "
                    "rated_millivolts to it",
                ),
            )
        )
        return
    cell_sum = sum(cells.cell_voltages)
    if role == "battery_shunt" and abs(reading.bus_voltage_v - cell_sum) > 0.1 * cell_sum:
        printer.add(
            Finding(
                Status.INFO,
                Area.READINGS,
                f"{role}'s bus voltage ({reading.bus_voltage_v:.2f} V) is not the pack's "
                f"({cell_sum:.2f} V): VBUS is not wired to the pack; the agent uses the sum of "
                "the cells",
            )
        )
    printer.add(Finding(Status.OK, Area.READINGS, f"{role} within its range"))


def _show_temperatures(config: AgentConfig, reading: CellMonitorReading, printer: Printer) -> None:
    xt1, xt2 = reading.external_temperatures_c
    printer.line(
        f"  temperatures: internal {reading.internal_temperature_c:.1f} C, "
        f"xT1 (battery) {_celsius(xt1)}, xT2 {_celsius(xt2)}"
    )
    low, high = TEMPERATURE_RANGE_C
    if not low <= reading.internal_temperature_c <= high:
        printer.add(
            Finding(
                Status.WARN,
                Area.READINGS,
                f"internal temperature {reading.internal_temperature_c:.1f} C is implausible",
            )
        )
    if xt1 is None:
        if config.control.battery_thermistor:
            printer.add(
                Finding(
                    Status.FAIL,
                    Area.READINGS,
                    "xT1 reads open: no battery thermistor, so the agent will not allow "
                    "charging (or the cells are below about -8 C)",
                    "no-thermistor",
                    (
                        "fit the 10k NTC on the cells at xT1 (docs/wiring.md), or set "
                        "temperature.battery_thermistor: false",
                    ),
                )
            )
        return
    if not low <= xt1 <= high:
        printer.add(
            Finding(Status.WARN, Area.READINGS, f"battery temperature {xt1:.1f} C is implausible")
        )


def _show_flags(reading: CellMonitorReading, printer: Printer) -> None:
    flags = sorted(reading.flags)
    printer.line(f"  flags: {' '.join(flags) if flags else 'none'}")
    concerning = [flag for flag in CONCERNING_FLAGS if flag in reading.flags]
    if concerning:
        printer.add(
            Finding(
                Status.WARN,
                Area.READINGS,
                f"the cell monitor reports {' '.join(concerning)} (with its power-on thresholds "
                "until the agent writes its own)",
            )
        )


def _celsius(value: float | None) -> str:
    return "open" if value is None else f"{value:.1f} C"


# -- thresholds -------------------------------------------------------------------------------


def _show_thresholds(config: AgentConfig, bus: SMBusLike, printer: Printer) -> None:
    control = config.control
    address = config.hardware.cell_monitor.address
    printer.section("Cell monitor thresholds (the agent writes them into RAM at every start)")
    printer.line(f"  {'register':<28}{'agent writes':>14}{'chip holds':>14}")
    differ = 0
    for register, code in configuration_codes(control.cells, control.balance).items():
        try:
            held = bus.read_word_data(address, register) & CODE_MASK
        except OSError as err:
            printer.add(Finding(Status.WARN, Area.READINGS, f"register 0x{register:02X}: {err}"))
            continue
        mark = "" if held == code else "   differs"
        differ += held != code
        name = f"0x{register:02X} {_THRESHOLD_NAMES.get(register, '')}"
        printer.line(
            f"  {name:<28}{_code_text(register, code):>14}{_code_text(register, held):>14}{mark}"
        )
    mask = CELL_CONFIG_MASKS[control.cell_count]
    held_mask = bus.read_byte_data(address, REG_CELL_CONFIG)
    mark = "" if held_mask == mask else "   differs"
    differ += held_mask != mask
    printer.line(
        f"  {'0x49 cell configuration':<28}{f'0x{mask:02X}':>14}{f'0x{held_mask:02X}':>14}{mark}"
    )
    if differ:
        printer.line(
            f"  {differ} differ: normal on a chip that has not run the agent yet (its EEPROM "
            "holds the factory values; the agent never writes the EEPROM)"
        )


def _code_text(register: int, code: int) -> str:
    if register in (REG_OV_DELAY, REG_UV_DELAY):
        return f"{code & 0x3FF} {_DELAY_UNITS[code >> 10 & 0x3]}"
    return f"{code * CELL_VOLTS_PER_CODE:.3f} V"


# -- outputs ----------------------------------------------------------------------------------


def _describe_outputs(config: AgentConfig) -> list[tuple[str, str]]:
    kinds = {output.name: output for output in config.control.outputs}
    described: list[tuple[str, str]] = []
    for pin in config.hardware.outputs:
        output = kinds.get(pin.name)
        what = (
            f"type {output.type.value}, wiring {output.wiring.value}" if output is not None else ""
        )
        if pin.driver == "mcp23008":
            where = f"MCP23008 0x{pin.address or 0:02X} pin {pin.pin}"
        else:
            where = f"GPIO {pin.chip} line {pin.line}"
        polarity = ", active low" if pin.active_low else ""
        described.append((pin.name, f"{what}; {where}{polarity}"))
    return described


def _list_outputs(config: AgentConfig, printer: Printer) -> None:
    printer.section("Outputs (not switched; --pulse-outputs switches each on for a moment)")
    for name, text in _describe_outputs(config):
        printer.line(f"  {name}: {text}")
    heartbeat = config.hardware.heartbeat
    if heartbeat is not None:
        printer.line(
            f"  {HEARTBEAT_LINE}: pulsed with every decision, one-shot {heartbeat.hold_s:g} s"
        )


def _pulse_outputs(
    config: AgentConfig,
    bus: SMBusLike,
    bus_name: str,
    printer: Printer,
    *,
    options: ProbeOptions,
    stdin: TextIO,
    sleep: Callable[[float], None],
) -> None:
    printer.section("Output pulse")
    if not stdin.isatty():
        printer.add(
            Finding(
                Status.FAIL,
                Area.OUTPUTS,
                "refusing to pulse outputs: standard input is not a terminal (a person must "
                "confirm; over SSH use `ssh -t`)",
                "pulse-refused",
            )
        )
        return
    if printer.failed():
        printer.add(
            Finding(
                Status.FAIL,
                Area.OUTPUTS,
                "refusing to pulse outputs while the problems above stand",
                "pulse-refused",
            )
        )
        return
    for name, text in _describe_outputs(config):
        printer.line(f"  {name}: {text}")
    printer.line(
        f"  Each output above will CONDUCT for {options.pulse_s:g} s, one after the other: "
        "whatever it switches (loads, PV, a charger) switches on."
    )
    printer.line("  Type yes to go on: ")
    answer = stdin.readline().strip().lower()
    if answer != "yes":
        printer.add(
            Finding(Status.FAIL, Area.OUTPUTS, "output pulse not confirmed", "pulse-refused")
        )
        return
    try:
        hardware = open_hardware(config.hardware, config.control.cell_count, bus, bus_name)
    except (DeviceError, OSError, ValueError) as err:
        printer.add(
            Finding(Status.FAIL, Area.OUTPUTS, f"cannot set up outputs: {err}", "output-failed")
        )
        return
    outputs = hardware.outputs
    all_off = dict.fromkeys(outputs.names, False)
    heartbeat = config.hardware.heartbeat
    # The one-shot keeps the outputs enabled for hold_s after each pulse: pulse well inside it.
    refresh_s = heartbeat.hold_s / 3 if heartbeat is not None else options.pulse_s
    try:
        outputs.apply(all_off)
        for name in outputs.names:
            printer.line(f"  {name}: ON")
            remaining = options.pulse_s
            while True:
                outputs.apply({**all_off, name: True})
                step = min(refresh_s, remaining)
                sleep(step)
                remaining -= step
                if remaining <= 1e-9:
                    break
            outputs.apply(all_off)
            printer.line(f"  {name}: off")
    except Exception as err:  # any failure: say it, and release the outputs below
        printer.add(Finding(Status.FAIL, Area.OUTPUTS, f"switching failed: {err}", "output-failed"))
    finally:
        outputs.release()
    if not printer.failed(Area.OUTPUTS):
        printer.add(Finding(Status.OK, Area.OUTPUTS, f"pulsed {', '.join(outputs.names)}"))


# -- helpers ----------------------------------------------------------------------------------


def _read_u16(bus: SMBusLike, address: int, register: int) -> int:
    return int.from_bytes(bytes(bus.read_i2c_block_data(address, register, 2)), "big")


def _count_for_mask(mask: int) -> int:
    return next(count for count, value in CELL_CONFIG_MASKS.items() if value == mask)
