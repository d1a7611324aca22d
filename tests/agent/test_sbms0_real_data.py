"""The decoder against real SBMS captures (30 frames, 18 /rawData pages) kept in the project's
shared data folder, outside the repository: they are other people's captures, so they are read
where they are rather than copied in. SBMS_FRAMES_DIR points elsewhere."""

from __future__ import annotations

import json
import os
from collections import defaultdict
from pathlib import Path
from typing import Any

import pytest

from edge_agent.sbms0.frame import BASE, FrameError, SbmsFrame, char_value, checksum, decode_frame
from edge_agent.sbms0.plausibility import CrossFrameCheck, Verdict
from edge_agent.sbms0.rawdata import parse_rawdata

DATA = Path(
    os.environ.get("SBMS_FRAMES_DIR", Path(__file__).parents[3] / "shared/data/sbms-frames")
)

if not (DATA / "frames.json").is_file():
    pytest.skip(
        f"no real SBMS captures at {DATA} (set SBMS_FRAMES_DIR); the encoder tests still run",
        allow_module_level=True,
    )

FRAMES: list[dict[str, Any]] = json.loads((DATA / "frames.json").read_text())
PAGE_VARS: dict[str, dict[str, str]] = json.loads((DATA / "rawdata_pages_vars.json").read_text())
# Known-bad captures: JR3 is a corrupted line (checksum off by 2), DL_rawData10 carries an
# internal temperature of 91.0 C under a valid checksum.
EXPECTED_REJECTS = {"JR3": "checksum", "DL_rawData10": "value"}


def _cell_count(entry: dict[str, Any]) -> int:
    return 4 if entry["cells_mV"][2:6] == [0, 0, 0, 0] else 8


def test_there_are_30_distinct_real_frames() -> None:
    assert len({entry["sbms"] for entry in FRAMES}) == 30


@pytest.mark.parametrize("entry", FRAMES, ids=[entry["id"] for entry in FRAMES])
def test_real_frame_decodes_to_its_published_values(entry: dict[str, Any]) -> None:
    if entry["id"] in EXPECTED_REJECTS:
        with pytest.raises(FrameError) as caught:
            decode_frame(entry["sbms"], cell_count=_cell_count(entry), max_year=2026)
        assert caught.value.kind == EXPECTED_REJECTS[entry["id"]]
        return
    frame = decode_frame(entry["sbms"], cell_count=_cell_count(entry), max_year=2026)
    assert frame.timestamp is not None
    assert frame.timestamp.strftime("%Y-%m-%d %H:%M:%S") == entry["date"]
    assert frame.soc == entry["soc"]
    assert list(frame.cells_mv) == entry["cells_mV"]
    assert sum(frame.cells_mv) == entry["pack_mV"]
    assert frame.internal_temperature_c == pytest.approx(entry["t_int_C"])
    expected_external = None if entry["t_ext_C"] == -45.0 else entry["t_ext_C"]
    assert frame.external_temperature_c == pytest.approx(expected_external)
    assert frame.battery_ma == entry["batt_mA"]
    assert (frame.pv1_ma, frame.pv2_ma) == (entry["pv1_mA"], entry["pv2_mA"])
    assert frame.external_load_ma == entry["extld_mA"]
    assert frame.adc == (entry["adc2"], entry["adc3"], entry["adc4"])
    assert frame.heat1 == entry["heat1"]
    assert frame.flags == entry["flags"]
    assert frame.flag_names == set(entry["flag_names"])
    assert frame.checksum_present == entry["crc_ok"]
    assert frame.dual_pv_level == (entry["pv_level"] if entry["crc_ok"] else None)


def test_raw_in_source_with_javascript_escaping_matches_after_unescaping() -> None:
    escaped = [entry for entry in FRAMES if "\\\\" in entry["raw_in_source"]]
    assert escaped, "the captures include frames with an escaped backslash"
    for entry in escaped:
        page = parse_rawdata(f'var sbms="{entry["raw_in_source"]}";')
        assert page.sbms == entry["sbms"]


PAGES = sorted((DATA / "pages").glob("*.txt"))


@pytest.mark.parametrize("path", PAGES, ids=[path.name for path in PAGES])
def test_real_page_parses_to_its_variables(path: Path) -> None:
    page = parse_rawdata(path.read_text(encoding="latin-1"))
    variables = PAGE_VARS[path.name]
    assert page.sbms == json.loads(variables["sbms"]).replace("\\\\", "\\")
    s2 = json.loads(variables["s2"])
    assert page.status is not None
    assert list(page.status.balancing) == [bool(flag) for flag in s2[:8]]
    assert (page.status.max_cell, page.status.min_cell) == (s2[8], s2[9])
    assert (page.status.pv_on, page.status.load_on) == (bool(s2[10]), bool(s2[11]))
    assert page.extra is not None
    assert (page.extra.cell_high_mv, page.extra.cell_low_mv) == (3750, 2500)
    assert page.amp_hours_mah is not None
    assert page.watt_hours_dwh is not None
    assert len(page.amp_hours_mah) == len(page.watt_hours_dwh) == 7
    # PV1 + PV2 is the fifth counter on every page, in Ah and in Wh.
    for counters in (page.amp_hours_mah, page.watt_hours_dwh):
        assert (counters[1] or 0) + (counters[2] or 0) == counters[4]


def test_page_status_names_the_highest_and_lowest_cell_of_its_frame() -> None:
    checked = 0
    for path in PAGES:
        page = parse_rawdata(path.read_text(encoding="latin-1"))
        try:
            frame = decode_frame(page.sbms, max_year=2026)
        except FrameError:
            continue  # 4-cell packs and the known-bad frame
        assert page.status is not None
        cells = frame.cells_mv
        assert cells[page.status.max_cell - 1] == max(cells)
        assert cells[page.status.min_cell - 1] == min(cells)
        checked += 1
    assert checked >= 10


def test_xsbms_load_is_pv_plus_discharge_minus_external_load() -> None:
    page = parse_rawdata((DATA / "pages/Scyten_data.txt").read_text(encoding="latin-1"))
    frame = decode_frame(page.sbms, max_year=2026)
    assert page.extra is not None
    load = frame.pv1_ma + frame.pv2_ma - frame.battery_ma - frame.external_load_ma
    assert page.extra.load_ma == load == 3424
    assert page.extra.capacity_ah == 180


def test_garbled_variable_names_are_not_taken_for_real_ones() -> None:
    text = (DATA / "pages/DanielLeone_rawData2.txt").read_text(encoding="latin-1")
    assert "sbm#=" in text
    assert "var xsW=" in text
    page = parse_rawdata(text)
    # The commented, garbled line holds another (older) frame: the real `sbms` wins.
    assert page.sbms.startswith("#$'8H4")
    assert page.extra is not None
    assert page.extra.capacity_ah == 1088  # from xsbms, not from the garbled eWbms


# --- in sequence: the cross-frame check ----------------------------------------------------


def _system(entry: dict[str, Any]) -> tuple[str, int]:
    """Frames of one SBMS: same repository, same pack size."""
    return entry["source"].split()[0], _cell_count(entry)


def _decoded(entries: list[dict[str, Any]]) -> list[tuple[float, SbmsFrame]]:
    frames = []
    for entry in entries:
        if entry["id"] in EXPECTED_REJECTS:
            continue
        frame = decode_frame(entry["sbms"], cell_count=_cell_count(entry), max_year=2026)
        assert frame.timestamp is not None
        frames.append((frame.timestamp.timestamp(), frame))
    return frames


def _in_capture_order() -> list[tuple[int, list[tuple[float, SbmsFrame]]]]:
    """Each SBMS's pack size and frames, in the order its clock took them (the SBMS clock is
    the only time a capture has)."""
    systems: dict[tuple[str, int], list[dict[str, Any]]] = defaultdict(list)
    for entry in FRAMES:
        systems[_system(entry)].append(entry)
    return [
        (cell_count, sorted(_decoded(entries), key=lambda pair: pair[0]))
        for (_repository, cell_count), entries in systems.items()
    ]


def test_every_real_frame_passes_the_cross_frame_check_in_capture_order() -> None:
    verdicts = []
    for cell_count, frames in _in_capture_order():
        check = CrossFrameCheck(cell_count)
        verdicts += [check.judge(frame, at).verdict for at, frame in frames]
    assert set(verdicts) == {Verdict.ANCHORED, Verdict.ACCEPTED}
    # Judged against a frame seconds before, not only anchored: JR2, 4-6; FP4, 6; Scyten 2-5.
    assert verdicts.count(Verdict.ACCEPTED) == 10


def test_every_real_frame_passes_the_cross_frame_check_in_file_order() -> None:
    # As one receiver per pack size would see them: other systems' frames come after gaps.
    for cell_count in (4, 8):
        check = CrossFrameCheck(cell_count)
        entries = [entry for entry in FRAMES if _cell_count(entry) == cell_count]
        for at, frame in _decoded(entries):
            assert check.judge(frame, at).accepted, frame


def test_the_corrupted_real_line_with_its_checksum_repaired_is_caught_as_a_jump() -> None:
    # JR3's cell 6 reads 3196 mV among 3378 mV neighbours; its checksum is off by 2. Had the
    # damage cancelled in the sum, only the previous frame could have told.
    by_id = {entry["id"]: entry for entry in FRAMES}
    text = by_id["JR3"]["sbms"]
    values = [char_value(char) for char in text]
    high, low = divmod(checksum(values), BASE)
    repaired = text[:54] + chr(35 + high) + chr(35 + low) + text[56:]
    damaged = decode_frame(repaired, max_year=2026)
    previous = decode_frame(by_id["JR2"]["sbms"], max_year=2026)
    assert previous.timestamp is not None
    assert damaged.timestamp is not None
    check = CrossFrameCheck(8)
    check.judge(previous, previous.timestamp.timestamp())
    judgement = check.judge(damaged, damaged.timestamp.timestamp())
    assert judgement.verdict is Verdict.DROPPED
    assert judgement.reason is not None
    assert judgement.reason.startswith("cell input 6 moved -182 mV")
