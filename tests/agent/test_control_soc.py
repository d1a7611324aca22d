"""SoC estimator: counting, anchors, OCV correction, learning, and a 30-day accuracy run."""

from __future__ import annotations

import json
import math
from collections.abc import Callable

import pytest

from edge_agent.control import soc_band
from edge_agent.control.controller import Controller
from edge_agent.control.lfp_ocv import ocv_from_soc, soc_from_ocv
from edge_agent.control.model import EventKind, Interlock, Measurement
from edge_agent.control.ocv_curve import BUILTIN_CURVE
from edge_agent.control.persisted import PersistedState
from edge_agent.control.settings import CellThresholds, ControlSettings, SocSettings
from edge_agent.control.soc import (
    AnchorKind,
    Interval,
    SocEstimator,
    integrate_interval,
    time_estimates,
)

CELLS = CellThresholds()


def m(t: float, volts: float = 3.30, current: float = 0.0) -> Measurement:
    return Measurement(float(t), (volts,) * 8, current, external_temperatures=(20.0,))


def feed(estimator: SocEstimator, t: float, volts: float, current: float, dt: float) -> list[str]:
    interval = Interval(current * dt / 3600.0, dt, 0.0, gap=False)
    update = estimator.update(m(t, volts, current), interval, hvd_tripped=False, lvd_tripped=False)
    return [str(e.detail["reason"]) for e in update.events]


def test_ocv_table_round_trips_and_clamps() -> None:
    assert ocv_from_soc(50.0) == pytest.approx(3.295)
    assert soc_from_ocv(3.20) == pytest.approx(10.0)
    assert soc_from_ocv(3.14) == pytest.approx(7.5)
    assert soc_from_ocv(2.0) == 0.0
    assert soc_from_ocv(3.6) == 100.0


def test_integration_trapezoid_hardware_and_gap() -> None:
    trapezoid = integrate_interval(0.0, 10.0, 36.0, 20.0, None)
    assert trapezoid.charge_ah == pytest.approx(0.15)
    assert not trapezoid.gap
    hardware = integrate_interval(0.0, 10.0, 600.0, 20.0, 1.25)
    assert hardware.charge_ah == 1.25
    assert hardware.counted_s == 600.0
    assert hardware.uncounted_s == 0
    gap = integrate_interval(0.0, 10.0, 600.0, 36.0, None)
    assert gap.gap
    assert gap.counted_s == 60.0
    assert gap.uncounted_s == 540.0
    assert gap.charge_ah == pytest.approx(0.6)  # newest current over the capped 60 s
    assert integrate_interval(None, None, 5.0, 10.0, 3.0).charge_ah == 0.0


def test_counting_with_efficiency_and_offset() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=50.0), CELLS)
    estimator.set_offset(0.5)
    feed(estimator, 3600.0, 3.3, 10.5, 3600.0)  # 10 A true for an hour
    assert estimator.soc == pytest.approx(50.0 + 10.0 * 0.995)
    feed(estimator, 7200.0, 3.3, -9.5, 3600.0)  # -10 A true
    assert estimator.soc == pytest.approx(50.0 + 10.0 * 0.995 - 10.0)


def test_taper_sync_after_hold_only() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=80.0), CELLS)
    assert feed(estimator, 0.0, 3.55, 1.5, 1.0) == []
    assert feed(estimator, 29.0, 3.55, 1.5, 1.0) == []
    assert feed(estimator, 30.0, 3.55, 1.5, 1.0) == ["eoc"]
    assert estimator.soc == 100.0
    assert feed(estimator, 31.0, 3.55, 1.5, 1.0) == []  # once per episode


def test_no_eoc_sync_in_a_cv_chargers_bulk_phase() -> None:
    """A CV charger absorbing at 3.55 V (above eoc 3.53) passes eoc at its full current, with
    the pack short of full; only the taper to tail_current (2 A) is an end of charge."""
    estimator = SocEstimator(SocSettings(initial_soc=85.0), CELLS)
    t = 0.0
    for volts in (3.50, 3.52, 3.531, 3.54, 3.545, 3.55):  # bulk: 40 A, rising through eoc
        for _ in range(60):
            t += 1.0
            assert feed(estimator, t, volts, 40.0, 1.0) == [], (t, volts)
    current = 40.0
    while current > 2.5:  # absorption at 3.55 V: the current tapers
        t += 10.0
        current *= 0.9
        assert feed(estimator, t, 3.55, current, 10.0) == [], (t, current)
    syncs: list[str] = []
    start = t
    while not syncs:
        t += 1.0
        syncs = feed(estimator, t, 3.55, 1.8, 1.0)
    assert syncs == ["eoc"]
    assert t - start == pytest.approx(30.0, abs=1.0)  # held eoc_hold_s below the tail
    assert estimator.soc == 100.0


def test_pv_switched_straight_on_passes_eoc_without_a_sync_and_syncs_at_hvd() -> None:
    """PV on a DSSR never tapers: at 30 A a cell passes eoc well before the pack is full.
    The sync comes with the HVD trip that cuts the array."""
    settings = ControlSettings(cells=CellThresholds(hvd_delay_s=1.0))
    controller = Controller(settings, 0.0)
    controller.set_soc(90.0, now=0.0)
    t = 0.0
    for volts in (3.52, 3.53, 3.55, 3.57, 3.59):
        for _ in range(60):
            t += 1.0
            report = controller.update(m(t, volts, 30.0))
            assert not any(e.kind is EventKind.SOC_SYNC for e in report.events), (t, volts)
    controller.update(m(t + 1.0, 3.60, 30.0))  # HVD seen: 1 s delay
    report = controller.update(m(t + 2.0, 3.61, 30.0))
    syncs = [e.detail for e in report.events if e.kind is EventKind.SOC_SYNC]
    assert [sync["reason"] for sync in syncs] == ["hvd"]
    assert report.soc == 100.0


def test_pv_at_eoc_with_a_weak_current_is_an_end_of_charge() -> None:
    """Evening sun holding a cell at eoc with 1.5 A: the pack is full."""
    estimator = SocEstimator(SocSettings(initial_soc=95.0), CELLS)
    assert feed(estimator, 0.0, 3.535, 1.5, 1.0) == []
    assert feed(estimator, 29.0, 3.535, 1.5, 1.0) == []
    assert feed(estimator, 30.0, 3.535, 1.5, 1.0) == ["eoc"]


def test_no_eoc_sync_while_discharging() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=60.0), CELLS)
    for t in range(0, 100, 10):
        assert feed(estimator, t, 3.55, -5.0, 10.0) == []
    assert estimator.soc < 60.0


IMMEDIATE = CellThresholds(hvd_delay_s=0.0, lvd_delay_s=0.0, ovlo_delay_s=0.0, uvlo_delay_s=0.0)


def test_hvd_is_a_full_anchor_and_an_untrusted_lvd_reading_is_skipped() -> None:
    controller = Controller(ControlSettings(cells=IMMEDIATE), 0.0)
    report = controller.update(m(1, 3.60, 10.0))
    syncs = [e.detail for e in report.events if e.kind is EventKind.SOC_SYNC]
    assert report.soc == 100.0
    assert syncs[0]["to"] == 100.0
    assert syncs[0]["reason"] == "hvd"
    assert report.soc_uncertainty == pytest.approx(1.96 * 0.5)
    # LVD under 10 A: no resistance learned for that current, so the loaded voltage says
    # nothing about SoC (it would read some 8-10 points low); the count stands.
    report = controller.update(m(2, 2.80, -10.0))
    assert Interlock.LVD in report.interlocks
    assert [e for e in report.events if e.kind is EventKind.SOC_SYNC] == []
    assert report.soc == pytest.approx(100.0, abs=0.01)


def _learn_resistance(estimator: SocEstimator, volts_loaded: float, current: float) -> float:
    """Two evenings: a discharge at `current`, then a rest long enough to relax by 60 mV."""
    t = 0.0
    for _ in range(2):
        feed(estimator, t, volts_loaded, current, 60.0)
        for step in range(0, int(estimator.settings.rest_time_s) + 120, 60):
            feed(estimator, t + 60.0 + step, volts_loaded + 0.060, 0.0, 60.0)
        t += 20000.0
    return t


def test_lvd_reading_is_corrected_by_the_resistance_learned_from_load_steps() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=40.0), CELLS)
    t = _learn_resistance(estimator, 3.25, -6.0)
    bands = estimator.state.resistance.bands
    assert [round(band.ohm, 4) for band in bands] == [0.01]  # 60 mV over 6 A
    assert bands[0].learnings == 2
    count = estimator.raw_soc
    sigma = estimator.sigma
    # LVD at 2.99 V under 5 A (within a factor of two of 6 A): read as 3.04 V at rest, which
    # the built-in curve's steep bottom puts at about 4.3 %.
    update = estimator.update(
        m(t, 2.99, -5.0),
        Interval(-5.0 / 360, 10.0, 0.0, False),
        hvd_tripped=False,
        lvd_tripped=True,
    )
    reading = BUILTIN_CURVE.reading(3.04, extra_volts_sigma=0.3 * 0.05)
    assert reading is not None
    assert reading.soc == pytest.approx(4.33, abs=0.01)
    [event] = update.events
    assert event.detail["reason"] == "lvd"
    combined = soc_band.combine(count - 5.0 / 360, sigma, reading.soc, reading.sigma)
    assert estimator.raw_soc == pytest.approx(combined.soc, abs=0.01)
    assert estimator.state.band_sigma == pytest.approx(combined.sigma, rel=1e-6)
    # The published band narrows to the better of the two, no further: the reading's error
    # repeats.
    assert estimator.sigma == pytest.approx(min(sigma, reading.sigma))
    # Under 40 A, eight times the learned current, the correction is not trusted.
    before = estimator.raw_soc
    update = estimator.update(
        m(t + 10, 2.90, -40.0), Interval(0.0, 10.0, 0.0, False), hvd_tripped=False, lvd_tripped=True
    )
    assert update.events == ()
    assert estimator.raw_soc == pytest.approx(before)


def test_a_configured_empty_soc_overrides_the_reading() -> None:
    controller = Controller(ControlSettings(cells=IMMEDIATE, soc=SocSettings(empty_soc=0.0)), 0.0)
    report = controller.update(m(2, 2.80, -10.0))
    assert report.soc == 0.0


def test_rest_reading_only_after_full_rest_in_steep_region_weighted_by_uncertainty() -> None:
    settings = SocSettings(initial_soc=30.0, rest_time_s=5400.0)  # rest below 1 A
    estimator = SocEstimator(settings, CELLS)
    feed(estimator, 0.0, 3.05, 0.5, 60.0)
    assert feed(estimator, 5399.0, 3.05, 0.5, 60.0) == []
    soc_before, sigma_before = estimator.raw_soc, estimator.sigma
    assert feed(estimator, 5400.0, 3.05, 0.0, 60.0) == ["ocv"]  # the curve says 4.5 %
    reading = BUILTIN_CURVE.reading(3.05)
    assert reading is not None
    assert reading.soc == pytest.approx(4.5)
    expected = soc_band.combine(soc_before, sigma_before, 4.5, reading.sigma)
    assert estimator.raw_soc == pytest.approx(expected.soc)
    assert 4.5 < estimator.raw_soc < 6.0  # a new install's 30 % is no match for the reading
    assert feed(estimator, 9000.0, 3.05, 0.5, 60.0) == []  # once per rest


def test_no_rest_reading_where_published_curves_disagree_or_under_current() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=30.0), CELLS)
    for t in range(0, 20000, 600):
        assert feed(estimator, t, 3.30, 0.2, 600.0) == []  # flat part of the curve
    for t in range(20000, 40000, 600):
        # 7.5 % on the built-in curve, but 8.2 to 13.7 % on published ones: not read.
        assert feed(estimator, t, 3.14, 0.2, 600.0) == []
    estimator = SocEstimator(SocSettings(initial_soc=30.0), CELLS)
    for t in range(0, 20000, 600):
        assert feed(estimator, t, 3.10, -1.5, 600.0) == []  # not a rest: 1.5 A > C/100


def test_a_configured_curve_is_read_wherever_it_is_steep_enough() -> None:
    curve = ((0.0, 2.8), (10.0, 3.184), (25.0, 3.235), (40.0, 3.271), (65.0, 3.294),
             (75.0, 3.307), (89.0, 3.324), (98.0, 3.385), (100.0, 3.4))  # fmt: skip
    estimator = SocEstimator(SocSettings(initial_soc=30.0, ocv_curve=curve), CELLS)
    assert estimator.curve.configured
    for t in range(0, 6000, 600):
        feed(estimator, t, 3.22, 0.0, 600.0)  # 3.4 mV per point between 10 and 25 %
    reading = estimator.curve.reading(3.22)
    assert reading is not None
    assert reading.soc == pytest.approx(20.59, abs=0.01)
    assert 20.0 < estimator.raw_soc < 22.0
    # The flat middle (0.9 mV per point between 40 and 65 %) is not read.
    assert estimator.curve.reading(3.28) is None


def test_high_end_reading_uses_highest_cell() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=90.0), CELLS)
    cells = (3.33,) * 7 + (3.40,)
    for t in (0.0, 6000.0):
        before, sigma = estimator.raw_soc, estimator.sigma
        update = estimator.update(
            Measurement(t, cells, 0.0, external_temperatures=(20.0,)),
            Interval(0.0, 600.0, 0.0, False),
            hvd_tripped=False,
            lvd_tripped=False,
        )
    reading = BUILTIN_CURVE.reading(3.40)
    assert reading is not None
    assert reading.soc == 100.0
    expected = soc_band.combine(before, sigma, 100.0, reading.sigma)
    assert [e.detail["to"] for e in update.events] == [pytest.approx(expected.soc, abs=0.001)]


def test_capacity_learning_is_bounded_and_weighed_against_its_uncertainty() -> None:
    settings = SocSettings(initial_soc=50.0, capacity_ah=100.0, empty_soc=0.0)
    estimator = SocEstimator(settings, CELLS)
    assert estimator.state.capacity_sigma_ah == pytest.approx(5.0)
    estimator.update(
        m(0, 3.6, 5.0), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True, lvd_tripped=False
    )
    feed(estimator, 10 * 3600.0, 3.0, -9.0, 10 * 3600.0)  # 90 Ah out, full to empty
    estimator.update(
        m(10 * 3600 + 1, 2.8, -9.0),
        Interval(0.0, 1.0, 0.0, False),
        hvd_tripped=False,
        lvd_tripped=True,
    )
    # A measurement of 90 Ah within about 1 Ah against 100 +- 5: most of the way, but no more
    # than 5 % of nominal per measurement.
    assert estimator.capacity_ah == pytest.approx(95.0)
    assert estimator.state.capacity_sigma_ah < 1.1
    assert estimator.soc == 0.0
    feed(estimator, 30 * 3600.0, 3.3, 3.0, 20 * 3600.0)  # 60 Ah in (x0.995)
    estimator.update(
        m(30 * 3600 + 1, 3.6, 3.0),
        Interval(0.0, 1.0, 0.0, False),
        hvd_tripped=True,
        lvd_tripped=False,
    )
    # 59.7 Ah measured against 95 +- 1: bounded again, and now it is the step bound that acts.
    assert estimator.capacity_ah == pytest.approx(90.0)
    assert estimator.state.anchor_kind is AnchorKind.FULL


def test_uncertainty_grows_with_time_and_distance_from_the_anchor_and_shrinks_at_one() -> None:
    estimator = SocEstimator(SocSettings(), CELLS)
    assert estimator.uncertainty == 49.0  # a new install: anywhere
    estimator.update(m(0, 3.6, 5.0), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True,
                     lvd_tripped=False)  # fmt: skip
    at_full = estimator.uncertainty
    assert at_full == pytest.approx(0.98)
    feed(estimator, 3600.0, 3.3, 0.0, 3600.0)  # an hour at rest: only the offset's part grows
    after_rest = estimator.uncertainty
    assert at_full < after_rest < at_full + 0.2
    feed(estimator, 7200.0, 3.3, -40.0, 3600.0)  # 40 points down
    assert estimator.uncertainty > after_rest + 1.0
    assert estimator.uncertainty < 5.0


def test_learned_state_survives_a_restart_and_old_states_load() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=40.0), CELLS)
    _learn_resistance(estimator, 3.25, -6.0)
    controller = Controller(ControlSettings(), 0.0)
    controller._soc = estimator
    saved = controller.snapshot().to_dict()
    loaded = PersistedState.from_dict(json.loads(json.dumps(saved)))
    assert loaded.soc == estimator.state
    # The band's floor came later than the rest of issue 16's state.
    without_floor = json.loads(json.dumps(saved))
    del without_floor["soc"]["band_floor_sigma"]
    assert PersistedState.from_dict(without_floor).soc.band_floor_sigma == 0.0
    # A state written before issue 16 has no uncertainty, resistance or low reference.
    for key in ("band_sigma", "band_soc", "band_time", "band_charge_in_ah", "capacity_sigma_ah",
                "offset_sigma_a", "low_reference", "resistance"):  # fmt: skip
        del saved["soc"][key]
    old = PersistedState.from_dict(saved)
    resumed = SocEstimator(SocSettings(), CELLS, old.soc)
    assert resumed.state.resistance.bands == ()
    assert resumed.uncertainty == pytest.approx(49.0, abs=0.1)
    assert resumed.state.capacity_sigma_ah == pytest.approx(5.0)
    saved = controller.snapshot().to_dict()
    saved["soc"]["resistance"]["bands"][0]["ohm"] = -1.0
    with pytest.raises(ValueError, match=r"soc\.resistance\.bands\.0"):
        PersistedState.from_dict(saved)


def _daily_cycles(
    estimator: SocEstimator, days: int, offset_at: Callable[[float], float]
) -> list[float]:
    """Synthetic pack: 100 Ah, partial daily cycles, full every day by HVD (which then cuts
    the charge); the sensor adds offset_at(t) amps. Returns the learned offset each day."""
    true_charge, t, step = 100.0, 0.0, 300.0
    learned = []
    estimator.update(m(t, 3.6), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True, lvd_tripped=False)
    for _ in range(days):
        charging_cut = False
        for phase_current, hours in ((-6.0, 10.0), (-2.0, 4.0), (12.0, 10.0)):
            for _ in range(int(hours * 3600 / step)):
                t += step
                current = 0.0 if charging_cut and phase_current > 0 else phase_current
                if current > 0:  # HVD cuts the charge the moment the pack is full
                    current = min(current, (100.0 - true_charge) / (0.995 * step / 3600))
                true_charge += (current * 0.995 if current > 0 else current) * step / 3600
                measured = current + offset_at(t)
                tripped = true_charge >= 100.0 - 1e-9 and not charging_cut
                charging_cut = charging_cut or tripped
                true_charge = min(true_charge, 100.0)
                interval = Interval(measured * step / 3600, step, 0.0, False)
                volts = 3.6 if tripped else 3.3
                estimator.update(
                    m(t, volts, measured), interval, hvd_tripped=tripped, lvd_tripped=False
                )
        learned.append(estimator.offset_a)
    return learned


def test_offset_learning_converges() -> None:
    estimator = SocEstimator(SocSettings(), CELLS)
    learned = _daily_cycles(estimator, 12, lambda _t: 0.2)
    assert learned[-1] == pytest.approx(0.2, abs=0.01)
    assert abs(learned[0]) <= 0.1 + 1e-9  # bounded step per anchor


def test_offset_learning_tracks_a_drifting_sensor() -> None:
    estimator = SocEstimator(SocSettings(), CELLS)

    def drift(t: float) -> float:
        return 0.05 + 0.10 * t / (20 * 86400.0)

    learned = _daily_cycles(estimator, 20, drift)
    assert learned[-1] == pytest.approx(drift(20 * 86400.0), abs=0.02)


def test_one_long_full_to_full_span_learns_most_of_an_unknown_offset() -> None:
    """A week between two full charges measures the offset far better than the 50 mA per
    100 Ah it is unknown to before learning: the Kalman weight takes it at once, up to the
    cap of 0.7 (a fixed half would leave the count drifting by 25 mA until the next one)."""
    estimator = SocEstimator(SocSettings(), CELLS)
    estimator.update(m(0, 3.6), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True, lvd_tripped=False)
    t = 0.0
    for _ in range(7 * 24):  # a week at rest; the sensor reads 50 mA too high
        t += 3600.0
        feed(estimator, t, 3.30, 0.05, 3600.0)
    estimator.update(m(t + 1, 3.6), Interval(0.0, 1.0, 0.0, False), hvd_tripped=True,
                     lvd_tripped=False)  # fmt: skip
    # What it counted in was scaled by the charge efficiency (0.995).
    assert estimator.offset_a == pytest.approx(0.7 * 0.05 * 0.995, rel=1e-3)
    # Uncertain by what the cap left unlearned (15 mA), not by the 50 mA it started from.
    assert 0.01 < estimator.state.offset_sigma_a < 0.02


def test_a_repeated_reading_does_not_narrow_the_band_below_itself() -> None:
    """The same curve, the same cells and the same hysteresis branch: a reading's error repeats
    at every rest, so the published band stays as wide as the reading however often it is
    read, while the Kalman sigma that weighs the next reading shrinks (it brings no news)."""
    estimator = SocEstimator(SocSettings(initial_soc=30.0), CELLS)
    reading = BUILTIN_CURVE.reading(3.05)
    assert reading is not None
    t, weights = 0.0, []
    for _ in range(4):
        feed(estimator, t, 3.30, -2.0, 600.0)  # a discharge step ends each rest
        before = estimator.raw_soc
        feed(estimator, t + 600.0, 3.05, 0.0, 600.0)
        assert feed(estimator, t + 6000.0, 3.05, 0.0, 5400.0) == ["ocv"]
        weights.append((estimator.raw_soc - before) / (reading.soc - before))
        assert estimator.sigma == pytest.approx(reading.sigma, rel=0.01)
        t += 7200.0
    assert estimator.state.band_sigma < 0.6 * reading.sigma
    assert weights[-1] < 0.5 * weights[0]


def test_capacity_is_published_no_better_than_its_low_reading_over_the_depth() -> None:
    """Full, then a rested low reading on the built-in curve (sigma about 2 points, because
    published curves put their bottom that far apart), three times: the Kalman sigma that
    weighs the next reading shrinks, but the band counts the capacity as known no better than
    such a reading over the 95 points between the ends."""
    # The pack is never charged back: no offset to learn from the full-to-full spans.
    settings = SocSettings(initial_soc=50.0, capacity_ah=100.0, learn_offset=False)
    estimator = SocEstimator(settings, CELLS)
    t = 0.0
    for _ in range(3):
        estimator.update(m(t, 3.6), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True,
                         lvd_tripped=False)  # fmt: skip
        feed(estimator, t + 10 * 3600.0, 3.2, -9.55, 10 * 3600.0)  # 95.5 Ah out
        feed(estimator, t + 10.5 * 3600.0, 3.05, 0.0, 1800.0)  # a rest begins
        assert feed(estimator, t + 12 * 3600.0, 3.05, 0.0, 5400.0) == ["ocv"]
        t += 24 * 3600.0
    assert estimator.capacity_ah == pytest.approx(100.0, abs=1.0)
    bottom = BUILTIN_CURVE.reading(BUILTIN_CURVE.volts(5.0))
    assert bottom is not None
    floor = estimator.capacity_ah * bottom.sigma / 95.0
    assert estimator.capacity_floor_ah == pytest.approx(floor)
    assert 2.0 < floor < 2.5
    assert estimator.state.capacity_sigma_ah < 0.7 * floor
    # 50 points from a full sync the capacity's part of the band is the floor's, not the
    # Kalman sigma's.
    estimator.update(m(t, 3.6), Interval(0.0, 0.0, 0.0, True), hvd_tripped=True,
                     lvd_tripped=False)  # fmt: skip
    feed(estimator, t + 5 * 3600.0, 3.3, -10.0, 5 * 3600.0)
    capacity_part = 50.0 * math.hypot(floor / estimator.capacity_ah, soc_band.GAIN_SIGMA)
    assert estimator.sigma == pytest.approx(math.hypot(0.5, capacity_part), rel=0.02)


def test_time_to_full_and_empty_use_smoothed_current() -> None:
    estimator = SocEstimator(SocSettings(initial_soc=50.0), CELLS)
    feed(estimator, 0.0, 3.3, 10.0, 0.0)
    assert estimator.time_to_full_s() == pytest.approx(50.0 / 10.0 * 3600.0)
    assert estimator.time_to_empty_s() is None
    for t in range(1, 60):
        feed(estimator, float(t), 3.3, 10.0, 1.0)
    feed(estimator, 60.0, 3.3, 40.0, 1.0)  # a one-second spike barely moves the estimate
    assert estimator.time_to_full_s() == pytest.approx(
        estimator.state.capacity_ah * (100.0 - estimator.soc) / 100.0 / 10.0 * 3600.0, rel=0.05
    )
    # A change of direction: the estimates follow the present current's sign at once, so
    # time to full never stands beside a discharging current (issue 20).
    feed(estimator, 61.0, 3.3, -40.0, 1.0)
    assert estimator.time_to_full_s() is None
    assert estimator.time_to_empty_s() == pytest.approx(estimator.remaining_ah / 40 * 3600)
    for t in range(62, 1200):
        feed(estimator, float(t), 3.3, -10.0, 1.0)
    assert estimator.time_to_empty_s() == pytest.approx(
        estimator.remaining_ah / 10 * 3600, rel=0.01
    )
    for t in range(1200, 2400):
        feed(estimator, float(t), 3.3, 0.0, 1.0)
    assert estimator.time_to_full_s() is None
    assert estimator.time_to_empty_s() is None


def test_time_estimates_at_full_while_discharging() -> None:
    """Issue 20: at 100 % while discharging the time to empty is known and there is no time
    to full (it was unknown and 0.0033 h while the smoothed current still said charging)."""
    estimator = SocEstimator(SocSettings(initial_soc=90.0), CELLS)
    for t in range(0, 600):
        feed(estimator, float(t), 3.45, 20.0, 1.0)
    estimator.mark_full(600.0)
    feed(estimator, 601.0, 3.40, -5.0, 1.0)
    assert estimator.soc == pytest.approx(100.0, abs=0.01)
    assert estimator.time_to_full_s() is None
    assert estimator.time_to_empty_s() == pytest.approx(
        estimator.remaining_ah / 5.0 * 3600.0, rel=1e-6
    )


TINY = 0.2  # A: below this the battery is neither charging nor discharging


@pytest.mark.parametrize(
    ("soc", "present", "smoothed", "expected"),
    [
        # Full: 0 s to full unless discharging, whatever the current.
        (100.0, 10.0, 10.0, (0.0, None)),
        (100.0, 0.0, 0.0, (0.0, None)),
        (100.0, 0.1, -3.0, (0.0, None)),  # tiny: at rest
        (100.0, -5.0, 2.0, (None, 100.0 / 5.0 * 3600.0)),  # the smoothed sign lags
        (100.0, -5.0, -4.0, (None, 100.0 / 4.0 * 3600.0)),  # same sign: the smoothed rate
        # Empty: 0 s to empty unless charging.
        (0.0, -10.0, -10.0, (None, 0.0)),
        (0.0, 0.0, None, (None, 0.0)),
        (0.0, 5.0, -1.0, (100.0 / 5.0 * 3600.0, None)),
        # Zero and tiny currents, either sign: neither charging nor discharging.
        (50.0, 0.0, 0.0, (None, None)),
        (50.0, 0.19, 0.19, (None, None)),
        (50.0, -0.19, -0.19, (None, None)),
        (50.0, 0.21, 0.21, (50.0 / 0.21 * 3600.0, None)),
        (50.0, -0.21, -0.21, (None, 50.0 / 0.21 * 3600.0)),
        # A smoothed current within the tiny band gives no rate: the present one does.
        (50.0, 5.0, 0.1, (50.0 / 5.0 * 3600.0, None)),
        # Sign changes: the present current decides.
        (50.0, 4.0, -8.0, (50.0 / 4.0 * 3600.0, None)),
        (50.0, -4.0, 8.0, (None, 50.0 / 4.0 * 3600.0)),
        # An unclamped SoC from the count is taken as 0-100 %.
        (100.4, -5.0, -5.0, (None, 100.0 / 5.0 * 3600.0)),
        (-0.3, 5.0, 5.0, (100.0 / 5.0 * 3600.0, None)),
        (100.4, 5.0, 5.0, (0.0, None)),
        # No current known yet: nothing to say.
        (100.0, None, None, (None, None)),
        (0.0, None, None, (None, None)),
    ],
)
def test_time_estimates_at_the_edges(
    soc: float,
    present: float | None,
    smoothed: float | None,
    expected: tuple[float | None, float | None],
) -> None:
    full, empty = time_estimates(soc, 100.0, present_a=present, smoothed_a=smoothed, tiny_a=TINY)
    assert (full, empty) == pytest.approx(expected)
    # Never both, and never against the present current's sign.
    assert full is None or empty is None or full == empty == 0.0
    if present is not None and present < -TINY:
        assert full is None
    if present is not None and present > TINY:
        assert empty is None


def test_time_estimates_fall_back_to_the_smoothed_current_after_a_restart() -> None:
    assert time_estimates(50.0, 100.0, present_a=None, smoothed_a=-10.0, tiny_a=TINY) == (
        None,
        pytest.approx(50.0 / 10.0 * 3600.0),
    )


def _simulate_month(learn_offset: bool) -> float:
    """30 days of sunny and cloudy days on a 100 Ah pack driven by the controller's own
    outputs; the shunt reads 0.5 % high plus 50 mA. Returns the worst |SoC error|."""

    def ocv(soc: float) -> float:
        return ocv_from_soc(soc) if soc < 98 else 3.35 + (soc - 98) / 2 * 0.10

    weather = "SSSSSCCSSSCCCSSSSCSCCSSSSCCCSS"
    controller = Controller(
        ControlSettings(soc=SocSettings(initial_soc=60.0, learn_offset=learn_offset)), 0.0
    )
    charge, t, worst = 60.0, 0.0, 0.0
    charge_on = load_on = False
    while t < 30 * 86400:
        hour = t % 86400 / 3600
        peak = 12.0 if weather[int(t // 86400)] == "S" else 4.0
        pv = peak * math.sin(math.pi * (hour - 7) / 12) if 7 <= hour <= 19 else 0.0
        load = 2.0 + (4.0 if 18 <= hour < 23 else 0.0)
        dt = 10.0 if charge > 98.5 and charge_on and pv > 0 else 120.0
        current = (pv if charge_on else 0.0) - (load if load_on else 0.0)
        charge = min(100.0, charge + (current * 0.995 if current > 0 else current) * dt / 3600)
        knee = 0.25 * ((charge - 97) / 3) ** 3 if current > 0 and charge > 97 else 0.0
        volts = max(2.0, ocv(charge) + current * 0.0008 + knee)
        measured = current * 1.005 + 0.05
        t += dt
        report = controller.update(
            Measurement(
                t,
                (volts,) * 8,
                measured,
                charge_delta_ah=measured * dt / 3600,
                external_temperatures=(20.0,),
            )
        )
        charge_on, load_on = report.outputs["extio4"], report.outputs["extio3"]
        worst = max(worst, abs(report.soc - charge))
    return worst


def test_thirty_days_of_partial_cycles_stay_within_two_percent() -> None:
    assert _simulate_month(learn_offset=True) < 2.0
    assert _simulate_month(learn_offset=False) > 3.0  # what plain counting with syncs does
