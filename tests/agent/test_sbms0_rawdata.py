"""The /rawData page parser and the receiver that counts and keeps frames."""

from __future__ import annotations

import pytest

from edge_agent.sbms0.frame import FrameError
from edge_agent.sbms0.rawdata import parse_rawdata
from edge_agent.sbms0.receiver import FrameReceiver
from tests.helpers.sbms0 import encode_frame, js_string, make_frame, make_page

NOW = 1_780_000_000.0  # 2026-05-28


def test_page_variables_are_parsed() -> None:
    page = parse_rawdata(make_page())
    assert page.sbms == encode_frame(make_frame())
    assert page.extra is not None
    assert (page.extra.load_ma, page.extra.cell_high_mv, page.extra.cell_low_mv) == (
        1234,
        3650,
        2800,
    )
    assert (page.extra.battery_type, page.extra.capacity_ah) == (1, 280)
    assert page.status is not None
    assert page.status.balancing == (False, True, False, False, False, False, False, True)
    assert (page.status.max_cell, page.status.min_cell) == (8, 1)
    assert (page.status.pv_on, page.status.load_on) == (True, False)
    assert page.amp_hours_mah == (1000, 2000, 300, 0, 2300, 700, 500)
    assert page.watt_hours_dwh is not None
    assert page.watt_hours_dwh[0] == 26600


def test_backslash_in_a_frame_is_unescaped() -> None:
    # Value 57 is a backslash: an internal temperature code with a 57 low digit.
    frame = make_frame(internal_temperature_c=(91 * 5 + 57 - 450) / 10)
    text = encode_frame(frame)
    assert "\\" in text
    assert parse_rawdata(make_page(text)).sbms == text


def test_empty_counters_read_none() -> None:
    page = parse_rawdata(make_page(counters=(10, 20, 30, None, 50, 60, 70)))
    assert page.amp_hours_mah == (10, 20, 30, None, 50, 60, 70)


@pytest.mark.parametrize(
    "text",
    ["", "<html>Not found</html>", 'var sbmsx="abc";', '// var sbms="x";', 'var sbm#="abc";'],
)
def test_page_without_sbms_is_rejected(text: str) -> None:
    with pytest.raises(FrameError) as caught:
        parse_rawdata(text)
    assert caught.value.kind == "page"


def test_damaged_optional_variables_become_none() -> None:
    page = make_page(s2="[0,0,0]")
    page = page.replace('var eA="', 'var eA="~~')  # outside the alphabet and the wrong length
    page = page.replace('var xsbms="', 'var xsbms="#')
    parsed = parse_rawdata(page)
    assert parsed.status is None
    assert parsed.amp_hours_mah is None
    assert parsed.extra is None
    assert parsed.sbms == encode_frame(make_frame())


def _receiver(**kwargs: object) -> FrameReceiver:
    return FrameReceiver(cell_count=8, clock=lambda: NOW, **kwargs)  # type: ignore[arg-type]


def test_receiver_counts_good_and_bad_lines_and_keeps_the_last_good() -> None:
    receiver = _receiver()
    good = encode_frame(make_frame())
    receiver.offer_line(good + "\r\n")
    receiver.offer_line("garbage\n")
    receiver.offer_line(good[:30] + "\n")
    receiver.offer_line(good.replace(good[10], "~", 1) + "\n")
    receiver.offer_line("\n")  # an empty line is not a frame
    receiver.offer_line('var xsbms="##DL6>N$#&*";')  # another variable: not a frame either
    receiver.offer_line(f'var sbms="{js_string(good)}";')
    stats = receiver.stats
    assert (stats.frames_ok, stats.frames_bad) == (2, 3)
    assert stats.bad_by_kind == {"length": 2, "alphabet": 1}
    assert receiver.latest is not None
    assert receiver.latest.frame == make_frame()
    assert receiver.latest.received_at == NOW


def test_a_bad_frame_never_replaces_the_last_good_one() -> None:
    receiver = _receiver()
    receiver.offer_line(encode_frame(make_frame(soc=55)))
    receiver.offer_line(encode_frame(make_frame(soc=66, internal_temperature_c=91.0)))
    assert receiver.latest is not None
    assert receiver.latest.frame.soc == 55
    assert receiver.stats.bad_by_kind == {"value": 1}


def test_date_years_ahead_of_the_agent_clock_is_dropped() -> None:
    import datetime as dt

    receiver = _receiver()
    receiver.offer_line(encode_frame(make_frame(timestamp=dt.datetime(2029, 1, 1, tzinfo=dt.UTC))))
    receiver.offer_line(encode_frame(make_frame(timestamp=dt.datetime(2027, 1, 1, tzinfo=dt.UTC))))
    assert receiver.stats.bad_by_kind == {"value": 1}
    assert receiver.stats.frames_ok == 1


def test_unchecked_frames_are_counted_apart_or_refused() -> None:
    old = encode_frame(make_frame(checksum_present=False, dual_pv_level=None))
    lenient = _receiver()
    lenient.offer_line(old)
    assert (lenient.stats.frames_ok, lenient.stats.frames_unchecked) == (1, 1)
    strict = _receiver(require_checksum=True)
    strict.offer_line(old)
    assert (strict.stats.frames_ok, strict.stats.frames_bad) == (0, 1)
    assert strict.latest is None


def test_receiver_keeps_the_page_of_an_http_frame() -> None:
    receiver = _receiver()
    receiver.offer_page(make_page())
    receiver.offer_page("<html>busy</html>")
    assert receiver.stats.bad_by_kind == {"page": 1}
    assert receiver.latest is not None
    assert receiver.latest.page is not None
    assert receiver.latest.page.extra is not None
