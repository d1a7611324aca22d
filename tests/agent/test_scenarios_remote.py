"""Thirty days of the real agent on the simulated box while remote requests keep arriving.

Three times a simulated day a batch of requests goes through the real `RemoteControl`:
hostile ones (every attack of issue 13), the loosest settings the default window allows
(OVLO 3.75 V, UVLO 2.50 V, the longest delays, the narrowest hystereses), random settings
inside and outside the window, output type changes and holds. Whatever was accepted, the
simulated cells never rise above OVLO + 20 mV nor fall below UVLO - 20 mV (the lockouts in
force over the last ten minutes: a lower limit set a moment ago cannot pull a cell down at
once), and never leave the envelope.

Samples every 10 s as the other month-long scenarios: ten times longer between two decisions
than on a box, so the limits are harder to hold, not easier.
"""

from __future__ import annotations

import dataclasses
import json
import random
from collections import deque
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config import effective_remote_window
from edge_agent.control.envelope import (
    DISCHARGE_VOLTAGE_MIN,
    LOCKOUT_VOLTAGE_MAX,
    envelope_problems,
)
from edge_agent.control.model import ControlReport, EventKind
from edge_agent.runtime.remote import RemoteControl
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.config_overlay import ConfigOverlay, overlay_path_for
from tests.agent.test_remote_safety import ATTACKS
from tests.agent.test_scenarios import _hard_month

DAY = 86400.0
SAMPLE_INTERVAL_S = 10.0
MARGIN_V = 0.020
MEMORY_S = 600.0

# The loosest protection the default window lets Home Assistant set.
LOOSEST: list[dict[str, Any]] = [
    {
        "thresholds": {
            "ovlo": 3.75,
            "hvd": 3.6,
            "hvd_reconnect": 3.5,
            "eoc": 3.55,
            "ovlo_delay_s": 2,
            "hvd_delay_s": 5,
        }
    },
    {
        "thresholds": {
            "uvlo": 2.5,
            "lvd": 3.0,
            "lvd_reconnect": 3.1,
            "uvlo_delay_s": 2,
            "lvd_delay_s": 30,
            "lockout_release_margin": 0.05,
        }
    },
    {"temperature": {"charge_min": 0, "charge_max": 45, "charge_hysteresis": 1}},
]
_IN_WINDOW = {
    "hvd": (3.45, 3.6),
    "lvd": (3.0, 3.2),
    "ovlo": (3.65, 3.75),
    "uvlo": (2.5, 2.6),
    "lvd_delay_s": (1.0, 30.0),
    "hvd_delay_s": (0.0, 5.0),
}


def _requests(rng: random.Random) -> list[tuple[str, dict[str, Any]]]:
    batch: list[tuple[str, dict[str, Any]]] = []
    for _ in range(rng.randint(2, 6)):
        kind = rng.random()
        if kind < 0.3:
            batch.append(("config/set", rng.choice(ATTACKS)[1]))
        elif kind < 0.5:
            batch.append(("config/set", rng.choice(LOOSEST)))
        elif kind < 0.75:
            key = rng.choice(sorted(_IN_WINDOW))
            low, high = _IN_WINDOW[key]
            value = rng.uniform(low - 0.1 * (high - low), high + 0.1 * (high - low))
            batch.append(("config/set", {"thresholds": {key: round(value, 3)}}))
        elif kind < 0.9:
            output = rng.choice(["extio3", "extio4", "extio5", "extio6"])
            batch.append(("config/set", {"outputs": {output: {"type": rng.randint(0, 6)}}}))
        else:
            output = rng.choice(["extio3", "extio4", "extio5"])
            batch.append(("force_off", {"output": output, "seconds": rng.uniform(60, 7200)}))
    return batch


@dataclasses.dataclass
class Watch:
    system: SimulatedSystem
    remote: RemoteControl
    rng: random.Random
    lockouts: deque[tuple[float, float, float]] = dataclasses.field(default_factory=deque)
    accepted: int = 0
    rejected: int = 0
    next_batch: float = 0.0
    problems: list[str] = dataclasses.field(default_factory=list)
    trips: dict[EventKind, int] = dataclasses.field(default_factory=dict)

    def __call__(self, report: ControlReport) -> None:
        now = report.timestamp
        for event in report.events:
            self.trips[event.kind] = self.trips.get(event.kind, 0) + 1
        cells = self.system.agent.controller.settings.cells
        self.lockouts.append((now, cells.ovlo, cells.uvlo))
        while self.lockouts and self.lockouts[0][0] < now - MEMORY_S:
            self.lockouts.popleft()
        highest_ovlo = max(ovlo for _, ovlo, _ in self.lockouts)
        lowest_uvlo = min(uvlo for _, _, uvlo in self.lockouts)
        truth = self.system.box.truth
        top, bottom = max(truth.cell_voltages), min(truth.cell_voltages)
        if top > highest_ovlo + MARGIN_V or top > LOCKOUT_VOLTAGE_MAX + MARGIN_V:
            self.problems.append(f"{now}: a cell at {top:.3f} V, OVLO {highest_ovlo}")
        if bottom < lowest_uvlo - MARGIN_V or bottom < DISCHARGE_VOLTAGE_MIN - MARGIN_V:
            self.problems.append(f"{now}: a cell at {bottom:.3f} V, UVLO {lowest_uvlo}")
        if now >= self.next_batch:
            self._send_batch(now)

    def _send_batch(self, now: float) -> None:
        for name, fields in _requests(self.rng):
            payload = json.dumps(fields if name != "config/set" else {"config": fields}).encode()
            if name == "config/set":
                result = self.remote.handle_config_set(payload, now)
            else:
                result = self.remote.handle_command(name, payload, now)
            if result.accepted:
                self.accepted += 1
            else:
                self.rejected += 1
                assert result.errors
                assert all(field for field, _ in result.errors)
        assert envelope_problems(self.remote.config.control) == []
        self.next_batch = now + DAY / 3 * self.rng.uniform(0.7, 1.3)


@pytest.mark.slow
@pytest.mark.parametrize("cells", [4, 8])
def test_thirty_days_of_remote_requests_never_take_a_cell_past_a_lockout(
    cells: int, tmp_path: Path
) -> None:
    spec = _hard_month(cells)
    file_config = simulated_config(
        spec, sample_interval_s=SAMPLE_INTERVAL_S, state_path=tmp_path / "state.db"
    )
    system = SimulatedSystem(spec, file_config)
    overlay = ConfigOverlay(overlay_path_for(tmp_path / "state.db"))
    remote = RemoteControl(system.agent, file_config, overlay, system.box.now)
    watch = Watch(system, remote, random.Random(cells))

    system.run(30 * DAY, watch)

    print(
        f"{cells}S: {watch.accepted} requests accepted, {watch.rejected} rejected; "
        f"max cell {system.box.truth.max_cell_voltage_seen:.3f} V, "
        f"min {system.box.truth.min_cell_voltage_seen:.3f} V; trips {watch.trips}"
    )
    assert watch.problems == []
    assert watch.accepted >= 30
    assert watch.rejected >= 30
    assert watch.trips.get(EventKind.HVD_TRIP, 0) >= 3
    assert watch.trips.get(EventKind.LVD_TRIP, 0) >= 1
    assert effective_remote_window(remote.config) == effective_remote_window(file_config)
    assert [o.wiring for o in remote.config.control.outputs] == [
        o.wiring for o in file_config.control.outputs
    ]
