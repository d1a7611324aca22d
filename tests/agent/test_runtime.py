"""The agent's runtime on the simulated box: sampling, failures, outputs, persistence, loop."""

from __future__ import annotations

import asyncio
import dataclasses
import errno
import itertools
import logging
from pathlib import Path

import pytest

from edge_agent.control.model import Fault, Interlock, Measurement, MeasurementFailure
from edge_agent.runtime import clock as clock_module
from edge_agent.runtime.clock import WallClock
from edge_agent.runtime.loop import run_agent
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.state_store import StateStore

ISL, BATTERY_INA, MCP = 0x28, 0x40, 0x20
OV_THRESHOLD_REGISTER = 0x00
MV_PER_CODE = 1.8 * 8 / (4095 * 3) * 1000


def _system(
    cells: int = 8, store: StateStore | None = None, sample_interval_s: float = 1.0
) -> SimulatedSystem:
    spec = BoxSpec.for_cells(cells)
    return SimulatedSystem(spec, simulated_config(spec, sample_interval_s=sample_interval_s), store)


def _physical_outputs(system: SimulatedSystem) -> dict[str, bool]:
    """What the MCP23008's pins really do (all outputs are active-high in the simulated box)."""
    levels = system.box.mcp.output_levels()
    return {"extio3": levels[0], "extio4": levels[1], "extio5": levels[2], "extio6": levels[3]}


def test_a_sample_carries_cells_currents_temperatures_and_hardware_charge() -> None:
    system = _system(cells=4)
    first = system.run(1.0)
    second = system.run(10.0)

    assert first is not None
    assert second is not None
    measurement = second.measurement
    assert isinstance(measurement, Measurement)
    truth = system.box.truth
    assert len(measurement.cell_voltages) == 4
    for measured, true in zip(measurement.cell_voltages, truth.cell_voltages, strict=True):
        assert measured == pytest.approx(true, abs=0.002)
    assert measurement.battery_current == pytest.approx(truth.battery_current, abs=0.05)
    assert measurement.charge_delta_ah is not None  # the INA228 accumulator, not integration
    assert measurement.internal_temperature == pytest.approx(truth.internal_temperature_c, abs=1)
    assert measurement.external_temperatures[0] == pytest.approx(truth.battery_temperature_c, abs=1)
    assert measurement.external_temperatures[1] is None  # xT2 is left open in the box


def test_cell_monitor_failure_turns_charge_and_load_off_and_asserts_fault_then_recovers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    system = _system()
    system.run(60)
    assert _physical_outputs(system) == {
        "extio3": True,
        "extio4": True,
        "extio5": False,
        "extio6": False,
    }

    system.box.bus.fail(ISL, errno.EREMOTEIO)
    with caplog.at_level(logging.WARNING):
        report = system.run(2.0)
    assert report is not None
    assert Fault.MEASUREMENT_FAILURE not in report.faults  # not stale yet
    assert system.agent.controller.last_failure_reason is not None
    assert "0x28" in system.agent.controller.last_failure_reason

    report = system.run(system.config.control.stale_after_s + 1)
    assert report is not None
    assert Fault.MEASUREMENT_FAILURE in report.faults
    assert Interlock.MEASUREMENT_STALE in report.interlocks
    assert _physical_outputs(system) == {
        "extio3": False,
        "extio4": False,
        "extio5": False,
        "extio6": True,
    }
    failure_logs = [r for r in caplog.records if "Measurement failed" in r.getMessage()]
    assert len(failure_logs) == 1  # once per outage, not once per sample

    system.box.bus.heal(ISL)
    report = system.run(2.0)
    assert report is not None
    assert report.faults == frozenset()
    assert _physical_outputs(system)["extio3"] is True
    assert _physical_outputs(system)["extio6"] is False


def test_cell_monitor_thresholds_are_rewritten_after_it_comes_back() -> None:
    system = _system()
    system.run(5)
    # The chip's over-voltage threshold carries the agent's OVLO: the last line.
    ovlo_code = round(system.config.control.cells.ovlo * 1000 / MV_PER_CODE)
    bus = system.box.bus
    assert bus.read_word_data(ISL, OV_THRESHOLD_REGISTER) & 0x0FFF == ovlo_code

    # The chip browns out: it reloads its EEPROM defaults and misses a few polls.
    bus.write_word_data(ISL, OV_THRESHOLD_REGISTER, 0x0E80)
    bus.fail(ISL)
    system.run(3)
    bus.heal(ISL)
    system.run(2)

    assert bus.read_word_data(ISL, OV_THRESHOLD_REGISTER) & 0x0FFF == ovlo_code
    assert system.box.isl.eeprom_writes == 0


def test_a_dead_output_expander_does_not_stop_sampling(caplog: pytest.LogCaptureFixture) -> None:
    system = _system()
    system.run(5)
    system.box.bus.fail(MCP)
    with caplog.at_level(logging.ERROR):
        report = system.run(30)
    assert report is not None
    assert report.measurement is not None
    assert report.timestamp == pytest.approx(system.box.now)
    errors = [r for r in caplog.records if "Could not switch outputs" in r.getMessage()]
    assert len(errors) == 1


def test_state_survives_a_restart_and_counters_never_go_back(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    first = _system(store=StateStore(path), sample_interval_s=10)
    report = first.run(6 * 3600)
    assert report is not None
    first.agent.close(first.box.now)

    second = _system(store=StateStore(path), sample_interval_s=10)
    restored = second.agent.controller.snapshot()
    assert restored.soc.charge_ah / restored.soc.capacity_ah * 100 == pytest.approx(
        report.soc, abs=0.01
    )
    assert restored.counters == report.counters
    later = second.run(60)
    assert later is not None
    for name, value in dataclasses.asdict(later.counters).items():
        assert value >= getattr(report.counters, name), name
    second.agent.close(second.box.now)


def test_an_unusable_saved_state_is_reported_and_the_agent_still_protects(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save({"version": 1, "soc": "not a mapping"}, 0.0)
    with caplog.at_level(logging.ERROR):
        system = _system(store=StateStore(path))
    assert any("Saved state is unusable" in r.getMessage() for r in caplog.records)
    report = system.run(30)
    assert report is not None
    assert report.soc == pytest.approx(system.config.control.soc.initial_soc, abs=1)
    assert report.outputs["extio3"] is True
    system.agent.close(system.box.now)


async def test_the_loop_samples_on_time_and_releases_outputs_when_stopped() -> None:
    system = _system()
    clock = SimulatedClock(system.box, speed=1e9)
    stop = asyncio.Event()
    reports = []
    start = system.box.now

    taken = await run_agent(
        system.agent, clock, 2.0, stop, on_report=reports.append, max_samples=30
    )

    assert taken == 30
    stamps = [r.timestamp for r in reports]
    assert [round(b - a, 6) for a, b in itertools.pairwise(stamps)] == [2.0] * 29
    assert stamps[0] == pytest.approx(start)
    assert not any(system.box.mcp.output_levels())  # released: every pin back to input


async def test_the_loop_survives_a_failing_listener() -> None:
    system = _system()
    clock = SimulatedClock(system.box, speed=1e9)

    def broken(_report: object) -> None:
        raise RuntimeError("display bug")

    taken = await run_agent(
        system.agent, clock, 1.0, asyncio.Event(), on_report=broken, max_samples=5
    )
    assert taken == 5


def test_wall_clock_never_goes_backwards(monkeypatch: pytest.MonkeyPatch) -> None:
    wall = [1_000_000.0]
    mono = [50.0]
    monkeypatch.setattr(clock_module.time, "time", lambda: wall[0])
    monkeypatch.setattr(clock_module.time, "monotonic", lambda: mono[0])
    clock = WallClock()
    assert clock.now() == 1_000_000.0

    mono[0] += 10
    wall[0] -= 3600  # NTP steps the clock back an hour
    assert clock.now() == pytest.approx(1_000_010.0)

    mono[0] += 5
    wall[0] += 5
    assert clock.now() == pytest.approx(1_000_015.0)

    mono[0] += 1
    wall[0] = 2_000_000.0  # and forward: follow it
    assert clock.now() == 2_000_000.0


def test_measurement_failure_reason_names_bus_and_address() -> None:
    system = _system()
    system.box.bus.fail(BATTERY_INA, errno.EIO)
    report = system.run(1)
    assert report is not None
    reason = system.agent.controller.last_failure_reason
    assert reason is not None
    assert "sim-i2c-1" in reason
    assert "0x40" in reason
    assert isinstance(MeasurementFailure(0.0, reason), MeasurementFailure)


def test_an_ina226_battery_shunt_is_integrated_by_the_control_core() -> None:
    spec = BoxSpec.for_cells(4, battery_shunt_chip="ina226", pv_shunt_rating=None)
    system = SimulatedSystem(spec, simulated_config(spec))
    first = system.run(600)
    assert first is not None
    measurement = first.measurement
    assert measurement is not None
    assert measurement.charge_delta_ah is None  # no accumulator: the current is integrated
    assert measurement.pv_current is None
    soc_before, truth_before = first.soc, system.box.truth.soc_percent
    report = system.run(3 * 3600)
    assert report is not None
    moved, truly_moved = report.soc - soc_before, system.box.truth.soc_percent - truth_before
    assert abs(truly_moved) > 1.0
    assert moved == pytest.approx(truly_moved, abs=0.5)
