"""Agent benchmarks: `./scripts/bench` (or `python -m bench`) prints every figure.

Figures and aims (issue 2):
  control decision per sample   < 0.2 ms
  full sample cycle on the simulated bus (drivers + control + outputs)
  simulator speed               30 days at 1 s steps in under a minute
  agent memory (RSS)            < 60 MB
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from edge_agent.control.controller import Controller
from edge_agent.control.model import Measurement
from edge_agent.control.settings import ControlSettings
from edge_agent.simulator.box import BoxSpec, SimulatedBox
from edge_agent.simulator.harness import SimulatedSystem
from edge_agent.storage.state_store import StateStore


def _timed_us(action: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Mean and 99th percentile of one call, microseconds."""
    samples = []
    for _ in range(repeats):
        start = time.perf_counter_ns()
        action()
        samples.append((time.perf_counter_ns() - start) / 1000)
    samples.sort()
    return statistics.fmean(samples), samples[int(0.99 * (len(samples) - 1))]


def bench_control(repeats: int) -> None:
    settings = ControlSettings()
    rng = random.Random(1)
    controller = Controller(settings, now=0.0)
    measurements = [
        Measurement(
            timestamp=float(i + 1),
            cell_voltages=tuple(3.30 + rng.uniform(-0.01, 0.01) for _ in range(8)),
            battery_current=rng.uniform(-20, 30),
            charge_delta_ah=rng.uniform(-20, 30) / 3600,
            pv_current=rng.uniform(0, 30),
            internal_temperature=25.0,
            external_temperatures=(20.0, None),
        )
        for i in range(repeats)
    ]
    feed = iter(measurements)
    mean, p99 = _timed_us(lambda: controller.update(next(feed)), repeats)
    print(
        f"control decision per sample      mean {mean:7.1f} us   p99 {p99:7.1f} us   (aim < 200 us)"
    )


def bench_sample_cycle(repeats: int) -> None:
    system = SimulatedSystem(BoxSpec.for_cells(8))
    clock = [system.box.now]

    def cycle() -> None:
        clock[0] += 1.0
        system.agent.step(clock[0])

    mean, p99 = _timed_us(cycle, repeats)
    print(
        f"full sample cycle, simulated bus mean {mean:7.1f} us   p99 {p99:7.1f} us"
        "   (drivers + control + outputs)"
    )
    with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "state.db") as store:
        state = system.agent.controller.snapshot().to_dict()
        mean, p99 = _timed_us(lambda: store.save(state, time.time()), min(repeats, 300))
    print(
        f"state save (SQLite WAL, fsync)    mean {mean:7.1f} us   p99 {p99:7.1f} us"
        "   (once per save interval)"
    )


def bench_simulator(days: float) -> None:
    box = SimulatedBox(BoxSpec.for_cells(8))
    start = time.perf_counter()
    box.advance(days * 86400)
    elapsed = time.perf_counter() - start
    print(
        f"simulator, 1 s physics steps      {days:g} days in {elapsed:5.1f} s = "
        f"{days / elapsed:6.2f} simulated days/s   (aim: 30 days < 60 s)"
    )


def bench_simulated_agent_days(hours: float) -> None:
    spec = BoxSpec.for_cells(8)
    system = SimulatedSystem(spec)
    start = time.perf_counter()
    system.run(hours * 3600)
    elapsed = time.perf_counter() - start
    print(
        f"agent + simulator, 1 s samples    {hours:g} h in {elapsed:5.1f} s = "
        f"{hours * 3600 / elapsed:8.0f} samples/s"
    )


def bench_memory(hours: float) -> None:
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_agent",
            "--simulate",
            "--speed",
            "1e9",
            "--duration",
            str(hours),
            "--quiet",
            "--log-level",
            "WARNING",
        ],
        check=True,
    )
    rss_mb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    note = "" if rss_mb > before / 1024 else " (a previous child was larger)"
    print(
        f"agent memory, --simulate          max RSS {rss_mb:5.1f} MB after {hours:g} simulated h"
        f"   (aim < 60 MB; includes the simulator and numpy){note}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller runs, rougher figures")
    args = parser.parse_args()
    scale = 0.1 if args.quick else 1.0
    print(f"sbms-edge-agent benchmarks, Python {sys.version.split()[0]}")
    bench_control(int(20000 * scale))
    bench_sample_cycle(int(5000 * scale))
    bench_simulator(30 * scale)
    bench_simulated_agent_days(24 * scale)
    bench_memory(6 * scale)


if __name__ == "__main__":
    main()
