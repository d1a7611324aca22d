"""SoC accuracy on every simulated cell curve: `python -m bench.soc_accuracy` (issue 16).

Per curve (`edge_agent.simulator.cell_curves`: the estimator's own "synthesis" table as the
control case, then the published curves that share nothing with it), on real cells (OCV
hysteresis, cold resistance, per-cell OCV offsets: `BoxSpec.with_real_cells`), 30 simulated
days of an 8S 100 Ah box with the real agent, in the weather of the SoC-error scenario (35 %
sunny, 40 % mixed days): partial cycles, a full charge when the sun allows, nights that end at
LVD on poor days; a battery shunt with a 0.5 % gain error, a 50 mA offset and 20 mA noise.

Each published curve runs twice: with the agent's built-in curve (what a user gets who does
not know their cells' curve) and with the cells' datasheet curve configured
(`battery.ocv_curve`, the published table as a user would type it in). Printed per week, side
by side:

- plain coulomb counting: the simulator's true charge through the shunt with the same gain and
  offset errors, divided by the nominal capacity, set to 100 % whenever the agent syncs at end
  of charge (so both see the same full charges) and clamped to 0..100 %;
- the agent's estimator as it runs in the simulated system;
- how often its published ~95 % band held the true SoC, and how often it was under 5 points
  wide.

Then the capacity the estimator had learned by day 14 and at the end against the truth, and the
cycling the month had (full syncs, LVD trips, the lowest and highest true SoC).

Speed: the agent samples every 30 s (the tests use 10 s) and the physics steps 5 s (1 s
elsewhere); runs go two at a time. About 2.5 minutes on two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from edge_agent.control.model import ControlReport, EventKind
from edge_agent.control.settings import ControlSettings, SocSettings
from edge_agent.simulator.box import BoxSpec, ShuntErrorSpec
from edge_agent.simulator.cell_curves import CURVES, SYNTHESIS
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import CloudSpec

DAY = 86400.0
SAMPLE_INTERVAL_S = 30.0
GAIN_ERROR, OFFSET_A, NOISE_A = 0.005, 0.05, 0.02


@dataclass
class Week:
    cc_worst: float
    cc_mean: float
    worst: float
    mean: float
    inside: float  # share of samples whose band held the truth
    narrow: float  # share of samples with a band under 5 points wide


@dataclass
class CurveResult:
    curve: str
    configured: bool
    weeks: list[Week] = field(default_factory=list)
    capacity_day_14_ah: float = 0.0
    learned_capacity_ah: float = 0.0
    true_capacity_ah: float = 0.0
    full_syncs: int = 0
    lvd_trips: int = 0
    soc_range: tuple[float, float] = (100.0, 0.0)
    seconds: float = 0.0


def box_spec(cell_curve: str) -> BoxSpec:
    base = BoxSpec.for_cells(8, seed=3).with_real_cells(cell_curve)
    return dataclasses.replace(
        base,
        battery_shunt_error=ShuntErrorSpec(
            gain_error=GAIN_ERROR, offset_a=OFFSET_A, noise_a=NOISE_A
        ),
        clouds=CloudSpec(sunny_probability=0.35, mixed_probability=0.4),
        physics_step_s=5.0,
    )


def datasheet_curve(cell_curve: str) -> tuple[tuple[float, float], ...]:
    """The published table as a user types it into battery.ocv_curve (SoC %, volts)."""
    return tuple((round(soc * 100.0, 6), volts) for soc, volts in CURVES[cell_curve].table)


def run_curve(cell_curve: str, configured: bool, days: float) -> CurveResult:
    started = time.perf_counter()
    spec = box_spec(cell_curve)
    curve = datasheet_curve(cell_curve) if configured else None
    soc = SocSettings(capacity_ah=spec.capacity_ah, ocv_curve=curve)
    control = ControlSettings(cell_count=8, soc=soc)
    config = simulated_config(spec, control=control, sample_interval_s=SAMPLE_INTERVAL_S)
    system = SimulatedSystem(spec, config)
    result = CurveResult(cell_curve, configured)
    samples: dict[int, list[tuple[float, float, bool, bool]]] = {}
    state = {"cc": -1.0, "charge": system.box.truth.battery_charge_ah}

    def watch(report: ControlReport) -> None:
        truth = system.box.truth
        charge = truth.battery_charge_ah
        delta = charge - state["charge"]
        state["charge"] = charge
        if state["cc"] < 0.0:
            state["cc"] = report.soc  # both start where the agent starts
        else:
            measured = delta * (1.0 + GAIN_ERROR) + OFFSET_A * SAMPLE_INTERVAL_S / 3600.0
            state["cc"] = min(100.0, max(0.0, state["cc"] + 100.0 * measured / spec.capacity_ah))
        for event in report.events:
            if event.kind is EventKind.SOC_SYNC and float(event.detail.get("to", 0.0)) >= 99.99:
                state["cc"] = 100.0
                result.full_syncs += 1
            elif event.kind is EventKind.LVD_TRIP:
                result.lvd_trips += 1
        elapsed = report.timestamp - spec.start
        if result.capacity_day_14_ah == 0.0 and elapsed >= 14 * DAY:
            result.capacity_day_14_ah = report.capacity_ah
        error = report.soc - truth.soc_percent
        band = report.soc_uncertainty if report.soc_uncertainty is not None else 0.0
        samples.setdefault(int(elapsed // (7 * DAY)), []).append(
            (abs(state["cc"] - truth.soc_percent), abs(error), abs(error) <= band, 2 * band < 5.0)
        )
        low, high = result.soc_range
        result.soc_range = (min(low, truth.soc_percent), max(high, truth.soc_percent))

    system.run(days * DAY, watch)
    for week in sorted(samples):
        rows = samples[week]
        cc, agent = [r[0] for r in rows], [r[1] for r in rows]
        result.weeks.append(
            Week(
                max(cc),
                statistics.fmean(cc),
                max(agent),
                statistics.fmean(agent),
                statistics.fmean(1.0 if r[2] else 0.0 for r in rows),
                statistics.fmean(1.0 if r[3] else 0.0 for r in rows),
            )
        )
    result.learned_capacity_ah = system.agent.controller.snapshot().soc.capacity_ah
    result.true_capacity_ah = system.box.truth.capacity_ah
    result.seconds = time.perf_counter() - started
    return result


def print_result(result: CurveResult) -> None:
    how = "datasheet curve configured" if result.configured else "built-in curve"
    print(f"\ncurve {result.curve}, {how}: {CURVES[result.curve].source}")
    print("  week   counting + full syncs    agent estimator         its ~95 % band")
    print("         worst     mean           worst     mean          holds truth  < 5 wide")
    for index, w in enumerate(result.weeks, 1):
        print(
            f"  {index:4d}   {w.cc_worst:5.2f} %   {w.cc_mean:5.2f} %        "
            f"{w.worst:5.2f} %   {w.mean:5.2f} %        {w.inside:6.1%}      {w.narrow:6.1%}"
        )
    later = result.weeks[1:] or result.weeks
    print(
        f"  from day 7: agent worst {max(w.worst for w in later):.2f} %, mean of weekly means "
        f"{statistics.fmean(w.mean for w in later):.2f} %; band held the truth "
        f"{statistics.fmean(w.inside for w in later):.1%}, under 5 points wide "
        f"{statistics.fmean(w.narrow for w in later):.1%} of the time"
    )
    truth = result.true_capacity_ah
    print(
        f"  learned capacity {result.capacity_day_14_ah:.1f} Ah on day 14 "
        f"({100.0 * (result.capacity_day_14_ah / truth - 1.0):+.1f} %), "
        f"{result.learned_capacity_ah:.1f} Ah at the end "
        f"({100.0 * (result.learned_capacity_ah / truth - 1.0):+.1f} %) against {truth:.1f} Ah"
    )
    print(
        f"  cycling: {result.full_syncs} full syncs, {result.lvd_trips} LVD trips, true SoC "
        f"{result.soc_range[0]:.0f}..{result.soc_range[1]:.0f} %; {result.seconds:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.soc_accuracy", description=__doc__)
    parser.add_argument("--days", type=float, default=30.0)
    parser.add_argument("--curve", action="append", choices=tuple(CURVES), help="repeatable")
    parser.add_argument("--quick", action="store_true", help="7 days instead of 30")
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args()
    days = 7.0 if args.quick else args.days
    curves = args.curve or list(CURVES)
    runs = [(name, False) for name in curves] + [
        (name, True) for name in curves if name != SYNTHESIS.name
    ]
    print(
        f"SoC accuracy, {days:g} simulated days per curve, 8S 100 Ah, shunt gain "
        f"{GAIN_ERROR:+.1%} offset {OFFSET_A * 1000:.0f} mA; agent samples every "
        f"{SAMPLE_INTERVAL_S:g} s, physics steps 5 s; Python {sys.version.split()[0]}"
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(
            pool.map(
                run_curve,
                [name for name, _ in runs],
                [configured for _, configured in runs],
                [days] * len(runs),
            )
        )
    for result in results:
        print_result(result)
    print_summary(results)
    print(f"\n{len(runs)} runs in {time.perf_counter() - started:.0f} s")


def print_summary(results: list[CurveResult]) -> None:
    """From day 7 on, one row per run, as docs/soc.md tabulates it."""
    print(
        "\nfrom day 7 on:\n"
        "| curve | OCV curve | worst | mean | band held truth | band < 5 wide | capacity day 14 |\n"
        "|---|---|---|---|---|---|---|"
    )
    for r in results:
        later = r.weeks[1:] or r.weeks
        capacity = 100.0 * (r.capacity_day_14_ah / r.true_capacity_ah - 1.0)
        print(
            f"| {r.curve} | {'datasheet' if r.configured else 'built-in'} "
            f"| {max(w.worst for w in later):.2f} % "
            f"| {statistics.fmean(w.mean for w in later):.2f} % "
            f"| {statistics.fmean(w.inside for w in later):.1%} "
            f"| {statistics.fmean(w.narrow for w in later):.1%} | {capacity:+.1f} % |"
        )


if __name__ == "__main__":
    main()
