"""Long runs of the real agent (drivers, control, outputs) on the simulated battery box.

Every scenario runs on each simulated cell curve (issue 16): "synthesis" shares its numbers with
the estimator's own OCV table and keeps the idealised cell (the control case, as before); the
others are published curves that share nothing with it, on real cells (OCV hysteresis, cold
resistance and capacity, per-cell OCV offsets: `BoxSpec.with_real_cells`), so they show how the
estimator fares on cells it was not written against. Where the current
estimator misses a bound on such a curve, the case is a strict xfail naming the measured error:
it turns red the day the estimator is fixed, and then the mark must go.

The agent samples every 10 s here instead of its default 1 s, to keep the suite fast. That makes
the protection checks stricter, not looser: a cell has ten times longer to overshoot a limit
between two samples.
"""

from __future__ import annotations

import dataclasses
import os
from collections import Counter
from dataclasses import dataclass, field

import pytest

from edge_agent.control.model import ControlReport, EventKind, Interlock
from edge_agent.control.settings import ControlSettings, SocSettings
from edge_agent.simulator.box import BoxSpec, ShuntErrorSpec
from edge_agent.simulator.cell_curves import CURVES, SYNTHESIS
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import CloudSpec

DAY = 86400.0
SAMPLE_INTERVAL_S = 10.0


@dataclass
class ScenarioLog:
    events: Counter[EventKind] = field(default_factory=Counter)
    worst_soc_error: float = 0.0
    worst_soc_error_after_sync: float = 0.0
    worst_soc_error_by_day: dict[int, float] = field(default_factory=dict)
    synced: bool = False
    mismatched_outputs: list[str] = field(default_factory=list)
    charge_while_hvd: int = 0
    loads_while_lvd: int = 0
    previous: ControlReport | None = None


def _run(system: SimulatedSystem, days: float) -> ScenarioLog:
    log = ScenarioLog()

    def watch(report: ControlReport) -> None:
        truth = system.box.truth
        previous = log.previous
        if previous is not None:
            # The box ran the last interval with the outputs the previous sample decided.
            physical = {"extio3": truth.loads_on, "extio4": truth.pv_primary_on}
            for name, on in physical.items():
                if previous.outputs[name] != on and len(log.mismatched_outputs) < 5:
                    log.mismatched_outputs.append(f"{name} at {report.timestamp}")
            if Interlock.HVD in previous.interlocks and truth.pv_current > 0.05:
                log.charge_while_hvd += 1
            if Interlock.LVD in previous.interlocks and truth.switched_load_current > 0.0:
                log.loads_while_lvd += 1
        for event in report.events:
            log.events[event.kind] += 1
            if event.kind is EventKind.SOC_SYNC:
                log.synced = True
        error = abs(report.soc - truth.soc_percent)
        log.worst_soc_error = max(log.worst_soc_error, error)
        if log.synced:
            log.worst_soc_error_after_sync = max(log.worst_soc_error_after_sync, error)
        day = int((report.timestamp - system.box.spec.start) // DAY)
        log.worst_soc_error_by_day[day] = max(log.worst_soc_error_by_day.get(day, 0.0), error)
        log.previous = report

    system.run(days * DAY, watch)
    return log


CURVE_NAMES = tuple(CURVES)


def _cells(spec: BoxSpec, cell_curve: str) -> BoxSpec:
    """The idealised cell on the estimator's own table (the control case, as before issue 16),
    or real cells (hysteresis, temperature, OCV spread) on a published curve."""
    if cell_curve == SYNTHESIS.name:
        return spec
    return spec.with_real_cells(cell_curve)


def _hard_month(cells: int, cell_curve: str = "synthesis") -> BoxSpec:
    """Weather and loads that both fill the pack (HVD) and empty it (LVD) within 30 days."""
    base = _cells(BoxSpec.for_cells(cells, seed=7), cell_curve)
    household = dataclasses.replace(
        base.switched_load.scaled(0.9),
        event_power_w=tuple(w * cells / 8 for w in (400.0, 1000.0)),
    )
    return dataclasses.replace(
        base,
        clouds=CloudSpec(sunny_probability=0.5, mixed_probability=0.25),
        switched_load=household,
    )


# Every curve at 4S, where one cell is a quarter of the pack and a steep tail shows most (a
# published curve's empty end took 4S cells below UVLO before the tail was fixed); 8S on the
# control curve. Each case is a simulated month (about 85 s): all eight would add minutes to
# CI for little more coverage.
PROTECTION_CASES = [(4, name) for name in CURVE_NAMES] + [(8, SYNTHESIS.name)]


@pytest.mark.slow
@pytest.mark.parametrize(("cells", "cell_curve"), PROTECTION_CASES)
def test_thirty_days_no_cell_passes_a_lockout_and_hvd_lvd_act(cells: int, cell_curve: str) -> None:
    spec = _hard_month(cells, cell_curve)
    config = simulated_config(spec, sample_interval_s=SAMPLE_INTERVAL_S)
    thresholds = config.control.cells
    system = SimulatedSystem(spec, config)

    log = _run(system, 30)

    truth = system.box.truth
    assert truth.max_cell_voltage_seen < thresholds.ovlo
    assert truth.min_cell_voltage_seen > thresholds.uvlo
    # HVD holds charging close to its limit; LVD cuts loads before the cells sag much further.
    assert truth.max_cell_voltage_seen < thresholds.hvd + 0.10
    assert log.events[EventKind.HVD_TRIP] >= 3
    assert log.events[EventKind.HVD_RELEASE] >= 2
    assert log.events[EventKind.LVD_TRIP] >= 1
    assert log.events[EventKind.LVD_RELEASE] >= 1
    assert log.events[EventKind.FAULT_RAISED] == 0
    assert log.charge_while_hvd == 0
    assert log.loads_while_lvd == 0
    assert log.mismatched_outputs == []


def _estimator_misses(worst_percent: float) -> pytest.MarkDecorator:
    return pytest.mark.xfail(
        strict=True,
        reason=(
            "issue 16: the estimator misses the 2 % aim from the third week on real cells on "
            f"this published curve (measured worst error {worst_percent:.1f} %)"
        ),
    )


# Worst |SoC error| over weeks 3-5, measured with the estimator of issue 16's start. On the
# published curves today's estimator misses the aim; those months cost CI about four minutes to
# show a known miss, so until the estimator work of issue 16 they run only with
# SBMS_SOC_CURVES=1 (as strict xfails) and in `python -m bench.soc_accuracy`, which prints the
# figures. Issue 16 makes them plain cases that must pass.
KNOWN_MISSES = [
    pytest.param("a123", marks=_estimator_misses(2.90)),
    pytest.param("sinopoly", marks=_estimator_misses(4.39)),
    pytest.param("generic11", marks=_estimator_misses(2.72)),
]
SOC_ERROR_CASES = [
    SYNTHESIS.name,
    *(KNOWN_MISSES if os.environ.get("SBMS_SOC_CURVES") == "1" else []),
]


@pytest.mark.slow
@pytest.mark.parametrize("cell_curve", SOC_ERROR_CASES)
def test_soc_error_with_current_gain_and_offset_errors_over_thirty_days(cell_curve: str) -> None:
    """0.5 % gain error and 50 mA offset on the battery shunt, 30 days of partial cycles on a
    100 Ah pack configured at its nominal capacity (its weakest cell holds about 3 % less).

    Plain coulomb counting drifts by the offset (1.2 Ah a day) between full charges. The
    estimator learns the offset from consecutive full charges and the capacity from LVD to
    full; the aim (under 2 %) holds once it has learned them, from the third week here.
    """
    base = _cells(BoxSpec.for_cells(8, seed=3), cell_curve)
    spec = dataclasses.replace(
        base,
        battery_shunt_error=ShuntErrorSpec(gain_error=0.005, offset_a=0.05, noise_a=0.02),
        clouds=CloudSpec(sunny_probability=0.35, mixed_probability=0.4),
    )
    control = ControlSettings(cell_count=8, soc=SocSettings(capacity_ah=spec.capacity_ah))
    config = simulated_config(spec, control=control, sample_interval_s=SAMPLE_INTERVAL_S)
    system = SimulatedSystem(spec, config)

    log = _run(system, 30)

    by_day = log.worst_soc_error_by_day
    weekly = [max(by_day[d] for d in range(w * 7, min(30, w * 7 + 7))) for w in range(5)]
    learned = system.agent.controller.snapshot().soc
    print(
        f"[{cell_curve}] worst |SoC error|: {log.worst_soc_error:.2f} % overall, "
        f"{log.worst_soc_error_after_sync:.2f} % after the first sync; by week "
        + " / ".join(f"{w:.2f}" for w in weekly)
        + f" %; learned offset {learned.offset_a * 1000:.0f} mA (true 50 mA + gain effects), "
        f"capacity {learned.capacity_ah:.1f} Ah (true {system.box.truth.capacity_ah:.1f});"
        f" {log.events[EventKind.SOC_SYNC]} syncs, {log.events[EventKind.LVD_TRIP]} LVD trips"
    )
    assert log.synced
    assert log.events[EventKind.LVD_TRIP] >= 3  # partial cycles: not every day ends full
    assert learned.offset_a == pytest.approx(0.05, abs=0.02)
    assert max(weekly[2:]) < 2.0
