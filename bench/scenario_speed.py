"""CPU time of the simulated scenarios: `python -m bench.scenario_speed` (CI time).

tests/agent/test_scenarios.py runs month-long simulated scenarios, which dominate the suite's
CPU time. This runs the same kind of system (the real agent, sampling every 10 s, on the
simulated box stepping its physics every 1 s) for a few simulated days and prints the CPU
seconds per simulated day, with the box's truth read after every sample as the scenarios do.
Two boxes, like the tests': the "hard month" (4S, the control curve, HVD and LVD) and the
SoC-error month (8S, real cells on a published curve, shunt errors).

`--fingerprint` also prints what the run ended with (SoC, cell voltages, counts of events):
a change meant only to be faster must leave these equal up to floating-point noise.
`--profile` prints where the time went (cProfile, the 25 costliest functions by own time).
"""

from __future__ import annotations

import argparse
import cProfile
import dataclasses
import pstats
import sys
import time
from collections import Counter

from edge_agent.control.model import ControlReport, EventKind
from edge_agent.control.settings import ControlSettings, SocSettings
from edge_agent.simulator.box import BoxSpec, ShuntErrorSpec
from edge_agent.simulator.cell_curves import CURVES
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.simulator.pv import CloudSpec

DAY = 86400.0
SAMPLE_INTERVAL_S = 10.0  # as tests/agent/test_scenarios.py


def hard_month_system() -> SimulatedSystem:
    """4S on the control curve, weather and loads that reach both HVD and LVD."""
    base = BoxSpec.for_cells(4, seed=7)
    household = dataclasses.replace(base.switched_load.scaled(0.9), event_power_w=(200.0, 500.0))
    spec = dataclasses.replace(
        base,
        clouds=CloudSpec(sunny_probability=0.5, mixed_probability=0.25),
        switched_load=household,
    )
    return SimulatedSystem(spec, simulated_config(spec, sample_interval_s=SAMPLE_INTERVAL_S))


def soc_error_system(curve: str) -> SimulatedSystem:
    """8S real cells on `curve` with its datasheet curve configured, shunt gain and offset."""
    spec = dataclasses.replace(
        BoxSpec.for_cells(8, seed=3).with_real_cells(curve),
        battery_shunt_error=ShuntErrorSpec(gain_error=0.005, offset_a=0.05, noise_a=0.02),
        clouds=CloudSpec(sunny_probability=0.35, mixed_probability=0.4),
    )
    table = tuple((round(soc * 100.0, 6), volts) for soc, volts in CURVES[curve].table)
    control = ControlSettings(
        cell_count=8, soc=SocSettings(capacity_ah=spec.capacity_ah, ocv_curve=table)
    )
    config = simulated_config(spec, control=control, sample_interval_s=SAMPLE_INTERVAL_S)
    return SimulatedSystem(spec, config)


def run(system: SimulatedSystem, days: float) -> tuple[float, str]:
    """CPU seconds per simulated day, and the run's fingerprint."""
    events: Counter[EventKind] = Counter()
    worst = [0.0]

    def watch(report: ControlReport) -> None:
        truth = system.box.truth  # read every sample, as the scenario tests do
        worst[0] = max(worst[0], abs(report.soc - truth.soc_percent))
        events.update(event.kind for event in report.events)

    start = time.process_time()
    last = system.run(days * DAY, watch)
    per_day = (time.process_time() - start) / days
    truth = system.box.truth
    assert last is not None
    fingerprint = (
        f"soc {last.soc:.9f} truth {truth.soc_percent:.9f} worst error {worst[0]:.9f}\n"
        f"    cells {' '.join(f'{v:.9f}' for v in truth.cell_voltages)}\n"
        f"    extremes {truth.min_cell_voltage_seen:.9f} {truth.max_cell_voltage_seen:.9f}"
        f" charge in {truth.battery_in_ah:.9f} Ah\n"
        f"    events {sorted((kind.value, n) for kind, n in events.items())}"
    )
    return per_day, fingerprint


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.scenario_speed", description=__doc__)
    parser.add_argument("--days", type=float, default=3.0, help="simulated days per box")
    parser.add_argument("--curve", default="sinopoly", choices=sorted(CURVES))
    parser.add_argument("--fingerprint", action="store_true", help="print the end state too")
    parser.add_argument("--profile", action="store_true", help="cProfile the SoC-error box")
    args = parser.parse_args()
    print(f"simulated scenarios, Python {sys.version.split()[0]}, {args.days:g} days per box")
    boxes = (
        ("hard month, 4S control curve", hard_month_system),
        (f"SoC error, 8S real cells, {args.curve}", lambda: soc_error_system(args.curve)),
    )
    for name, make in boxes:
        system = make()
        if args.profile and make is not hard_month_system:
            profiler = cProfile.Profile()
            profiler.runcall(run, system, args.days)
            pstats.Stats(profiler).sort_stats("tottime").print_stats(25)
            continue
        per_day, fingerprint = run(system, args.days)
        print(f"{name:40s} {per_day:6.2f} s of CPU per simulated day")
        if args.fingerprint:
            print(f"    {fingerprint}")


if __name__ == "__main__":
    main()
