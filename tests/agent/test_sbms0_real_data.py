"""The decoder against real SBMS captures (30 frames, 18 /rawData pages) kept in the project's
shared data folder, outside the repository: they are other people's captures, so they are read
where they are rather than copied in. SBMS_FRAMES_DIR points elsewhere."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from edge_agent.sbms0.frame import FrameError, decode_frame
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
