"""Long runs of the real agent (drivers, control, outputs) on the simulated battery box.

Every scenario runs on each simulated cell curve (issue 16): "synthesis" shares its numbers with
the estimator's own OCV table and keeps the idealised cell (the control case, as before); the
others are published curves that share nothing with it, on real cells (OCV hysteresis, cold
resistance and capacity, per-cell OCV offsets: `BoxSpec.with_real_cells`), so they show how the
estimator fares on cells it was not written against. Issue 16's aims hold on every curve; the
one exception (the control case's band width on the built-in curve) says why where it is set.

The agent samples every 10 s here instead of its default 1 s, to keep the suite fast. That makes
the protection checks stricter, not looser: a cell has ten times longer to overshoot a limit
between two samples.
"""

from __future__ import annotations

import dataclasses
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
    # From day 7 on (issue 16's aims): samples, summed |error|, samples whose ~95 % band held
    # the truth and samples whose band was under 5 points wide; the capacity on day 14.
    later_samples: int = 0
    later_error_sum: float = 0.0
    later_inside_band: int = 0
    later_narrow_band: int = 0
    capacity_day_14_ah: float | None = None

    @property
    def later_mean_error(self) -> float:
        return self.later_error_sum / max(1, self.later_samples)

    @property
    def later_inside_share(self) -> float:
        return self.later_inside_band / max(1, self.later_samples)

    @property
    def later_narrow_share(self) -> float:
        return self.later_narrow_band / max(1, self.later_samples)


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
        if day >= 7:
            band = report.soc_uncertainty
            log.later_samples += 1
            log.later_error_sum += error
            log.later_inside_band += band is not None and error <= band
            log.later_narrow_band += band is not None and 2.0 * band < 5.0
        if day >= 14 and log.capacity_day_14_ah is None:
            log.capacity_day_14_ah = report.capacity_ah
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


def _datasheet(cell_curve: str) -> tuple[tuple[float, float], ...] | None:
    """The published table as a user types it into battery.ocv_curve; None for the control
    case, which runs on the estimator's built-in curve (the same numbers)."""
    if cell_curve == SYNTHESIS.name:
        return None
    return tuple((round(soc * 100.0, 6), volts) for soc, volts in CURVES[cell_curve].table)


# Every curve, each with its datasheet curve configured (the control case with the built-in
# one). Without the datasheet curve the bottom of a published curve can lie up to 5 points from
# the built-in one at 3.00 V, which no estimator can see (docs/soc.md): those months run in
# `python -m bench.soc_accuracy`, which prints them.
SOC_ERROR_CASES = list(CURVE_NAMES)
KNOWN_MISSES: list[object] = []
# The aim is a worst |error| under 2 % from day 7 on every curve. (sinopoly missed it at
# 2.38 % until the offset was learned by a Kalman step: a fixed half-weight left 12 mA
# unlearned for two weeks, a 0.3-point drift a day between full charges.)
WORST_AIM: dict[str, float] = {}
# The mean |error| under 1 % on every curve. (generic11 missed it at 1.05 % until a rest was
# read on the hysteresis branch it sits on: its empty end climbs only 12 mV a point, so the
# 10 mV between the discharge branch and the table's middle read a point low at every rest.)
MEAN_AIM: dict[str, float] = {}
# The band under 5 points wide at least half the time: with the cells' own curve only. The
# control case runs on the built-in curve, which is not the cells' own: where a LiFePO4 table
# puts 0 % is its author's choice, and published ones lie up to 5 points apart at 3.00 V
# (docs/soc.md). That error repeats at every rest, so an honest band cannot narrow below it,
# and the capacity learned against those readings is published as known to about 2.3 %.
NARROW_AIM: dict[str, float] = {SYNTHESIS.name: 0.0}


@pytest.mark.slow
@pytest.mark.parametrize("cell_curve", SOC_ERROR_CASES)
def test_soc_error_with_current_gain_and_offset_errors_over_thirty_days(cell_curve: str) -> None:
    """0.5 % gain error and 50 mA offset on the battery shunt, 30 days of partial cycles on a
    100 Ah pack configured at its nominal capacity (its weakest cell holds about 3 % less).

    Plain coulomb counting drifts by the offset (1.2 Ah a day) between full charges. The
    estimator learns the offset from consecutive full charges and the capacity from full syncs
    and the rested low readings after LVD; issue 16's aims hold from day 7: worst |error|
    under 2 %, mean under 1 %, the capacity within 2 % by day 14, and a ~95 % band that holds
    the truth at least 95 % of the time and is under 5 points wide at least half of it.
    """
    base = _cells(BoxSpec.for_cells(8, seed=3), cell_curve)
    spec = dataclasses.replace(
        base,
        battery_shunt_error=ShuntErrorSpec(gain_error=0.005, offset_a=0.05, noise_a=0.02),
        clouds=CloudSpec(sunny_probability=0.35, mixed_probability=0.4),
    )
    soc = SocSettings(capacity_ah=spec.capacity_ah, ocv_curve=_datasheet(cell_curve))
    control = ControlSettings(cell_count=8, soc=soc)
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
    print(
        f"[{cell_curve}] from day 7: mean |error| {log.later_mean_error:.2f} %, band held the "
        f"truth {log.later_inside_share:.1%}, under 5 points wide {log.later_narrow_share:.1%};"
        f" capacity on day 14 {log.capacity_day_14_ah:.1f} Ah"
    )
    assert log.synced
    assert log.events[EventKind.LVD_TRIP] >= 3  # partial cycles: not every day ends full
    assert learned.offset_a == pytest.approx(0.05, abs=0.02)
    assert max(weekly[1:]) < WORST_AIM.get(cell_curve, 2.0)
    assert log.later_mean_error < MEAN_AIM.get(cell_curve, 1.0)
    assert log.capacity_day_14_ah == pytest.approx(system.box.truth.capacity_ah, rel=0.02)
    assert log.later_inside_share >= 0.95
    assert log.later_narrow_share >= NARROW_AIM.get(cell_curve, 0.5)
