"""The simulator's cell curves are independent of the estimator's table (issue 16), and the
cell model around them: hysteresis, temperature, cell-to-cell spread."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import numpy as np
import pytest

from edge_agent.control.lfp_ocv import OCV_TABLE as ESTIMATOR_TABLE
from edge_agent.simulator.box import BoxSpec, SimulatedBox
from edge_agent.simulator.cell_curves import CURVES, PUBLISHED, SYNTHESIS, CellCurve, curve
from edge_agent.simulator.lfp import REAL_CELL, CellParameters
from edge_agent.simulator.pack import Pack, PackSpec

REPO_ROOT = Path(__file__).resolve().parents[2]
ESTIMATOR_SOC = np.array([soc / 100.0 for soc, _ in ESTIMATOR_TABLE])
ESTIMATOR_V = np.array([volts for _, volts in ESTIMATOR_TABLE])
PLATEAU = (ESTIMATOR_SOC >= 0.2) & (ESTIMATOR_SOC <= 0.9)


def _imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def test_at_least_three_published_curves_from_different_sources() -> None:
    assert len(PUBLISHED) >= 3
    sources = {CURVES[name].source.split(" (")[0] + CURVES[name].source for name in PUBLISHED}
    assert len(sources) == len(PUBLISHED)
    assert all("https://" in CURVES[name].source for name in PUBLISHED)


@pytest.mark.parametrize("name", PUBLISHED)
def test_published_curve_is_not_the_estimator_table(name: str) -> None:
    differences = CURVES[name].ocv(ESTIMATOR_SOC) - ESTIMATOR_V
    assert CURVES[name].table != SYNTHESIS.table
    assert np.count_nonzero(np.abs(differences) > 0.001) >= len(differences) // 2
    assert np.max(np.abs(differences[PLATEAU])) > 0.004


def test_some_published_curve_differs_by_more_than_10_mv_in_the_plateau() -> None:
    worst = max(
        float(np.max(np.abs(CURVES[name].ocv(ESTIMATOR_SOC) - ESTIMATOR_V)[PLATEAU]))
        for name in PUBLISHED
    )
    assert worst > 0.010


def test_the_synthesis_curve_is_the_estimator_table_the_control_case() -> None:
    np.testing.assert_allclose(SYNTHESIS.ocv(ESTIMATOR_SOC)[:-1], ESTIMATOR_V[:-1], atol=1e-12)


def test_simulator_and_estimator_do_not_import_each_other() -> None:
    for module in sorted((REPO_ROOT / "edge_agent" / "simulator").rglob("*.py")):
        imports = _imported_modules(module)
        assert "edge_agent.control.lfp_ocv" not in imports, module
        assert not any(name.endswith("lfp_ocv") for name in imports), module
    estimator = _imported_modules(REPO_ROOT / "edge_agent" / "control" / "lfp_ocv.py")
    assert not any("simulator" in name for name in estimator)


@pytest.mark.parametrize("name", tuple(CURVES))
def test_curves_rise_strictly_from_wrecked_to_overcharged(name: str) -> None:
    soc = np.linspace(-0.15, 1.10, 5001)
    volts = CURVES[name].ocv(soc)
    assert np.all(np.diff(volts) > 0)
    assert CURVES[name].ocv(np.array([1.01]))[0] >= 3.65
    assert CURVES[name].ocv(np.array([-0.03]))[0] < 2.5
    assert CURVES[name].ocv(np.array([-0.2]))[0] == 0.0


def test_a_curve_must_be_monotonic_and_span_0_to_1() -> None:
    with pytest.raises(ValueError, match="increase strictly"):
        CellCurve("bad", "-", ((0.0, 3.0), (0.5, 3.3), (0.6, 3.29), (1.0, 3.4)))
    with pytest.raises(ValueError, match="from SoC 0 to 1"):
        CellCurve("bad", "-", ((0.1, 3.0), (1.0, 3.4)))
    with pytest.raises(ValueError, match="unknown cell curve 'nmc'"):
        curve("nmc")
    with pytest.raises(ValueError, match="unknown cell curve"):
        BoxSpec(cell_curve="nmc")


def _pack(**overrides: object) -> Pack:
    values: dict[str, object] = {
        "self_discharge_per_month": 0.0,
        "soc_spread": 0.0,
        "capacity_spread": 0.0,
        "resistance_spread": 0.0,
        "ocv_offset_spread_v": 0.0,
        "curve": CURVES["a123"],
        "cell": REAL_CELL,
    }
    values.update(overrides)
    return Pack(PackSpec(**values), np.random.default_rng(3))  # type: ignore[arg-type]


def _run(pack: Pack, amps: float, seconds: int, temperature_c: float = 25.0) -> None:
    pack.step_block(np.full(seconds, amps), 1.0, np.zeros(pack.cell_count), temperature_c)


def test_hysteresis_separates_charge_and_discharge_rest_voltages_by_20_mv() -> None:
    charged, discharged = _pack(initial_soc=0.4), _pack(initial_soc=0.6)
    _run(charged, 10.0, 7236)  # to 60 % ... 20 Ah in, with the 0.995 charge efficiency
    _run(discharged, -10.0, 7200)  # ... and down to 40 %, then both back to 50 %
    _run(charged, -10.0, 3600)
    _run(discharged, 10.0, 3618)
    np.testing.assert_allclose(charged.soc, discharged.soc, atol=1e-4)
    _run(charged, 0.0, 4 * 3600)
    _run(discharged, 0.0, 4 * 3600)
    gap = charged.cell_voltages - discharged.cell_voltages
    # After 10 Ah the other way (10 % of capacity, 3x hysteresis_soc), each sits on its branch.
    # h = -1 + 2 exp(-10 / 3) = -0.93: 18.6 mV of the 20 mV gap (last went down: discharge).
    assert np.all(gap < -0.018)
    assert np.all(gap > -0.0201)
    assert np.all(charged.hysteresis < -0.9)
    assert np.all(discharged.hysteresis > 0.9)


def test_the_default_cell_is_the_idealised_one() -> None:
    params = CellParameters()
    assert params.hysteresis_v == 0.0
    assert params.resistance_factor(-20.0) == 1.0
    assert params.capacity_factor(-20.0) == 1.0


def test_cold_raises_resistance_like_arrhenius() -> None:
    params = REAL_CELL
    assert params.resistance_factor(25.0) == pytest.approx(1.0)
    assert 1.3 < params.resistance_factor(5.0) < 1.5
    assert params.resistance_factor(-20.0) > 2.0
    assert params.resistance_factor(40.0) < 1.0
    warm, cold = _pack(initial_soc=0.5), _pack(initial_soc=0.5)
    _run(warm, -50.0, 60, 25.0)
    _run(cold, -50.0, 60, 0.0)
    assert np.all(cold.cell_voltages < warm.cell_voltages - 0.01)  # more sag under load


def test_cold_cells_hold_less_usable_charge_at_the_same_resting_voltage() -> None:
    params = REAL_CELL
    assert params.capacity_factor(25.0) == 1.0
    assert params.capacity_factor(35.0) == 1.0
    assert params.capacity_factor(0.0) == pytest.approx(0.90)
    pack = _pack(initial_soc=0.5)
    warm_ah, warm_soc = pack.usable_remaining_ah, pack.soc_fraction
    _run(pack, 0.0, 1, 0.0)
    # What it can deliver in the cold shrinks at the empty end; the charge it holds does not.
    assert pack.usable_remaining_ah == pytest.approx(warm_ah - 0.1 * 100.0, rel=1e-6)
    assert pack.headroom_ah == pytest.approx(50.0)
    assert pack.usable_soc_fraction < 0.5 - 0.05
    assert pack.soc_fraction == pytest.approx(warm_soc)
    # OCV is thermodynamic: a rested cold cell reads what a warm one does (the cold shows
    # under load instead: test_cold_raises_resistance_like_arrhenius).
    warm = _pack(initial_soc=0.12)
    cold = _pack(initial_soc=0.12)
    _run(warm, 0.0, 1, 25.0)
    _run(cold, 0.0, 1, 0.0)
    assert np.allclose(cold.open_circuit_voltages, warm.open_circuit_voltages, atol=1e-9)


def test_cells_differ_in_capacity_resistance_and_ocv_offset() -> None:
    pack = Pack(PackSpec(ocv_offset_spread_v=0.003), np.random.default_rng(5))
    assert np.ptp(pack.capacities_ah) > 0.0
    assert np.ptp(pack.resistances_ohm) > 0.0
    assert np.all(np.abs(pack.ocv_offsets_v) <= 0.003)
    assert np.ptp(pack.ocv_offsets_v) > 0.001


def test_box_runs_each_curve_and_its_rest_voltage_follows_that_curve() -> None:
    rest = {}
    for name in CURVES:
        spec = dataclasses.replace(
            BoxSpec.for_cells(4, cell_curve=name, initial_soc=0.5),
            ocv_offset_spread_v=0.0,
            soc_spread=0.0,
        )
        box = SimulatedBox(spec)
        box.force_output_levels([False] * 8)
        box.set_ambient_temperature_override(25.0)
        box.advance(3 * 3600)
        rest[name] = float(np.mean(box.truth.cell_voltages))
    # Under a 3 W base load each sits a few mV below its own curve's 50 % point.
    for name, volts in rest.items():
        assert CURVES[name].ocv(np.array([0.5]))[0] - 0.02 < volts, name
        assert volts < CURVES[name].ocv(np.array([0.5]))[0], name
    assert len({round(v, 3) for v in rest.values()}) == len(CURVES)


def test_the_slow_scenarios_run_every_curve() -> None:
    from tests.agent.test_scenarios import (
        CURVE_NAMES,
        KNOWN_MISSES,
        PROTECTION_CASES,
        SOC_ERROR_CASES,
    )

    assert set(CURVE_NAMES) == set(CURVES)
    assert {curve for _, curve in PROTECTION_CASES} == set(CURVES)
    cases = [*SOC_ERROR_CASES, *KNOWN_MISSES]
    names = {case if isinstance(case, str) else case.values[0] for case in cases}
    assert names == set(CURVES)
