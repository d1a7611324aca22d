"""Cross-frame plausibility: frames whose errors cancel in the plain-sum checksum are caught
against the previous frame, real load steps and persistent changes are not lost, a gap starts
a new history, and what is dropped is counted in the state's `source_stats`."""

from __future__ import annotations

import dataclasses
import json
import statistics
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.config import parse_config
from edge_agent.mqtt.payloads import encode, state_payload
from edge_agent.sbms0.agent import Sbms0Agent
from edge_agent.sbms0.frame import CELL_INPUTS, MAX_CURRENT_MA, SbmsFrame, decode_frame
from edge_agent.sbms0.plausibility import (
    MAX_CONSECUTIVE_DROPS,
    MAX_GAP_S,
    CrossFrameCheck,
    Verdict,
)
from edge_agent.sbms0.receiver import FrameReceiver
from tests.helpers.sbms0 import encode_frame, make_frame

T0 = 1_780_000_000.0  # 2026-05-28
BASE = make_frame()  # 8S, cells 3321..3328 mV, -12.5 A
STATE_SCHEMA = Path(__file__).parents[2] / "docs" / "schemas" / "state.schema.json"


def _cells(*changes_mv: int, frame: SbmsFrame = BASE) -> tuple[int, ...]:
    return tuple(mv + change for mv, change in zip(frame.cells_mv, changes_mv, strict=True))


def _verdicts(frames: list[tuple[float, SbmsFrame]], cell_count: int = 8) -> list[Verdict]:
    check = CrossFrameCheck(cell_count)
    return [check.judge(frame, at).verdict for at, frame in frames]


def _shift(text: str, shifts: dict[int, int]) -> str:
    """The frame text with character values moved, as line damage would move them."""
    chars = list(text)
    for position, delta in shifts.items():
        chars[position] = chr(ord(chars[position]) + delta)
    return "".join(chars)


# --- the damage the checksum cannot see -----------------------------------------------------


def test_compensating_cell_errors_pass_the_checksum_and_the_ranges() -> None:
    good = encode_frame(BASE)
    # Cell 1 (3321 = 36 * 91 + 45) +300 mV: high character +3, low +27; cell 2 -300 mV: -3, -27.
    damaged = _shift(good, {8: +3, 9: +27, 10: -3, 11: -27})
    assert damaged[54:56] == good[54:56]  # the same sum, the same checksum
    frame = decode_frame(damaged, max_year=2026)
    assert frame.cells_mv[:2] == (3621, 3022)
    assert frame.checksum_present


def test_compensating_cell_errors_are_caught_against_the_previous_frame() -> None:
    clock = [T0]
    receiver = FrameReceiver(cell_count=8, clock=lambda: clock[0])
    good = encode_frame(BASE)
    receiver.offer_line(good)
    clock[0] += 1
    receiver.offer_line(_shift(good, {8: +3, 9: +27, 10: -3, 11: -27}))
    assert receiver.stats.bad_by_kind == {"jump": 1}
    assert receiver.latest is not None
    assert receiver.latest.frame.cells_mv[:2] == (3321, 3322)  # never published
    assert receiver.latest.received_at == T0
    clock[0] += 1
    receiver.offer_line(good)  # the line is clean again: judged against the last good frame
    assert receiver.latest.received_at == T0 + 2
    stats = receiver.stats
    assert (stats.frames_ok, stats.frames_bad, stats.reanchored) == (2, 1, 0)


def test_a_high_and_low_character_pair_on_one_cell_is_caught() -> None:
    # The likeliest cancelling damage: +1 on a cell's high character, -1 on its low one: +90 mV.
    damaged = decode_frame(_shift(encode_frame(BASE), {12: +1, 13: -1}), max_year=2026)
    assert damaged.cells_mv[2] == BASE.cells_mv[2] + 90
    check = CrossFrameCheck(8)
    check.judge(BASE, T0)
    judgement = check.judge(damaged, T0 + 1)
    assert judgement.verdict is Verdict.DROPPED
    assert judgement.reason is not None
    assert judgement.reason.startswith("cell input 3 moved +90 mV")


@pytest.mark.parametrize("cell_count", [3, 4, 8])
@given(
    first=st.integers(0, 7),
    second=st.integers(0, 7),
    error_mv=st.integers(75, 1500),
)
def test_any_opposite_pair_of_cell_errors_is_caught_at_any_pack_size(
    cell_count: int, first: int, second: int, error_mv: int
) -> None:
    inputs = CELL_INPUTS[cell_count]
    first, second = inputs[first % len(inputs)], inputs[second % len(inputs)]
    changes = [0] * 8
    changes[first] += error_mv
    changes[second] -= error_mv
    if first == second:
        changes[first] = error_mv  # one cell alone
    damaged = dataclasses.replace(BASE, cells_mv=_cells(*changes))
    assert _verdicts([(T0, BASE), (T0 + 1, damaged)], cell_count) == [
        Verdict.ANCHORED,
        Verdict.DROPPED,
    ]


# --- what physics does allow ----------------------------------------------------------------


def _load_step(resistances_mohm: list[float], before_ma: int, after_ma: int) -> SbmsFrame:
    """Every cell moves by its own resistance times the current's change."""
    step_a = (after_ma - before_ma) / 1000
    changes = [round(ohms * step_a) for ohms in resistances_mohm]
    return dataclasses.replace(BASE, battery_ma=after_ma, cells_mv=_cells(*changes))


INVERTER_CELLS_MOHM = [0.3, 0.4, 0.4, 0.5, 0.5, 0.6, 0.7, 1.2]  # the last behind a poor busbar


def test_an_inverter_starting_is_accepted() -> None:
    # -12.5 A to -212.5 A: the cells sag 60-240 mV; the last one 140 mV more than the median
    # cell, which only the current explains.
    step = _load_step(INVERTER_CELLS_MOHM, BASE.battery_ma, -212_500)
    sags = [after - before for after, before in zip(step.cells_mv, BASE.cells_mv, strict=True)]
    assert sags[-1] - statistics.median(sags) == -140
    assert _verdicts([(T0, BASE), (T0 + 1, step)]) == [Verdict.ANCHORED, Verdict.ACCEPTED]
    # The same cells without the current's change are damage.
    unexplained = dataclasses.replace(step, battery_ma=BASE.battery_ma)
    assert _verdicts([(T0, BASE), (T0 + 1, unexplained)]) == [Verdict.ANCHORED, Verdict.DROPPED]


def test_a_step_seen_in_the_current_a_frame_before_the_cells_is_accepted() -> None:
    current_first = dataclasses.replace(BASE, battery_ma=-212_500)
    cells_after = _load_step(INVERTER_CELLS_MOHM, BASE.battery_ma, -212_500)
    assert _verdicts([(T0, BASE), (T0 + 1, current_first), (T0 + 2, cells_after)]) == [
        Verdict.ANCHORED,
        Verdict.ACCEPTED,
        Verdict.ACCEPTED,
    ]


@given(
    resistances=st.lists(st.floats(0.1, 1.0), min_size=8, max_size=8),
    before_ma=st.integers(-MAX_CURRENT_MA, MAX_CURRENT_MA),
    after_ma=st.integers(-MAX_CURRENT_MA, MAX_CURRENT_MA),
    noise=st.lists(st.integers(-10, 10), min_size=8, max_size=8),
)
def test_any_load_step_the_shunt_can_measure_is_accepted(
    resistances: list[float], before_ma: int, after_ma: int, noise: list[int]
) -> None:
    # Cells of 0.1-1.0 mOhm (a large cell to a weak one with its busbar), a few mV of noise.
    before = dataclasses.replace(BASE, battery_ma=before_ma)
    step = _load_step(resistances, before_ma, after_ma)
    step = dataclasses.replace(step, cells_mv=_cells(*noise, frame=step))
    assert _verdicts([(T0, before), (T0 + 1, step)]) == [Verdict.ANCHORED, Verdict.ACCEPTED]


def test_a_steady_stream_with_small_changes_is_accepted() -> None:
    frames = [
        (T0 + second, make_frame(soc=77 - second // 2, cells_mv=_cells(*[-second] * 8)))
        for second in range(6)
    ]
    assert _verdicts(frames) == [Verdict.ANCHORED] + [Verdict.ACCEPTED] * 5


def test_frames_arriving_together_are_judged_a_second_apart() -> None:
    # A serial read that held two lines: the SBMS still made them a second apart.
    apart = dataclasses.replace(BASE, cells_mv=_cells(60, 0, 0, 0, 0, 0, 0, 0))
    assert _verdicts([(T0, BASE), (T0, apart)]) == [Verdict.ANCHORED, Verdict.ACCEPTED]
    too_far = dataclasses.replace(BASE, cells_mv=_cells(80, 0, 0, 0, 0, 0, 0, 0))
    assert _verdicts([(T0, BASE), (T0, too_far)]) == [Verdict.ANCHORED, Verdict.DROPPED]


@pytest.mark.parametrize(
    ("changes", "seconds", "verdict"),
    [
        ({"internal_temperature_c": 24.5 + 9.1}, 1, Verdict.DROPPED),  # one high character
        ({"internal_temperature_c": 24.5 + 9.1}, 10, Verdict.ACCEPTED),
        ({"external_temperature_c": 18.3 - 9.0}, 2, Verdict.DROPPED),
        ({"external_temperature_c": 18.3 + 2.9}, 1, Verdict.ACCEPTED),
        ({"external_temperature_c": None}, 1, Verdict.ACCEPTED),  # a sensor unplugged
        ({"soc": 47}, 1, Verdict.DROPPED),  # 77 -> 47 % in a second
        ({"soc": 75}, 1, Verdict.ACCEPTED),
        ({"soc": 70}, 20, Verdict.ACCEPTED),  # 7.6 % allowed in 20 s
        ({"soc": 100}, 1, Verdict.ACCEPTED),  # the end-of-charge sync
    ],
)
def test_temperature_and_soc_move_as_fast_as_physics_lets_them(
    changes: dict[str, Any], seconds: float, verdict: Verdict
) -> None:
    after = dataclasses.replace(BASE, **changes)
    assert _verdicts([(T0, BASE), (T0 + seconds, after)]) == [Verdict.ANCHORED, verdict]


# --- gaps and persistent changes ------------------------------------------------------------

SPLIT = dataclasses.replace(BASE, cells_mv=_cells(300, -300, 0, 0, 0, 0, 0, 0))


def test_a_gap_starts_a_new_history_instead_of_judging_against_a_stale_one() -> None:
    # 700 mV apart is still too far after MAX_GAP_S (650 mV allowed); one moment later the
    # reference is stale and the frame starts a new history.
    far = dataclasses.replace(BASE, cells_mv=_cells(700, -700, 0, 0, 0, 0, 0, 0))
    assert _verdicts([(T0, BASE), (T0 + MAX_GAP_S, far)]) == [Verdict.ANCHORED, Verdict.DROPPED]
    assert _verdicts([(T0, BASE), (T0 + MAX_GAP_S + 0.1, far)]) == [Verdict.ANCHORED] * 2
    assert _verdicts([(T0, BASE), (T0 - 5, far)]) == [Verdict.ANCHORED] * 2  # the clock went back


def test_a_persistent_change_is_taken_after_max_drops_and_counted() -> None:
    # Cell 4's sense lead tightened: it reads 200 mV higher from now on, for real.
    moved = dataclasses.replace(BASE, cells_mv=_cells(0, 0, 0, 200, 0, 0, 0, 0))
    clock = [T0]
    receiver = FrameReceiver(cell_count=8, clock=lambda: clock[0])
    receiver.offer_line(encode_frame(BASE))
    for _ in range(MAX_CONSECUTIVE_DROPS):
        clock[0] += 1
        receiver.offer_line(encode_frame(moved))
        assert receiver.latest is not None
        assert receiver.latest.frame == BASE
    clock[0] += 1
    receiver.offer_line(encode_frame(moved))
    assert receiver.latest is not None
    assert receiver.latest.frame == moved
    clock[0] += 1
    receiver.offer_line(encode_frame(moved))  # judged against the new reference: plausible
    stats = receiver.stats
    assert stats.bad_by_kind == {"jump": MAX_CONSECUTIVE_DROPS}
    assert (stats.frames_ok, stats.reanchored) == (3, 1)


def test_a_good_frame_between_damaged_ones_resets_the_run_of_drops() -> None:
    frames = [(T0, BASE)]
    for second in range(1, 2 * MAX_CONSECUTIVE_DROPS + 1):
        frames.append((T0 + second, SPLIT if second % 2 else BASE))
    verdicts = _verdicts(frames)
    assert Verdict.REANCHORED not in verdicts
    assert verdicts.count(Verdict.DROPPED) == MAX_CONSECUTIVE_DROPS


def test_the_reanchored_frame_starts_a_fresh_current_history() -> None:
    # A reference at -300 A, then frames at -12.5 A with cells 2 V apart: dropped even with
    # the 287.5 A swing, then re-anchored. The next frame is judged on its own current swing
    # (none), not on the -300 A of the abandoned reference.
    check = CrossFrameCheck(8)
    check.judge(dataclasses.replace(BASE, battery_ma=-300_000), T0)
    far = dataclasses.replace(BASE, cells_mv=_cells(1000, -1000, 0, 0, 0, 0, 0, 0))
    verdicts = [check.judge(far, T0 + second).verdict for second in range(1, 5)]
    assert verdicts == [Verdict.DROPPED] * MAX_CONSECUTIVE_DROPS + [Verdict.REANCHORED]
    apart = dataclasses.replace(far, cells_mv=_cells(100, 0, 0, 0, 0, 0, 0, 0, frame=far))
    assert check.judge(apart, T0 + 5).verdict is Verdict.DROPPED


# --- what the state shows -------------------------------------------------------------------


def test_the_state_shows_drops_by_kind_and_reanchors() -> None:
    config = parse_config(
        {"battery": {"cells": 8}, "source": {"type": "sbms0", "serial": {"port": "/dev/x"}}}
    )
    clock = [T0]
    receiver = FrameReceiver(cell_count=8, clock=lambda: clock[0])
    agent = Sbms0Agent(config, receiver, T0)
    receiver.offer_line(encode_frame(BASE))
    receiver.offer_line(encode_frame(make_frame(battery_ma=753_000, pv1_ma=753_000)))
    for _ in range(MAX_CONSECUTIVE_DROPS + 1):
        clock[0] += 1
        receiver.offer_line(encode_frame(SPLIT))
    state: dict[str, Any] = json.loads(encode(state_payload(agent.step(clock[0]))))
    jsonschema.validate(state, json.loads(STATE_SCHEMA.read_text()))
    assert state["source_stats"] == {
        "frames_ok": 2,
        "frames_unchecked": 0,
        "frames_bad": 1 + MAX_CONSECUTIVE_DROPS,
        "link_errors": 0,
        "bad_by_kind": {"jump": MAX_CONSECUTIVE_DROPS, "value": 1},
        "reanchored": 1,
    }
    assert state["cells"][:2] == [3.621, 3.022]  # the persistent reading, once re-anchored
