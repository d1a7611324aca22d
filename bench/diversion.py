"""PV diversion estimate against the simulator's truth: `python -m bench.diversion` (issue 19).

An 8S 100 Ah box whose array (two 72-cell panels, Isc 18 A) is oversized for its loads, so the
pack is full on most days; the primary DSSR20's heat path feeds a 1.6 ohm element in a 200 L
tank. The real agent runs it through days of mixed weather (50 % sunny, 30 % mixed, 20 %
overcast). The agent has no heat-path shunt: everything it says about diversion is estimated
(docs/diversion.md). Printed per day:

- hours diverting, the true energy into the element and the agent's estimate (error %);
- while the array was disconnected because the pack was full, the PV power it could have given
  at the pack voltage: the agent's estimate (`available_w`) against the truth, as mean absolute
  error and bias in watts, and the same for a plain "configured size x clear sky" estimate
  (no learning), to show what learning from the array's own current buys;
- the tank's temperature at the end of the day.

Then the mean and worst daily error over the run. The agent samples every 30 s and the physics
steps 5 s; about a minute per simulated day on this machine (`--days`, `--quick` for 3).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from dataclasses import dataclass

from edge_agent.control.clear_sky import plane_irradiance
from edge_agent.control.model import ControlReport
from edge_agent.simulator.box import BoxSpec, OutputWiring
from edge_agent.simulator.harness import HEAT_PRIMARY_OUTPUT, SimulatedSystem, simulated_config
from edge_agent.simulator.heat import HeatPathSpec, WaterTankSpec
from edge_agent.simulator.loads import HouseholdLoadSpec
from edge_agent.simulator.pv import CloudSpec

DAY = 86400.0
SAMPLE_INTERVAL_S = 30.0


@dataclass
class Day:
    index: int
    cloud: str
    diverting_h: float
    true_heat_wh: float
    estimated_heat_wh: float
    available_samples: int
    available_mae_w: float
    available_bias_w: float
    naive_mae_w: float
    tank_c: float

    @property
    def heat_error_percent(self) -> float | None:
        if self.true_heat_wh < 50.0:
            return None  # too little diverted for a percentage to mean anything
        return 100.0 * (self.estimated_heat_wh - self.true_heat_wh) / self.true_heat_wh


def bench_spec(seed: int) -> BoxSpec:
    return BoxSpec(
        seed=seed,
        initial_soc=0.8,
        clouds=CloudSpec(sunny_probability=0.5, mixed_probability=0.3),
        wiring=OutputWiring(heat_primary_pin=5),
        heat=HeatPathSpec(primary_ohm=1.6, tank=WaterTankSpec()),
        switched_load=HouseholdLoadSpec().scaled(0.3),  # a small cabin: full most days
        physics_step_s=5.0,
    )


def run(days: int, seed: int) -> list[Day]:
    spec = bench_spec(seed)
    config = simulated_config(spec, sample_interval_s=SAMPLE_INTERVAL_S)
    diversion = config.control.diversion
    rated = spec.pv_primary.rated_isc_a
    system = SimulatedSystem(spec, config)
    results: list[Day] = []
    for index in range(days):
        start = system.box.truth
        estimated_start = 0.0
        errors: list[float] = []
        naive: list[float] = []
        diverting = 0
        report: ControlReport | None = None
        end = system.box.now + DAY
        first = True
        while system.box.now < end - 1e-6:
            report = system.run(SAMPLE_INTERVAL_S)
            assert report is not None
            assert report.diversion is not None
            if first:
                estimated_start = report.diversion.counters.diverted_estimated_wh
                first = False
            truth = system.box.truth
            diverting += report.outputs[HEAT_PRIMARY_OUTPUT]
            available = report.diversion.available_w
            full = not report.outputs["extio4"] and report.charge_allowed is False
            if full and available is not None and available > 0.0:
                true_w = truth.pv_available_current * truth.pack_voltage
                errors.append(available - true_w)
                assert diversion.latitude_deg is not None
                sky = plane_irradiance(
                    report.timestamp,
                    diversion.latitude_deg,
                    diversion.longitude_deg or 0.0,
                    abs(diversion.latitude_deg),
                    180.0,
                )
                naive.append(rated * sky / 1000.0 * truth.pack_voltage - true_w)
        assert report is not None
        assert report.diversion is not None
        truth = system.box.truth
        results.append(
            Day(
                index=index + 1,
                cloud=start.cloud_class.value,
                diverting_h=diverting * SAMPLE_INTERVAL_S / 3600.0,
                true_heat_wh=truth.heat_wh - start.heat_wh,
                estimated_heat_wh=report.diversion.counters.diverted_estimated_wh - estimated_start,
                available_samples=len(errors),
                available_mae_w=statistics.fmean(abs(e) for e in errors) if errors else 0.0,
                available_bias_w=statistics.fmean(errors) if errors else 0.0,
                naive_mae_w=statistics.fmean(abs(e) for e in naive) if naive else 0.0,
                tank_c=truth.tank_temperature_c or 0.0,
            )
        )
        day = results[-1]
        error = day.heat_error_percent
        print(
            f"{day.index:>3} {day.cloud:>8} {day.diverting_h:6.1f} h "
            f"{day.true_heat_wh / 1000:6.2f} {day.estimated_heat_wh / 1000:6.2f} kWh "
            f"{'   -  ' if error is None else f'{error:+6.1f}'} % "
            f"{day.available_mae_w:6.0f} {day.available_bias_w:+6.0f} W "
            f"{day.naive_mae_w:6.0f} W {day.tank_c:5.1f} C",
            flush=True,
        )
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--days", type=int, default=14)
    parser.add_argument("--seed", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="3 days")
    args = parser.parse_args(argv)
    days = 3 if args.quick else args.days
    print(
        "day    cloud  divert   true    est  heat err  avail MAE  bias  naive MAE  tank"
        "\n(heat: energy into the element; avail: PV available at the pack voltage while the"
        " array is off because the pack is full, agent vs truth; naive: size x clear sky)"
    )
    began = time.perf_counter()
    results = run(days, args.seed)
    judged = [d.heat_error_percent for d in results if d.heat_error_percent is not None]
    true_total = sum(d.true_heat_wh for d in results)
    estimated_total = sum(d.estimated_heat_wh for d in results)
    weights = [d.available_samples for d in results]
    print()
    if judged:
        mean = statistics.fmean(abs(e) for e in judged)
        print(
            f"diverted energy per day: mean |error| {mean:.1f} %, worst "
            f"{max(judged, key=abs):+.1f} % ({len(judged)} days with > 50 Wh)"
        )
    if true_total > 0:
        print(
            f"diverted over the run: true {true_total / 1000:.2f} kWh, estimated "
            f"{estimated_total / 1000:.2f} kWh ({100 * (estimated_total / true_total - 1):+.1f} %)"
        )
    if sum(weights):
        mae = sum(d.available_mae_w * d.available_samples for d in results) / sum(weights)
        naive = sum(d.naive_mae_w * d.available_samples for d in results) / sum(weights)
        worst = max(results, key=lambda d: d.available_mae_w)
        print(
            f"PV available while disconnected: MAE {mae:.0f} W (worst day "
            f"{worst.available_mae_w:.0f} W, day {worst.index}); size x clear sky alone: "
            f"MAE {naive:.0f} W"
        )
    print(f"({time.perf_counter() - began:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
