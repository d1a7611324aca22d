"""Physics of the simulated box: LFP cells, the pack, PV, weather and loads (no chips)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.simulator.lfp import (
    OCV_TABLE,
    CellParameters,
    open_circuit_voltage,
    soc_from_open_circuit_voltage,
)
from edge_agent.simulator.loads import HouseholdLoadSpec, generate_day_load, load_current
from edge_agent.simulator.pack import Pack, PackSpec
from edge_agent.simulator.pv import (
    PANEL_72_CELL,
    CloudClass,
    PvArraySpec,
    SiteSpec,
    clear_sky_irradiance,
    dssr20_current,
    generate_day_weather,
    panel_temperature,
    pv_array_current,
)

JUNE_1_2026_DAY = 20605  # local day index of 2026-06-01 at UTC+0
DECEMBER_1_2026_DAY = JUNE_1_2026_DAY + 183


def make_pack(**overrides: object) -> Pack:
    values: dict[str, object] = {"self_discharge_per_month": 0.0, "soc_spread": 0.0}
    values.update(overrides)
    return Pack(PackSpec(**values), np.random.default_rng(7))  # type: ignore[arg-type]


def run(pack: Pack, current_a: float, seconds: int, balancing: np.ndarray | None = None) -> None:
    mask = np.zeros(pack.cell_count) if balancing is None else balancing
    pack.step_block(np.full(seconds, current_a), 1.0, mask)


# -- OCV --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("soc", "volts"), OCV_TABLE)
def test_ocv_matches_the_facts_table(soc: float, volts: float) -> None:
    assert open_circuit_voltage(soc) == pytest.approx(volts, abs=1e-9)
    assert soc_from_open_circuit_voltage(volts) == pytest.approx(soc, abs=1e-9)


def test_ocv_is_strictly_increasing_far_beyond_full_and_empty() -> None:
    soc = np.linspace(-0.15, 1.10, 5001)
    volts = open_circuit_voltage(soc)
    assert np.all(np.diff(volts) > 0)
    assert open_circuit_voltage(-5.0) == 0.0  # a wrecked cell, not a negative voltage
    assert open_circuit_voltage(5.0) == 5.0


def test_overcharged_cell_passes_hvd_quickly_and_overdischarged_collapses() -> None:
    assert open_circuit_voltage(1.0) == pytest.approx(3.42)
    assert open_circuit_voltage(1.01) >= 3.65
    assert open_circuit_voltage(1.03) > 3.75  # past the default OVLO
    assert open_circuit_voltage(-0.01) < 2.5


@given(st.floats(min_value=-0.15, max_value=1.10))
def test_ocv_inverse_round_trips(soc: float) -> None:
    assert soc_from_open_circuit_voltage(open_circuit_voltage(soc)) == pytest.approx(soc, abs=1e-9)


# -- cells and pack ---------------------------------------------------------------------------


def test_slow_charge_sits_about_28_mv_above_ocv() -> None:
    pack = make_pack(capacity_spread=0.0)
    run(pack, 5.0, 3 * 3600)  # C/20
    offset = pack.cell_voltages - pack.open_circuit_voltages
    assert np.all((offset > 0.020) & (offset < 0.036))


def test_relaxes_to_within_6_mv_of_ocv_after_90_minutes_rest() -> None:
    pack = make_pack()
    run(pack, 20.0, 2 * 3600)  # C/5 leaves a large polarisation
    assert np.all(pack.cell_voltages - pack.open_circuit_voltages > 0.04)
    run(pack, -0.5, 90 * 60)  # below C/100: a base load
    offset = np.abs(pack.cell_voltages - pack.open_circuit_voltages)
    assert np.all(offset < 0.006)


def test_relaxation_is_gradual_not_instant() -> None:
    pack = make_pack()
    run(pack, 20.0, 3600)
    run(pack, 0.0, 5 * 60)
    offset = pack.cell_voltages - pack.open_circuit_voltages
    assert np.all(offset > 0.015)  # still well polarised after 5 minutes


def test_coulomb_bookkeeping_with_charge_efficiency() -> None:
    pack = make_pack()
    efficiency = CellParameters().charge_efficiency
    start = pack.soc * pack.capacities_ah
    run(pack, 10.0, 3600)
    charged = pack.soc * pack.capacities_ah - start
    np.testing.assert_allclose(charged, 10.0 * efficiency, rtol=1e-9)
    run(pack, -10.0, 3600)
    discharged = pack.soc * pack.capacities_ah - start - charged
    np.testing.assert_allclose(discharged, -10.0, rtol=1e-9)


def test_self_discharge_is_at_most_3_percent_a_month_and_not_zero() -> None:
    pack = make_pack(self_discharge_per_month=0.03)
    start = pack.soc.copy()
    pack.step_block(np.zeros(30 * 24), 3600.0, np.zeros(8))
    lost = start - pack.soc
    assert np.all(lost > 0.0)
    assert np.all(lost <= 0.03 + 1e-12)
    assert len(set(np.round(lost, 6))) > 1  # cells differ: this is what unbalances a pack


def test_balancing_bleeds_only_the_flagged_cells() -> None:
    pack = make_pack(initial_soc=0.9)
    start = pack.soc * pack.capacities_ah
    volts = pack.cell_voltages.copy()
    mask = np.array([1.0, 0, 1.0, 0, 0, 0, 0, 0])
    run(pack, 0.0, 3600, mask)
    lost = start - pack.soc * pack.capacities_ah
    expected = mask * volts / 24.0  # about 0.14 Ah in an hour through 24 Ohm
    np.testing.assert_allclose(lost, expected, rtol=0.01, atol=1e-9)
    assert lost[0] > 0.13
    np.testing.assert_allclose(pack.bled_ah, expected, rtol=0.01, atol=1e-9)


def test_extremes_catch_a_spike_between_samples_and_reset() -> None:
    pack = make_pack(initial_soc=0.995)
    current = np.zeros(600)
    current[100:110] = 200.0  # a 10 s surge: a sampler at 60 s would miss it
    current[110:] = -1.0
    pack.step_block(current, 1.0, np.zeros(8))
    assert pack.max_cell_voltage_seen > pack.cell_voltages.max() + 0.05
    pack.reset_extremes()
    assert pack.max_cell_voltage_seen == pytest.approx(pack.cell_voltages.max())
    assert pack.min_cell_voltage_seen == pytest.approx(pack.cell_voltages.min())


def test_pushing_past_full_reaches_ovlo_fast() -> None:
    pack = make_pack(initial_soc=0.99)
    run(pack, 18.0, 2 * 3600)  # two 72-cell panels nobody switches off
    assert pack.max_cell_voltage_seen > 3.75


def test_pack_soc_is_usable_charge_between_first_empty_and_first_full() -> None:
    pack = make_pack(capacity_spread=0.0)
    pack.soc = np.array([0.5] * 8)
    assert pack.soc_fraction == pytest.approx(0.5)
    pack.soc = np.array([0.4, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert pack.remaining_ah == pytest.approx(0.4 * pack.capacities_ah[0])
    assert pack.soc_fraction == pytest.approx(0.4 / 0.8)  # 40 Ah out, 40 Ah in
    pack.soc = np.array([0.0, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert pack.soc_fraction == 0.0
    pack.soc = np.array([1.0, 0.6, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5])
    assert pack.soc_fraction == 1.0


def test_pack_spread_is_seeded_and_bounded() -> None:
    spec = PackSpec(capacity_spread=0.02, soc_spread=0.02)
    first = Pack(spec, np.random.default_rng(3))
    again = Pack(spec, np.random.default_rng(3))
    other = Pack(spec, np.random.default_rng(4))
    np.testing.assert_array_equal(first.capacities_ah, again.capacities_ah)
    assert not np.array_equal(first.capacities_ah, other.capacities_ah)
    assert np.all(np.abs(first.capacities_ah - 100.0) <= 2.0)
    assert np.all(np.abs(first.soc - 0.5) <= 0.02)


@pytest.mark.parametrize("cells", [2, 9])
def test_pack_rejects_unsupported_cell_counts(cells: int) -> None:
    with pytest.raises(ValueError, match="cell_count"):
        PackSpec(cell_count=cells)


def _spread_at_first_full(spec: PackSpec) -> float:
    """Charge at C/5 until the first cell reaches 3.55 V (HVD); the spread then, volts."""
    pack = Pack(spec, np.random.default_rng(3))
    while pack.cell_voltages.max() < 3.55:
        pack.step_block(np.full(60, 20.0), 1.0, np.zeros(spec.cell_count))
    return float(pack.cell_voltages.max() - pack.cell_voltages.min())


def test_a_top_balanced_pack_reaches_full_together_and_an_unbalanced_one_does_not() -> None:
    """The demo's pack (issue 20): cells that lack the same charge reach the top within
    about 10 mV of each other (resistance spread alone); the same cells drawn +-2 % apart
    in SoC reach it hundreds of millivolts apart, as a new unbalanced pack does."""
    balanced = _spread_at_first_full(PackSpec(top_balanced=True))
    unbalanced = _spread_at_first_full(PackSpec())
    assert balanced < 0.03
    assert unbalanced > 0.15


# -- PV ---------------------------------------------------------------------------------------


def test_pv_is_a_current_source_below_the_knee() -> None:
    array = PvArraySpec(panel=PANEL_72_CELL, panels_in_parallel=2)
    volts = np.linspace(0.0, 32.0, 50)  # beyond a full 8S pack, below the hot knee
    current = pv_array_current(array, volts, np.full(50, 800.0), np.full(50, 45.0))
    expected = 18.0 * 0.8 * (1.0 + 0.00045 * 20.0)
    np.testing.assert_allclose(current, expected, rtol=1e-12)


def test_pv_knee_falls_smoothly_to_zero_at_voc() -> None:
    array = PvArraySpec()
    volts = np.linspace(30.0, 50.0, 401)
    current = pv_array_current(array, volts, np.full(401, 1000.0), np.full(401, 25.0))
    assert current[0] == pytest.approx(18.0)
    assert np.all(np.diff(current) <= 1e-12)  # never rises with voltage
    assert np.max(np.abs(np.diff(current))) < 1.0  # no cliff: at most 1 A per 50 mV
    at_knee = pv_array_current(array, 0.8 * 46.0 + 0.5, np.array([1000.0]), np.array([25.0]))
    assert 0.95 * 18.0 < at_knee[0] < 18.0
    at_voc = pv_array_current(array, 46.0, np.array([1000.0]), np.array([25.0]))
    assert at_voc[0] == pytest.approx(0.0, abs=1e-9)
    assert current[-1] == 0.0


def test_hot_panel_has_more_current_and_a_lower_voc() -> None:
    array = PvArraySpec()
    cold = pv_array_current(array, np.array([20.0, 38.0]), np.full(2, 1000.0), np.full(2, 25.0))
    hot = pv_array_current(array, np.array([20.0, 38.0]), np.full(2, 1000.0), np.full(2, 65.0))
    assert hot[0] > cold[0]  # +0.045 %/K on Isc
    assert hot[1] < cold[1]  # Voc -0.29 %/K pulls the knee down


def test_panel_temperature_follows_noct() -> None:
    assert panel_temperature(np.array([20.0]), np.array([800.0]), 45.0)[0] == pytest.approx(45.0)


def test_dssr20_switches_and_blocks_reverse_current() -> None:
    source = np.array([5.0, -2.0, 0.0])
    np.testing.assert_array_equal(dssr20_current(True, source), [5.0, 0.0, 0.0])
    np.testing.assert_array_equal(dssr20_current(False, source), [0.0, 0.0, 0.0])


# -- sun, clouds, temperature -----------------------------------------------------------------


def test_irradiance_is_zero_at_night_and_peaks_near_solar_noon() -> None:
    site = SiteSpec(latitude_deg=45.0)
    seconds = np.arange(86400, dtype=np.float64)
    clear = clear_sky_irradiance(site, JUNE_1_2026_DAY, seconds)
    assert clear[0] == 0.0
    assert clear[23 * 3600] == 0.0
    assert abs(int(np.argmax(clear)) - 12 * 3600) <= 60
    assert 850.0 < clear.max() < 1100.0
    winter = clear_sky_irradiance(site, DECEMBER_1_2026_DAY, seconds)
    assert winter.sum() < 0.7 * clear.sum()  # shorter, lower days


def test_time_zone_moves_solar_noon_on_the_utc_clock_only() -> None:
    seconds = np.arange(86400, dtype=np.float64)
    local = clear_sky_irradiance(SiteSpec(utc_offset_hours=2.0), JUNE_1_2026_DAY, seconds)
    assert abs(int(np.argmax(local)) - 12 * 3600) <= 60  # noon at 12:00 local


def test_cloudy_days_differ_by_seed_and_repeat_for_the_same_seed() -> None:
    site = SiteSpec()
    days = range(JUNE_1_2026_DAY, JUNE_1_2026_DAY + 10)
    first = [generate_day_weather(site, 1, day) for day in days]
    again = [generate_day_weather(site, 1, day) for day in days]
    other = [generate_day_weather(site, 2, day) for day in days]
    for a, b in zip(first, again, strict=True):
        np.testing.assert_array_equal(a.irradiance_w_m2, b.irradiance_w_m2)
    assert any(
        not np.array_equal(a.irradiance_w_m2, b.irradiance_w_m2)
        for a, b in zip(first, other, strict=True)
    )
    classes = {day.cloud_class for day in first + other}
    assert classes == set(CloudClass)


def test_cloud_classes_order_daily_energy() -> None:
    site = SiteSpec()
    energy: dict[CloudClass, list[float]] = {c: [] for c in CloudClass}
    for day in range(JUNE_1_2026_DAY, JUNE_1_2026_DAY + 30):
        weather = generate_day_weather(site, 5, day)
        energy[weather.cloud_class].append(float(weather.irradiance_w_m2.sum()) / 3.6e6)
    assert all(energy.values())
    assert (
        np.mean(energy[CloudClass.SUNNY])
        > np.mean(energy[CloudClass.MIXED])
        > np.mean(energy[CloudClass.OVERCAST]) * 1.5
    )


def test_ambient_cycle_is_warmest_in_the_afternoon() -> None:
    weather = generate_day_weather(SiteSpec(), 1, JUNE_1_2026_DAY)
    hottest_hour = int(np.argmax(weather.ambient_c)) / 3600.0
    assert 14.0 <= hottest_hour <= 16.0
    assert weather.ambient_c.max() - weather.ambient_c.min() == pytest.approx(10.0, abs=0.01)


# -- loads ------------------------------------------------------------------------------------


def test_household_load_has_an_evening_peak_and_is_seeded() -> None:
    spec = HouseholdLoadSpec(events_per_day=0.0)
    power = generate_day_load(spec, 1, JUNE_1_2026_DAY)
    hourly = power.reshape(24, 3600).mean(axis=1)
    assert int(np.argmax(hourly)) in (19, 20)
    assert hourly[3] < hourly[19] / 2
    assert power.min() >= spec.standby_w
    np.testing.assert_array_equal(power, generate_day_load(spec, 1, JUNE_1_2026_DAY))
    assert not np.array_equal(power, generate_day_load(spec, 2, JUNE_1_2026_DAY))


def test_fridge_cycles_and_events_add_high_power() -> None:
    flat = HouseholdLoadSpec(events_per_day=0.0, morning_peak_w=0.0, evening_peak_w=0.0)
    quiet = generate_day_load(flat, 3, JUNE_1_2026_DAY)
    night = quiet[: 4 * 3600]
    assert set(np.round(night - night.min(), 6)) == {0.0, 80.0}  # fridge on and off
    assert float(np.mean(night > night.min())) == pytest.approx(0.4, abs=0.05)
    busy = generate_day_load(
        HouseholdLoadSpec(events_per_day=20.0, morning_peak_w=0.0, evening_peak_w=0.0),
        3,
        JUNE_1_2026_DAY,
    )
    assert busy.max() > quiet.max() + 500.0


def test_load_current_is_power_over_pack_voltage() -> None:
    assert float(load_current(260.0, 26.0)) == pytest.approx(10.0)
    half = HouseholdLoadSpec().scaled(0.5)
    assert half.evening_peak_w == pytest.approx(125.0)
    assert half.event_power_w == (300.0, 750.0)
