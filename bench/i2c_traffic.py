"""I2C traffic of one agent sample: `python -m bench.i2c_traffic`.

Runs the real agent (drivers, control, outputs) on the simulated box and counts, per sample,
the SMBus transactions and bytes it puts on the bus, per chip address. Then it says what that
costs on the wire at 100 kHz and 400 kHz against the sample period.

Wire time counts every bit the bus clocks (a 7-bit I2C controller, no clock stretching):
9 bits per byte (8 data + ACK), a START and a STOP, and for reads a repeated START and the
address byte again: a register read of n bytes is S, addr+W, reg, Sr, addr+R, n bytes, P =
9 x (3 + n) + 3 bits; a write of n bytes is S, addr+W, reg, n bytes, P = 9 x (2 + n) + 2 bits.
The kernel's per-transfer overhead (tens to hundreds of microseconds on a Raspberry Pi) comes
on top and is printed as a range, not measured here.

It also prints what `--record` costs a sample: the recording line with the step's
transactions (`drivers/bus_log.py`) and the decoded sample, and the transactions' share.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_agent.recording.record import SessionRecorder
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.harness import SimulatedSystem
from edge_agent.simulator.smbus import FakeSMBus

_READS = {"read_byte_data": 1, "read_word_data": 2}
_WRITES = {"write_byte_data": 1, "write_word_data": 2}
KERNEL_OVERHEAD_US = (50.0, 200.0)  # per transfer, Linux i2c-dev on a Pi (rough bounds)


@dataclass
class Traffic:
    transactions: Counter[int] = field(default_factory=Counter)  # per address
    data_bytes: Counter[int] = field(default_factory=Counter)  # payload bytes per address
    wire_bits: Counter[int] = field(default_factory=Counter)  # bits clocked per address

    def add(self, address: int, read: bool, length: int) -> None:
        self.transactions[address] += 1
        self.data_bytes[address] += length
        self.wire_bits[address] += 9 * (3 + length) + 3 if read else 9 * (2 + length) + 2


def count_traffic(bus: FakeSMBus) -> Traffic:
    """Wrap the bus object's SMBus methods in place: the drivers already hold this object."""
    traffic = Traffic()

    def wrap(name: str, read: bool, length_of: Callable[[tuple[Any, ...]], int]) -> None:
        original = getattr(bus, name)

        def counted(address: int, *args: Any) -> Any:
            result = original(address, *args)
            traffic.add(address, read, length_of(args))
            return result

        setattr(bus, name, counted)

    for name, size in _READS.items():
        wrap(name, True, lambda _args, size=size: size)
    for name, size in _WRITES.items():
        wrap(name, False, lambda _args, size=size: size)
    wrap("read_i2c_block_data", True, lambda args: int(args[1]))
    wrap("write_i2c_block_data", False, lambda args: len(_sequence(args[1])))
    return traffic


def _sequence(data: object) -> Sequence[int]:
    assert isinstance(data, Sequence)
    return data


def measure(spec: BoxSpec, samples: int) -> tuple[Traffic, float, dict[int, str]]:
    system = SimulatedSystem(spec)
    system.run(5.0)  # started and settled; start-up configuration is not a sample
    traffic = count_traffic(system.box.bus)
    interval = system.config.timing.sample_interval_s
    system.run(samples * interval)
    names = {spec.isl_address: "ISL94203", 0x20: "MCP23008"}
    hardware = system.config.hardware
    names[hardware.battery_shunt.address] = hardware.battery_shunt.chip.upper()
    if hardware.pv_shunt is not None:
        names[hardware.pv_shunt.address] = hardware.pv_shunt.chip.upper() + " (PV)"
    return traffic, interval, names


def recording_bytes(spec: BoxSpec, samples: int) -> tuple[float, float]:
    """Bytes a sample in a `--record` file: the whole line, and its transactions' part (the
    first lines, with the drivers' opening, left out)."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "session.jsonl"
        system = SimulatedSystem(spec, recorder=SessionRecorder(path))
        interval = system.config.timing.sample_interval_s
        system.run((samples + 5) * interval)
        system.agent.close(system.box.now)
        lines = path.read_text(encoding="utf-8").splitlines()[6:]
    whole = sum(len(line.encode()) + 1 for line in lines) / len(lines)
    bus = sum(
        len(json.dumps(json.loads(line)["bus"], separators=(",", ":"))) for line in lines
    ) / len(lines)
    return whole, bus


def report(spec: BoxSpec, samples: int) -> None:
    traffic, interval, names = measure(spec, samples)
    print(f"{spec.cell_count}S box, {samples} samples every {interval:g} s; per sample:")
    for address in sorted(traffic.transactions):
        name = names.get(address, "?")
        print(
            f"  0x{address:02X} {name:<14} {traffic.transactions[address] / samples:6.1f}"
            f" transactions {traffic.data_bytes[address] / samples:7.1f} data bytes"
            f" {traffic.wire_bits[address] / samples:8.1f} bits on the wire"
        )
    transactions = sum(traffic.transactions.values()) / samples
    data_bytes = sum(traffic.data_bytes.values()) / samples
    bits = sum(traffic.wire_bits.values()) / samples
    print(
        f"  total          {transactions:6.1f} transactions {data_bytes:7.1f} data bytes"
        f" {bits:8.1f} bits on the wire"
    )
    low, high = KERNEL_OVERHEAD_US
    for hertz in (100_000, 400_000):
        wire_ms = bits / hertz * 1000
        share = wire_ms / (interval * 1000) * 100
        with_kernel = (wire_ms + transactions * low / 1000, wire_ms + transactions * high / 1000)
        print(
            f"  at {hertz // 1000:3d} kHz: {wire_ms:6.2f} ms on the wire = {share:5.2f} % of the"
            f" {interval:g} s period; with {low:g}-{high:g} us kernel overhead per transfer"
            f" {with_kernel[0]:6.2f}-{with_kernel[1]:6.2f} ms"
        )
    whole, bus = recording_bytes(spec, samples)
    per_day = whole * 86400 / interval / 1e6
    print(
        f"  --record: {whole:.0f} bytes a sample ({bus:.0f} of them the transactions),"
        f" {per_day:.0f} MB a day at this period"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.i2c_traffic", description=__doc__)
    parser.add_argument("--samples", type=int, default=100)
    args = parser.parse_args()
    for cells in (8, 4):
        report(BoxSpec.for_cells(cells), args.samples)


if __name__ == "__main__":
    main()
