"""The SBMS data-string decoder, both ways: frames built by an encoder from known values, and
every class of damage (length, alphabet, checksum, impossible values) rejected by kind."""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.sbms0.frame import (
    CELL_INPUTS,
    FLAG_NAMES,
    FRAME_LENGTH,
    MAX_CURRENT_MA,
    FrameError,
    SbmsFrame,
    decode_frame,
)
from tests.helpers.sbms0 import encode_frame, make_frame

UTC = dt.UTC


def test_known_frame_decodes_to_its_values() -> None:
    frame = make_frame()
    text = encode_frame(frame)
    assert len(text) == FRAME_LENGTH
    assert decode_frame(text, max_year=2026) == frame
    assert frame.flag_names == {"CFET", "DFET"}


def test_four_cell_pack_reads_inputs_1_2_7_8() -> None:
    frame = make_frame(cells_mv=(3301, 3302, 0, 0, 0, 0, 3307, 3308))
    decoded = decode_frame(encode_frame(frame), cell_count=4, max_year=2026)
    assert decoded.cells_for(4) == (3301, 3302, 3307, 3308)
    assert CELL_INPUTS[4] == (0, 1, 6, 7)


def test_old_firmware_frame_without_checksum_is_accepted_unchecked() -> None:
    frame = make_frame(checksum_present=False, dual_pv_level=None)
    text = encode_frame(frame)
    assert text[53:56] == "###"
    decoded = decode_frame(text, max_year=2026)
    assert decoded == frame
    assert not decoded.checksum_present


def test_old_firmware_frame_rejected_when_a_checksum_is_required() -> None:
    text = encode_frame(make_frame(checksum_present=False, dual_pv_level=None))
    with pytest.raises(FrameError) as caught:
        decode_frame(text, max_year=2026, require_checksum=True)
    assert caught.value.kind == "checksum"


@pytest.mark.parametrize("bit", range(len(FLAG_NAMES)))
def test_each_flag_is_named_by_its_bit_whatever_the_high_bits(bit: int) -> None:
    # The known bug elsewhere: padding the word to 14 bits shifts every name when DFET is clear.
    alone = decode_frame(encode_frame(make_frame(flags=1 << bit)), max_year=2026)
    assert alone.flag_names == {FLAG_NAMES[bit]}
    with_dfet = decode_frame(encode_frame(make_frame(flags=(1 << bit) | 1 << 14)), max_year=2026)
    assert with_dfet.flag_names == {FLAG_NAMES[bit], "DFET"}


def test_documented_flag_words() -> None:
    names = {
        20480: {"CFET", "DFET"},
        16385: {"OV", "DFET"},
        24577: {"OV", "EOC", "DFET"},
        4100: {"UV", "CFET"},
    }
    for word, expected in names.items():
        assert make_frame(flags=word).flag_names == expected


# --- bad input ------------------------------------------------------------------------------


def _kind(text: str, **kwargs: object) -> str:
    with pytest.raises(FrameError) as caught:
        decode_frame(text, max_year=2026, **kwargs)  # type: ignore[arg-type]
    return caught.value.kind


@pytest.mark.parametrize("length", [0, 1, 58, 60, 118])
def test_wrong_length_is_rejected(length: int) -> None:
    text = (encode_frame(make_frame()) * 3)[:length]
    assert _kind(text) == "length"


@pytest.mark.parametrize("char", [" ", '"', "~", "\x7f", "\xe9", "\x00", "\n"])
def test_character_outside_the_alphabet_is_rejected(char: str) -> None:
    text = encode_frame(make_frame())
    assert _kind(text[:10] + char + text[11:]) == "alphabet"


@pytest.mark.parametrize("position", [0, 7, 20, 30, 45, 53, 57])
def test_one_changed_character_fails_the_checksum(position: int) -> None:
    text = encode_frame(make_frame())
    changed = chr(35 + (ord(text[position]) - 35 + 1) % 91)
    assert _kind(text[:position] + changed + text[position + 1 :]) == "checksum"


@pytest.mark.parametrize(
    "changes",
    [
        {"cells_mv": (3321, 3322, 3323, 0, 3325, 3326, 3327, 3328)},  # a configured cell at 0 mV
        {"cells_mv": (3321, 3322, 3323, 7000, 3325, 3326, 3327, 3328)},
        {"timestamp": dt.datetime(2031, 6, 1, tzinfo=UTC)},  # years ahead
        {"soc": 101},
        {"internal_temperature_c": 91.0},  # seen on a damaged real line with a valid checksum
        {"external_temperature_c": -44.0},
    ],
)
def test_impossible_values_are_rejected_even_with_a_valid_checksum(
    changes: dict[str, object],
) -> None:
    assert _kind(encode_frame(make_frame(**changes))) == "value"


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ({"battery_ma": -750_001}, "battery current -750.001 A is beyond"),
        ({"battery_ma": 753_570}, "battery current 753.57 A is beyond"),  # '}}}': the field's top
        ({"pv1_ma": 750_001}, "PV1 current 750.001 A"),
        ({"pv2_ma": 753_000}, "PV2 current 753 A"),
        ({"external_load_ma": 751_000}, "external load current 751 A"),
        ({"dual_pv_level": 4}, "dual-PV level 4 is outside 0..3"),
        ({"dual_pv_level": 90}, "dual-PV level 90"),
        ({"flags": 1 << 15}, "flag word 32768 sets bits above b14"),
    ],
)
def test_currents_level_and_flags_beyond_what_an_sbms_sends_are_rejected(
    changes: dict[str, object], reason: str
) -> None:
    with pytest.raises(FrameError) as caught:
        decode_frame(encode_frame(make_frame(**changes)), max_year=2026)
    assert caught.value.kind == "value"
    assert reason in str(caught.value)


def test_the_published_753_a_level_90_frame_is_rejected() -> None:
    # As reported: checksum-valid, 753 A of battery and of PV current, dual-PV level 90.
    frame = make_frame(battery_ma=753_000, pv1_ma=753_000, dual_pv_level=90)
    assert _kind(encode_frame(frame)) == "value"


@pytest.mark.parametrize(
    "changes",
    [
        {"battery_ma": -MAX_CURRENT_MA},
        {"battery_ma": MAX_CURRENT_MA},
        {"pv1_ma": MAX_CURRENT_MA, "pv2_ma": MAX_CURRENT_MA},
        {"external_load_ma": MAX_CURRENT_MA},
        {"dual_pv_level": 0},
        {"dual_pv_level": 3},
        {"flags": (1 << 15) - 1},
    ],
)
def test_the_bounds_themselves_are_accepted(changes: dict[str, object]) -> None:
    frame = make_frame(**changes)
    assert decode_frame(encode_frame(frame), max_year=2026) == frame


def test_impossible_calendar_date_is_rejected() -> None:
    text = encode_frame(make_frame())
    # Month 13 with a recomputed checksum: only the date check can catch it.
    values = [ord(char) - 35 for char in text]
    values[1] = 13
    total = 1995 + sum(values[0:54]) + sum(values[56:59])
    values[54], values[55] = divmod(total, 91)
    assert _kind("".join(chr(35 + value) for value in values)) == "value"


def test_unset_clock_year_2000_is_accepted() -> None:
    frame = make_frame(timestamp=dt.datetime(2000, 1, 1, 0, 2, 49, tzinfo=UTC))
    assert decode_frame(encode_frame(frame), max_year=2026).timestamp == frame.timestamp


def test_a_clock_one_year_ahead_is_accepted() -> None:
    frame = make_frame(timestamp=dt.datetime(2027, 1, 1, tzinfo=UTC))
    assert decode_frame(encode_frame(frame), max_year=2027) == frame


def test_cells_unused_by_a_four_cell_pack_are_not_range_checked() -> None:
    frame = make_frame(cells_mv=(3301, 3302, 0, 0, 0, 0, 3307, 3308))
    assert _kind(encode_frame(frame)) == "value"  # as 8S: input 3 at 0 mV
    assert decode_frame(encode_frame(frame), cell_count=4, max_year=2026) == frame


def test_sign_character_other_than_plus_or_minus_is_rejected() -> None:
    text = encode_frame(make_frame())
    values = [ord(char) - 35 for char in text]
    values[28] = ord("#") - 35
    total = 1995 + sum(values[0:54]) + sum(values[56:59])
    values[54], values[55] = divmod(total, 91)
    assert _kind("".join(chr(35 + value) for value in values)) == "value"


# --- round trip over every field's range ----------------------------------------------------

_cells = st.tuples(*[st.integers(1000, 5000)] * 8)
_tenths = st.integers(-400, 850).map(lambda tenths: tenths / 10)
_three = st.integers(0, 91**3 - 1)
_current = st.integers(0, MAX_CURRENT_MA)


@st.composite
def frames(draw: st.DrawFn) -> SbmsFrame:
    checked = draw(st.booleans())
    return SbmsFrame(
        timestamp=draw(
            st.datetimes(
                min_value=dt.datetime(2000, 1, 1),  # naive bounds: hypothesis adds the zone
                max_value=dt.datetime(2026, 12, 31, 23, 59, 59),
                timezones=st.just(UTC),
            ).map(lambda when: when.replace(microsecond=0))
        ),
        soc=draw(st.integers(0, 100)),
        cells_mv=draw(_cells),
        internal_temperature_c=draw(_tenths),
        external_temperature_c=draw(st.none() | _tenths),
        battery_ma=draw(st.integers(-MAX_CURRENT_MA, MAX_CURRENT_MA)),
        pv1_ma=draw(_current),
        pv2_ma=draw(_current),
        external_load_ma=draw(_current),
        adc=(draw(_three), draw(_three), draw(_three)),
        heat1=draw(_three),
        dual_pv_level=draw(st.integers(0, 3)) if checked else None,
        checksum_present=checked,
        flags=draw(st.integers(0, 2**15 - 1)),
    )


@given(frames())
def test_round_trip_of_every_field(frame: SbmsFrame) -> None:
    text = encode_frame(frame)
    assert len(text) == FRAME_LENGTH
    decoded = decode_frame(text, max_year=2026)
    assert decoded == frame
    assert decoded.flag_names == {
        name for bit, name in enumerate(FLAG_NAMES) if frame.flags >> bit & 1
    }


@given(frames(), st.integers(0, FRAME_LENGTH - 1), st.integers(1, 90))
def test_any_single_damaged_character_of_a_checked_frame_is_caught(
    frame: SbmsFrame, position: int, shift: int
) -> None:
    frame = dataclasses.replace(frame, checksum_present=True, dual_pv_level=1)
    text = encode_frame(frame)
    damaged = chr(35 + (ord(text[position]) - 35 + shift) % 91)
    with pytest.raises(FrameError):
        decode_frame(text[:position] + damaged + text[position + 1 :], max_year=2026)
