"""SoC accuracy on every simulated cell curve: `python -m bench.soc_accuracy` (issue 16).

Per curve (`edge_agent.simulator.cell_curves`: the estimator's own "synthesis" table as the
control case, then the published curves that share nothing with it), on real cells (OCV
hysteresis, cold resistance and capacity, per-cell OCV offsets: `BoxSpec.with_real_cells`),
30 simulated days of an 8S 100 Ah box with the real agent, in the weather of the SoC-error
scenario (35 % sunny, 40 % mixed days): partial cycles, a full charge when the sun allows
(about every other day), nights that end at LVD on poor days; a battery shunt with a 0.5 % gain
error, a 50 mA offset and 20 mA noise. Printed per week, side by side:

- plain coulomb counting: the simulator's true charge through the shunt with the same gain and
  offset errors, divided by the nominal capacity, set to 100 % whenever the agent syncs at end
  of charge (so both see the same full charges) and clamped to 0..100 %;
- the agent's estimator as it runs in the simulated system (offset and capacity learning, OCV
  corrections at the steep ends, its own end-of-charge sync).

Then the capacity the estimator learned against the truth, and the cycling the month had (full
syncs, LVD trips, the lowest and highest true SoC).

Speed: the agent samples every 30 s (the tests use 10 s) and the physics steps 5 s (1 s
elsewhere); curves run two at a time. About 1.5 minutes for all four curves on two cores.
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
from edge_agent.simulator.cell_curves import CURVES
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import CloudSpec

DAY = 86400.0
SAMPLE_INTERVAL_S = 30.0
GAIN_ERROR, OFFSET_A, NOISE_A = 0.005, 0.05, 0.02


@dataclass
class CurveResult:
    curve: str
    weeks: list[tuple[float, float, float, float]] = field(default_factory=list)  # cc, agent
    learned_capacity_ah: float = 0.0
    true_capacity_ah: float = 0.0
    true_capacity_25c_ah: float = 0.0
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


def run_curve(cell_curve: str, days: float) -> CurveResult:
    started = time.perf_counter()
    spec = box_spec(cell_curve)
    control = ControlSettings(cell_count=8, soc=SocSettings(capacity_ah=spec.capacity_ah))
    config = simulated_config(spec, control=control, sample_interval_s=SAMPLE_INTERVAL_S)
    system = SimulatedSystem(spec, config)
    result = CurveResult(cell_curve)
    errors: dict[int, tuple[list[float], list[float]]] = {}
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
        week = int((report.timestamp - spec.start) // (7 * DAY))
        cc_errors, agent_errors = errors.setdefault(week, ([], []))
        cc_errors.append(abs(state["cc"] - truth.soc_percent))
        agent_errors.append(abs(report.soc - truth.soc_percent))
        low, high = result.soc_range
        result.soc_range = (min(low, truth.soc_percent), max(high, truth.soc_percent))

    system.run(days * DAY, watch)
    for week in sorted(errors):
        cc_errors, agent_errors = errors[week]
        result.weeks.append(
            (
                max(cc_errors),
                statistics.fmean(cc_errors),
                max(agent_errors),
                statistics.fmean(agent_errors),
            )
        )
    pack = system.box.pack
    result.learned_capacity_ah = system.agent.controller.snapshot().soc.capacity_ah
    result.true_capacity_ah = system.box.truth.capacity_ah
    result.true_capacity_25c_ah = float(pack.capacities_ah.min())  # an upper bound at 25 C
    result.seconds = time.perf_counter() - started
    return result


def print_result(result: CurveResult) -> None:
    print(f"\ncurve {result.curve}: {CURVES[result.curve].source}")
    print("  week   coulomb counting + full syncs     agent estimator")
    print("         worst |err|   mean |err|          worst |err|   mean |err|")
    for index, (cc_worst, cc_mean, agent_worst, agent_mean) in enumerate(result.weeks, 1):
        print(
            f"  {index:4d}   {cc_worst:8.2f} %   {cc_mean:8.2f} %          "
            f"{agent_worst:8.2f} %   {agent_mean:8.2f} %"
        )
    overall_cc = max(w[0] for w in result.weeks)
    overall_agent = max(w[2] for w in result.weeks)
    after_first = max(w[2] for w in result.weeks[1:]) if len(result.weeks) > 1 else overall_agent
    capacity_error = 100.0 * (result.learned_capacity_ah / result.true_capacity_ah - 1.0)
    print(
        f"  worst overall: coulomb counting {overall_cc:.2f} %, agent {overall_agent:.2f} % "
        f"({after_first:.2f} % after week 1)"
    )
    print(
        f"  learned capacity {result.learned_capacity_ah:.1f} Ah against a true usable "
        f"{result.true_capacity_ah:.1f} Ah at the end's temperature ({capacity_error:+.1f} %); "
        f"weakest cell {result.true_capacity_25c_ah:.1f} Ah at 25 C"
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
    print(
        f"SoC accuracy, {days:g} simulated days per curve, 8S 100 Ah, shunt gain "
        f"{GAIN_ERROR:+.1%} offset {OFFSET_A * 1000:.0f} mA; agent samples every "
        f"{SAMPLE_INTERVAL_S:g} s, physics steps 5 s; Python {sys.version.split()[0]}"
    )
    started = time.perf_counter()
    with ProcessPoolExecutor(max_workers=max(1, args.jobs)) as pool:
        results = list(pool.map(run_curve, curves, [days] * len(curves)))
    for result in results:
        print_result(result)
    print(f"\n{len(curves)} curves in {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
