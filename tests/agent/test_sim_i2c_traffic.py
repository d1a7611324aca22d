"""bench.i2c_traffic counts what one sample puts on the bus (issue 17)."""

from __future__ import annotations

from bench.i2c_traffic import measure, recording_bytes
from edge_agent.simulator.box import BoxSpec


def test_one_8s_sample_costs_the_transactions_the_drivers_make() -> None:
    traffic, interval, names = measure(BoxSpec.for_cells(8), samples=3)
    assert interval == 1.0
    per_sample = {names[address]: count / 3 for address, count in traffic.transactions.items()}
    # ISL94203: 8 cells, 4 status bytes, CELLMIN, CELLMAX, VBATT, ITEMP, XT1, XT2.
    assert per_sample["ISL94203"] == 18
    # INA228: CURRENT, VBUS, DIAG_ALRT, CHARGE; MCP23008: OLAT write, IODIR, IODIR + OLAT check.
    assert per_sample["INA228"] == 4
    assert per_sample["MCP23008"] == 4
    assert traffic.data_bytes[0x40] / 3 == 3 + 3 + 2 + 5
    # Reads of n bytes clock 9 x (3 + n) + 3 bits: 4 INA228 reads of 13 bytes in all.
    assert traffic.wire_bits[0x40] / 3 == 9 * (4 * 3 + 13) + 4 * 3


def test_a_recorded_8s_sample_is_about_a_kilobyte() -> None:
    whole, bus = recording_bytes(BoxSpec.for_cells(8), samples=10)
    # 30 transactions as JSON arrays, beside the decoded sample (docs/architecture.md).
    assert 450 < bus < 750
    assert 900 < whole < 1300
