"""A dead or hung agent leaves chargers and loads off, in hardware (issue 13, docs/safety.md).

The real `sbms-agent` runs as a subprocess on its normal hardware path, with a configuration
file that has the heartbeat line, and its I2C bus served by a simulated box in this process
(`--simulated-bus`). The box has the heartbeat one-shot: an output conducts only within
hold_s (1.5 s) of the last pulse. After a SIGKILL or SIGSTOP the MCP23008 keeps driving its
pins, so only the one-shot can switch the outputs off.

Everything is measured in box time: the kill happens with the box's clock frozen (requests
already on the wire are still served, stamped at the kill), so a slow machine can make the
test wait longer but cannot change what it measures.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from edge_agent.config import AgentConfig, config_to_dict
from edge_agent.simulator.box import BoxSpec, BoxTruth, HeartbeatGateSpec, SimulatedBox
from edge_agent.simulator.bus_server import BusServer
from edge_agent.simulator.harness import simulated_config
from edge_agent.simulator.pv import CloudSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
GATE = HeartbeatGateSpec(pin=7, hold_s=1.5)
OFF_WITHIN_S = 2.0  # the documented bound for a dead agent's outputs (hold_s as built)
ENVELOPE_MARGIN_V = 0.020
WATCH_S = 4 * 3600.0  # how long after the kill the cells must stay inside the envelope
SETTLE_S = 3.5  # box seconds of conducting before the signal (half a sample off the grid)
WAIT_S = 60.0  # generous: a busy machine may be slow to start a Python process
CLEAR_SKY = CloudSpec(sunny_probability=1.0, mixed_probability=0.0, sunny_passing_clouds_per_day=0)

pytestmark = pytest.mark.usefixtures("allow_unix_sockets")


@dataclass(frozen=True)
class Scenario:
    name: str
    local_hour: float  # the box's local time when the test starts
    initial_soc: float


CHARGING_A_FULL_PACK = Scenario("charging", local_hour=12.0, initial_soc=0.97)
DISCHARGING_AN_EMPTY_PACK = Scenario("discharging", local_hour=23.0, initial_soc=0.06)
SCENARIOS = [
    pytest.param(CHARGING_A_FULL_PACK, id="charging"),
    pytest.param(DISCHARGING_AN_EMPTY_PACK, id="discharging"),
]


def box_spec(scenario: Scenario, gate: HeartbeatGateSpec | None) -> BoxSpec:
    """An 8S box whose clock starts now, at the scenario's local time on a clear day."""
    now = time.time()
    utc_hour = now % 86400.0 / 3600.0
    return BoxSpec.for_cells(
        8,
        start=now,
        utc_offset_hours=scenario.local_hour - utc_hour,
        latitude_deg=10.0,  # a strong noon sun in any season
        clouds=CLEAR_SKY,
        initial_soc=scenario.initial_soc,
        soc_spread=0.005,
        heartbeat_gate=gate,
    )


@dataclass
class RunningAgent:
    server: BusServer
    process: subprocess.Popen[bytes]
    config: AgentConfig
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")


@contextmanager
def running_agent(scenario: Scenario, gate: HeartbeatGateSpec | None) -> Iterator[RunningAgent]:
    """`sbms-agent --config FILE --simulated-bus SOCKET` on a served box."""
    # Unix socket paths are limited to ~100 bytes: pytest's tmp_path can be longer.
    with tempfile.TemporaryDirectory(prefix="sbms-") as directory:
        folder = Path(directory)
        spec = box_spec(scenario, gate)
        config = simulated_config(spec, state_path=folder / "state.db")
        config_file = folder / "agent.yaml"
        config_file.write_text(json.dumps(config_to_dict(config)), encoding="utf-8")  # JSON is YAML
        log = folder / "agent.log"
        with (
            BusServer(SimulatedBox(spec), folder / "bus.sock") as server,
            log.open("wb") as log_file,
        ):
            process = start_agent(config_file, server.socket_path, log_file.fileno())
            try:
                yield RunningAgent(server, process, config, log)
            finally:
                end(process)


def start_agent(config_file: Path, bus_socket: Path, log_fd: int) -> subprocess.Popen[bytes]:
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    environment.pop("NOTIFY_SOCKET", None)
    command = [sys.executable, "-m", "edge_agent", "--config", str(config_file)]
    command += ["--simulated-bus", str(bus_socket), "--quiet"]
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.DEVNULL, stderr=log_fd, cwd=REPO_ROOT
    )


def end(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGCONT)
    process.terminate()
    try:
        process.wait(timeout=WAIT_S)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def conducting(truth: BoxTruth) -> bool:
    """The charge source and the loads both conduct, and go on doing so."""
    return truth.loads_on and truth.pv_primary_on and truth.outputs_enabled


def nothing_conducts(truth: BoxTruth) -> bool:
    """No charge-wired (PV DSSRs, charger) and no load-wired output conducts."""
    return not (truth.loads_on or truth.pv_primary_on or truth.pv_secondary_on or truth.charger_on)


def wait_for_truth(run: RunningAgent, condition: Callable[[BoxTruth], bool], what: str) -> BoxTruth:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        truth = run.server.truth()
        if condition(truth):
            return truth
        if run.process.poll() is not None and run.process.returncode != -signal.SIGKILL:
            pytest.fail(f"the agent exited ({run.process.returncode}):\n{run.log_text()}")
        time.sleep(0.02)
    pytest.fail(f"no {what} within {WAIT_S:g} s of real time; agent log:\n{run.log_text()}")


def conducting_a_while(truth: BoxTruth) -> bool:
    """Conducting for a few samples: the signal then falls anywhere between two pulses."""
    return conducting(truth) and truth.timestamp - truth.outputs_since >= SETTLE_S


def signal_while_conducting(run: RunningAgent, signal_number: int) -> float:
    """Send the signal at a box time when the outputs conduct; returns that time. The box's
    clock stands still until the agent has stopped and its last requests were served."""
    while True:
        wait_for_truth(run, conducting_a_while, "outputs conducting")
        with run.server.frozen() as signalled_at:
            with run.server.locked() as box:
                if not conducting(box.truth):  # a late sample let the gate drop: try again
                    continue
                box.reset_extremes()
            os.kill(run.process.pid, signal_number)
            wait_until_signalled(run.process, signal_number)
            run.server.wait_until_idle()
        return signalled_at


def wait_until_signalled(process: subprocess.Popen[bytes], signal_number: int) -> None:
    if signal_number == signal.SIGSTOP:
        _, status = os.waitpid(process.pid, os.WUNTRACED)
        assert os.WIFSTOPPED(status)
    else:
        assert process.wait(timeout=WAIT_S) == -signal_number


def assert_outputs_off_within_the_bound(run: RunningAgent, signalled_at: float) -> float:
    """Returns the delay from the signal to the outputs going off, in box time."""
    off = wait_for_truth(run, nothing_conducts, "outputs off")
    delay = off.outputs_since - signalled_at
    assert 0.0 < delay <= OFF_WITHIN_S
    assert off.heartbeat_at is not None
    assert off.outputs_since == pytest.approx(off.heartbeat_at + GATE.hold_s, abs=1e-6)
    with run.server.locked() as box:  # the expander still drives them: only the gate is off
        assert box.mcp.output_levels()[:2] == (True, True)
    return delay


def cells_after_watching(run: RunningAgent) -> BoxTruth:
    """The box WATCH_S after the signal (fast-forwarded: the agent is dead or stopped)."""
    run.server.fast_forward(WATCH_S)
    return run.server.truth()


def assert_inside_the_envelope(run: RunningAgent, truth: BoxTruth) -> None:
    cells = run.config.control.cells
    assert truth.max_cell_voltage_seen < cells.ovlo + ENVELOPE_MARGIN_V
    assert truth.min_cell_voltage_seen > cells.uvlo - ENVELOPE_MARGIN_V


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_a_killed_agents_outputs_go_off_in_hardware_and_stay_off(scenario: Scenario) -> None:
    with running_agent(scenario, GATE) as run:
        killed_at = signal_while_conducting(run, signal.SIGKILL)
        delay = assert_outputs_off_within_the_bound(run, killed_at)
        print(f"{scenario.name}: SIGKILL -> outputs off after {delay:.3f} s of box time")
        watched = cells_after_watching(run)
        assert nothing_conducts(watched)
        assert_inside_the_envelope(run, watched)


@pytest.mark.parametrize(
    ("scenario", "expander_resets"),
    [
        pytest.param(CHARGING_A_FULL_PACK, True, id="charging-expander-reset-meanwhile"),
        pytest.param(DISCHARGING_AN_EMPTY_PACK, False, id="discharging"),
    ],
)
def test_a_stopped_agents_outputs_go_off_and_come_back_when_it_continues(
    scenario: Scenario, expander_resets: bool
) -> None:
    with running_agent(scenario, GATE) as run:
        stopped_at = signal_while_conducting(run, signal.SIGSTOP)
        delay = assert_outputs_off_within_the_bound(run, stopped_at)
        print(f"{scenario.name}: SIGSTOP -> outputs off after {delay:.3f} s of box time")
        assert_inside_the_envelope(run, cells_after_watching(run))
        with run.server.locked() as box:
            if expander_resets:  # a brown-out while the agent hangs: pins back to inputs
                box.mcp.power_on_reset()
            pulses = box.truth.heartbeat_pulses
            continued_at = box.now
        run.process.send_signal(signal.SIGCONT)
        back = wait_for_truth(run, conducting, "outputs conducting again")
        assert back.outputs_since >= continued_at
        assert back.heartbeat_pulses > pulses
        with run.server.locked() as box:
            assert box.mcp.resets == int(expander_resets)
            assert box.mcp.glitches == 0
        assert ("had reset" in run.log_text()) == expander_resets


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_without_the_heartbeat_a_killed_agent_leaves_its_outputs_on(scenario: Scenario) -> None:
    """The negative control: the same kill on a box without the one-shot (and an agent
    without the heartbeat line) keeps charging or discharging past the limits."""
    with running_agent(scenario, gate=None) as run:
        assert run.config.hardware.heartbeat is None
        killed_at = signal_while_conducting(run, signal.SIGKILL)
        later = wait_for_truth(
            run, lambda truth: truth.timestamp >= killed_at + 2 * OFF_WITHIN_S, "box time"
        )
        assert conducting(later)
        assert later.outputs_since < killed_at
        watched = cells_after_watching(run)
        assert conducting(watched)
        cells = run.config.control.cells
        if scenario is CHARGING_A_FULL_PACK:
            assert watched.max_cell_voltage_seen > cells.ovlo + ENVELOPE_MARGIN_V
        else:
            assert watched.min_cell_voltage_seen < cells.uvlo - ENVELOPE_MARGIN_V
