"""Builds the drivers a configuration describes, on whatever bus it is handed.

On a battery box the bus is `smbus2.SMBus(n)`; in a demo or a test it is the simulated bus.
Nothing here knows which.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from edge_agent.config import HEARTBEAT_LINE, HardwareSettings, OutputPinSettings, ShuntSettings
from edge_agent.control.settings import BalanceSettings, CellThresholds
from edge_agent.drivers.bus import SMBusLike
from edge_agent.drivers.ina2xx import Ina226, Ina228, ShuntMonitor
from edge_agent.drivers.isl94203 import Isl94203
from edge_agent.drivers.mcp23008 import Mcp23008Outputs
from edge_agent.drivers.outputs import OutputBank

_LOGGER = logging.getLogger(__name__)

GpioBankFactory = Callable[[str, Mapping[str, tuple[str | int, bool]]], OutputBank]


@dataclass(slots=True)
class Hardware:
    """The started drivers of one battery box."""

    cell_monitor: Isl94203
    battery_shunt: ShuntMonitor
    pv_shunt: ShuntMonitor | None
    outputs: CombinedOutputs
    heat_shunt: ShuntMonitor | None = None  # on the DSSR20s' heat paths (issue 19)


class CombinedOutputs:
    """Several output banks (expanders, GPIO chips) behind one apply/release, and the
    heartbeat line when there is one (docs/safety.md: the pulses that keep the external
    one-shot enabling the outputs)."""

    def __init__(self, banks: list[OutputBank], heartbeat: bool = False) -> None:
        self._banks = banks
        lines = [name for bank in banks for name in bank.names]
        self.names: tuple[str, ...] = tuple(name for name in lines if name != HEARTBEAT_LINE)
        self.has_heartbeat = heartbeat and HEARTBEAT_LINE in lines
        self.write_failures = 0

    def apply(self, states: Mapping[str, bool]) -> None:
        """Apply to every bank; a failing bank does not keep the others from switching.

        With a heartbeat, the line goes high with these states and low again once every bank
        took them: one pulse per decided sample, and none when a bank failed."""
        wanted = dict(states)
        if self.has_heartbeat:
            wanted[HEARTBEAT_LINE] = True
        self._apply(wanted, every_bank=True)
        if self.has_heartbeat:
            self._apply({HEARTBEAT_LINE: False}, every_bank=False)

    def _apply(self, states: Mapping[str, bool], *, every_bank: bool) -> None:
        first_error: Exception | None = None
        for bank in self._banks:
            wanted = {name: states[name] for name in bank.names if name in states}
            if not wanted and not every_bank:
                continue
            try:
                bank.apply(wanted)
            except Exception as err:
                self.write_failures += 1
                first_error = first_error or err
        if first_error is not None:
            raise first_error

    def release(self) -> None:
        for bank in self._banks:
            try:
                bank.release()
            except Exception:
                _LOGGER.exception("Could not release outputs %s", bank.names)


def open_hardware(
    settings: HardwareSettings,
    cell_count: int,
    bus: SMBusLike,
    bus_name: str,
    gpio_factory: GpioBankFactory | None = None,
) -> Hardware:
    """Construct and identity-check every driver. Raises DeviceError naming the chip."""
    cell_monitor = Isl94203(
        bus, bus_name, cell_count=cell_count, address=settings.cell_monitor.address
    )
    cell_monitor.verify()
    battery_shunt = open_shunt(bus, bus_name, settings.battery_shunt)
    pv_shunt = (
        open_shunt(bus, bus_name, settings.pv_shunt) if settings.pv_shunt is not None else None
    )
    heat_shunt = (
        open_shunt(bus, bus_name, settings.heat_shunt) if settings.heat_shunt is not None else None
    )
    lines = settings.outputs
    if settings.heartbeat is not None:
        lines = (*lines, settings.heartbeat.line)
    banks = _open_output_banks(bus, bus_name, lines, gpio_factory)
    outputs = CombinedOutputs(banks, heartbeat=settings.heartbeat is not None)
    return Hardware(cell_monitor, battery_shunt, pv_shunt, outputs, heat_shunt)


def configure_cell_monitor(
    hardware: Hardware, thresholds: CellThresholds, balance: BalanceSettings
) -> None:
    """Write the agent's thresholds into the cell monitor's RAM copy (never its EEPROM)."""
    hardware.cell_monitor.configure(thresholds, balance)


def open_shunt(bus: SMBusLike, bus_name: str, shunt: ShuntSettings) -> ShuntMonitor:
    """The shunt's monitor, calibrated and converting (also for `sbms-agent probe`)."""
    chip: type[Ina228] | type[Ina226] = Ina228 if shunt.chip == "ina228" else Ina226
    monitor: ShuntMonitor = chip(
        bus,
        bus_name,
        shunt.address,
        rated_current_a=shunt.rated_current_a,
        rated_millivolts=shunt.rated_millivolts,
        zero_offset_a=shunt.zero_offset_a,
    )
    monitor.start()
    return monitor


def _open_output_banks(
    bus: SMBusLike,
    bus_name: str,
    pins: tuple[OutputPinSettings, ...],
    gpio_factory: GpioBankFactory | None,
) -> list[OutputBank]:
    banks: list[OutputBank] = []
    by_expander: dict[int, dict[str, tuple[int, bool]]] = {}
    by_chip: dict[str, dict[str, tuple[str | int, bool]]] = {}
    for pin in pins:
        if pin.driver == "mcp23008":
            assert pin.address is not None
            assert pin.pin is not None
            by_expander.setdefault(pin.address, {})[pin.name] = (pin.pin, pin.active_low)
        else:
            assert pin.chip is not None
            assert pin.line is not None
            by_chip.setdefault(pin.chip, {})[pin.name] = (pin.line, pin.active_low)
    for address, expander_pins in sorted(by_expander.items()):
        expander = Mcp23008Outputs(bus, bus_name, address, expander_pins)
        expander.start()
        banks.append(expander)
    for chip, lines in by_chip.items():
        banks.append((gpio_factory or _gpiod_bank)(chip, lines))
    return banks


def _gpiod_bank(chip: str, lines: Mapping[str, tuple[str | int, bool]]) -> OutputBank:
    from edge_agent.drivers.gpio import GpiodOutputs  # noqa: PLC0415 - needs libgpiod at runtime

    return GpiodOutputs(chip, lines)
