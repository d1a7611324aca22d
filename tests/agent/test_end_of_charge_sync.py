"""The agent sets its SoC to 100 % only at a real end of charge, seen against the box's truth.

A worn pack (30 mOhm for 8S: each cell about 3.75 mOhm with its busbars) under a strong charge
current lifts its highest cell past `eoc` (3.53 V) long before it is full. Whether the charge
comes from a CC/CV charger (absorption 3.56 V per cell, above eoc) or from PV switched
straight onto the pack (no taper at all), every 100 % synchronisation the agent makes must
find the box's true SoC at 98 % or more. Counting "highest cell at eoc while charging" as the
end of charge syncs at 95 % (charger) and 92 % (PV) in these two runs.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.control.model import ControlReport, EventKind
from edge_agent.simulator.box import BoxSpec, ChargerSpec
from edge_agent.simulator.harness import SimulatedSystem
from edge_agent.simulator.pv import CloudSpec, PvArraySpec

HOUR = 3600.0
TRUE_SOC_AT_SYNC_MIN = 98.0
CLEAR_SKY = CloudSpec(sunny_probability=1.0, mixed_probability=0.0, sunny_passing_clouds_per_day=0)
# Absorption above eoc, and a short lead: the bulk phase lifts the cells past eoc.
STRONG_CHARGER = ChargerSpec(
    absorption_cell_v=3.56, current_limit_a=40.0, lead_resistance_ohm=0.002
)
WORN_PACK = {
    "initial_soc": 0.7,
    "soc_spread": 0.001,
    "capacity_spread": 0.005,
    "pack_resistance_ohm": 0.03,
}


@dataclass(frozen=True)
class Sync:
    at_s: float  # since the start
    reason: str
    true_soc: float
    battery_current: float


def full_syncs(spec: BoxSpec, hours: float) -> list[Sync]:
    """Every 100 % synchronisation of the real agent, with the box's truth at that sample."""
    system = SimulatedSystem(spec)
    syncs: list[Sync] = []

    def note(report: ControlReport) -> None:
        for event in report.events:
            if event.kind is EventKind.SOC_SYNC and event.detail["to"] == 100.0:
                truth = system.box.truth
                syncs.append(
                    Sync(
                        report.timestamp - spec.start,
                        str(event.detail["reason"]),
                        truth.soc_percent,
                        truth.battery_current,
                    )
                )

    system.run(hours * HOUR, note)
    return syncs


def test_a_cc_cv_charger_syncs_the_soc_only_once_its_current_has_tapered() -> None:
    spec = BoxSpec(
        start=BoxSpec().start + 20 * HOUR,  # night: the charger is the only source
        charger=ChargerSpec(
            absorption_cell_v=3.56, current_limit_a=40.0, lead_resistance_ohm=0.002
        ),
        **WORN_PACK,  # type: ignore[arg-type]
    )
    syncs = full_syncs(spec, hours=2.5)
    assert syncs, "the charge never ended"
    assert [sync for sync in syncs if sync.true_soc < TRUE_SOC_AT_SYNC_MIN] == []
    tapered = [sync for sync in syncs if sync.reason == "eoc"]
    assert tapered, f"no end-of-charge sync, only {syncs}"
    assert all(abs(sync.battery_current) <= 2.0 for sync in tapered)  # soc.tail_current


def test_pv_switched_straight_on_syncs_the_soc_only_when_full() -> None:
    spec = BoxSpec(
        start=BoxSpec().start + 10 * HOUR,
        clouds=CLEAR_SKY,
        pv_primary=PvArraySpec(panels_in_parallel=5),  # about 40 A at noon: 0.4 C
        **WORN_PACK,  # type: ignore[arg-type]
    )
    syncs = full_syncs(spec, hours=3.0)
    assert syncs, "the pack never got full"
    assert [sync for sync in syncs if sync.true_soc < TRUE_SOC_AT_SYNC_MIN] == []
    assert min(sync.battery_current for sync in syncs) > 20.0  # never tapered: PV is on
