"""Pure tests of the back-fill arithmetic (history.py) and of the history payload parsers.

No Home Assistant instance and no broker: records are folded into hours, counters into
running sums, and `history/result` payloads parsed, all with hand-computed expected values.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from custom_components.sbms.history import (
    HourCounter,
    HourlyFolder,
    HourReading,
    HourSum,
    fill_sums,
    hour_start,
)
from custom_components.sbms.models import (
    HISTORY_SERIES,
    HistoryAnswer,
    HistoryRecord,
    ProtocolError,
    Reading,
)
from tests.integration.fake_agent import example

H = 1780282800  # an hour start: 494523 * 3600
HOUR = 3600


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations() -> None:
    """Pure tests: no Home Assistant instance."""


def _record_dict(
    start: float,
    end: float,
    *,
    soc: list[float] | None = None,
    counters: dict[str, float] | None = None,
) -> dict[str, Any]:
    """A minimal data-log record: every series null but `soc`."""
    data: dict[str, Any] = dict.fromkeys(HISTORY_SERIES)
    data.update(
        start=start,
        end=end,
        soc=soc,
        cell_min=None,
        cell_max=None,
        cell_delta=None,
        cells=[],
        internal_temperature=None,
        external_temperatures=[],
        dual_pv_level=None,
        counters=counters if counters is not None else {},
    )
    return data


def _record(
    start: float,
    end: float,
    *,
    soc: list[float] | None = None,
    pv_wh: float | None = None,
) -> HistoryRecord:
    counters = {} if pv_wh is None else {"pv_wh": pv_wh}
    return HistoryRecord.from_dict(_record_dict(start, end, soc=soc, counters=counters), "r")


def _soc(record: HistoryRecord) -> Reading | None:
    return record.series["soc"]


def _pv_wh(record: HistoryRecord) -> float | None:
    return record.counters.get("pv_wh")


def _folder() -> HourlyFolder:
    return HourlyFolder({"soc": _soc}, {"pv_wh": _pv_wh})


def _accepted(records: list[Any], next_from: Any = None) -> str:
    payload = example("history_result", 0)
    payload["records"] = records
    payload["next_from"] = next_from
    return json.dumps(payload)


def _doc_record() -> dict[str, Any]:
    record: dict[str, Any] = example("history_result", 0)["records"][0]
    return record


# --- hour_start ---------------------------------------------------------------------------


def test_hour_start_floors_to_the_utc_hour() -> None:
    assert hour_start(H) == H
    assert hour_start(H + 0.5) == H
    assert hour_start(H + 3599.999) == H
    assert hour_start(H + 3600) == H + HOUR
    assert hour_start(H - 0.001) == H - HOUR
    assert hour_start(1780284000) == H  # the doc's record, 20 min past the hour
    assert isinstance(hour_start(H + 12.5), int)


# --- HourlyFolder: measurements -----------------------------------------------------------


def test_mean_is_weighted_by_duration_and_extremes_are_the_records_extremes() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H, H + 120, soc=[10.0, 8.0, 12.0]),
            _record(H + 120, H + 240, soc=[20.0, 19.0, 25.0]),
            _record(H + 240, H + 480, soc=[40.0, 5.0, 41.0]),
        ]
    )
    # (10*120 + 20*120 + 40*240) / 480 = 13200 / 480 = 27.5 (an unweighted mean: 23.33)
    [row] = folder.readings("soc")
    assert row.start == H
    assert row.reading.mean == pytest.approx(27.5)
    assert row.reading.min == 5.0
    assert row.reading.max == 41.0
    assert folder.records == 3


def test_a_record_without_a_reading_is_skipped_not_counted_as_zero() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H, H + 120, soc=[50.0, 49.0, 51.0]),
            _record(H + 120, H + 240, soc=None),
            _record(H + 240, H + 360, soc=[60.0, 59.0, 62.0]),
        ]
    )
    assert folder.readings("soc") == [HourReading(H, Reading(55.0, 49.0, 62.0))]
    assert folder.records == 3  # the record itself was folded (its counters would count)


def test_an_hour_with_no_reading_at_all_has_no_row() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H, H + 120, soc=[50.0, 50.0, 50.0]),
            _record(H + HOUR, H + HOUR + 120, soc=None),
            _record(H + 2 * HOUR, H + 2 * HOUR + 120, soc=[70.0, 70.0, 70.0]),
        ]
    )
    assert [row.start for row in folder.readings("soc")] == [H, H + 2 * HOUR]


def test_records_in_two_hours_give_two_rows_oldest_first() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H + 3480, H + 3600, soc=[30.0, 29.0, 31.0]),
            _record(H + 3600, H + 3720, soc=[40.0, 39.0, 41.0]),
            _record(H + 3720, H + 3960, soc=[10.0, 9.0, 11.0]),
        ]
    )
    assert folder.readings("soc") == [
        HourReading(H, Reading(30.0, 29.0, 31.0)),
        # (40*120 + 10*240) / 360 = 7200 / 360 = 20
        HourReading(H + HOUR, Reading(20.0, 9.0, 41.0)),
    ]


def test_a_record_belongs_to_the_hour_its_start_is_in() -> None:
    folder = _folder()
    folder.add([_record(H + 3540, H + 3660, soc=[80.0, 79.0, 81.0], pv_wh=12.0)])
    assert folder.readings("soc") == [HourReading(H, Reading(80.0, 79.0, 81.0))]
    assert folder.counters("pv_wh") == [HourCounter(H, 12.0)]


def test_a_repeated_page_changes_nothing() -> None:
    page = [
        _record(H, H + 120, soc=[10.0, 9.0, 11.0], pv_wh=1.0),
        _record(H + 120, H + 360, soc=[40.0, 38.0, 42.0], pv_wh=2.0),
    ]
    once = _folder()
    once.add(page)
    twice = _folder()
    twice.add(page)
    twice.add(page)
    assert twice.records == once.records == 2
    # (10*120 + 40*240) / 360 = 10800 / 360 = 30
    assert twice.readings("soc") == once.readings("soc")
    assert twice.readings("soc")[0].reading.mean == pytest.approx(30.0)
    assert twice.counters("pv_wh") == once.counters("pv_wh") == [HourCounter(H, 2.0)]


def test_pages_fold_on_and_older_or_equal_records_are_ignored() -> None:
    folder = _folder()
    folder.add([_record(H, H + 120, soc=[10.0, 10.0, 10.0], pv_wh=5.0)])
    folder.add(
        [
            _record(H, H + 120, soc=[99.0, 0.0, 100.0], pv_wh=99.0),  # same start: ignored
            _record(H + 240, H + 360, soc=[20.0, 20.0, 20.0], pv_wh=7.0),
            _record(H + 120, H + 240, soc=[99.0, 0.0, 100.0], pv_wh=99.0),  # older: ignored
        ]
    )
    assert folder.records == 2
    assert folder.readings("soc") == [HourReading(H, Reading(15.0, 10.0, 20.0))]
    assert folder.counters("pv_wh") == [HourCounter(H, 7.0)]


def test_a_fresh_folder_is_empty() -> None:
    folder = _folder()
    folder.add([])
    assert folder.records == 0
    assert folder.readings("soc") == []
    assert folder.counters("pv_wh") == []


# --- HourlyFolder: counters ---------------------------------------------------------------


def test_the_hours_last_record_gives_the_counter() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H, H + 120, pv_wh=100.0),
            _record(H + 120, H + 240, pv_wh=103.0),
            _record(H + 3480, H + 3600, pv_wh=110.5),
            _record(H + HOUR, H + HOUR + 120, pv_wh=111.0),
            _record(H + HOUR + 120, H + HOUR + 240, pv_wh=2.0),  # a reset is kept as is
        ]
    )
    assert folder.counters("pv_wh") == [HourCounter(H, 110.5), HourCounter(H + HOUR, 2.0)]


def test_a_record_without_the_counter_keeps_the_hours_earlier_value() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H, H + 120, pv_wh=100.0),
            _record(H + 120, H + 240, pv_wh=None),
            _record(H + HOUR, H + HOUR + 120, pv_wh=None),
        ]
    )
    assert folder.counters("pv_wh") == [HourCounter(H, 100.0)]


def test_several_keys_fold_independently() -> None:
    def soc_max_only(record: HistoryRecord) -> Reading | None:
        reading = record.series["soc"]
        return None if reading is None else Reading.single(reading.max)

    folder = HourlyFolder(
        {"soc": _soc, "soc_max": soc_max_only},
        {"pv_wh": _pv_wh, "load_wh": lambda record: record.counters.get("load_wh")},
    )
    folder.add([_record(H, H + 120, soc=[50.0, 40.0, 60.0], pv_wh=3.0)])
    assert folder.readings("soc") == [HourReading(H, Reading(50.0, 40.0, 60.0))]
    assert folder.readings("soc_max") == [HourReading(H, Reading(60.0, 60.0, 60.0))]
    assert folder.counters("pv_wh") == [HourCounter(H, 3.0)]
    assert folder.counters("load_wh") == []


# --- fill_sums ----------------------------------------------------------------------------


def test_missing_hours_after_a_row_continue_its_sum() -> None:
    base = HourSum(H, 100.0, 10.0)
    hours = [
        HourCounter(H + HOUR, 103.0),
        HourCounter(H + 2 * HOUR, 110.0),
        HourCounter(H + 3 * HOUR, 111.5),
    ]
    assert fill_sums([base], hours) == [
        HourSum(H + HOUR, 103.0, 13.0),  # 10 + 103 - 100
        HourSum(H + 2 * HOUR, 110.0, 20.0),  # 13 + 110 - 103
        HourSum(H + 3 * HOUR, 111.5, 21.5),  # 20 + 111.5 - 110
    ]


def test_the_order_of_the_inputs_does_not_matter() -> None:
    existing = [HourSum(H + 3 * HOUR, 130.0, 40.0), HourSum(H, 100.0, 10.0)]
    hours = [HourCounter(H + 2 * HOUR, 120.0), HourCounter(H + HOUR, 105.0)]
    assert fill_sums(existing, hours) == [
        HourSum(H + HOUR, 105.0, 15.0),
        HourSum(H + 2 * HOUR, 120.0, 30.0),
    ]


def test_a_hole_between_rows_continues_the_earlier_row_and_leaves_the_later_out() -> None:
    existing = [HourSum(H, 100.0, 10.0), HourSum(H + 3 * HOUR, 130.0, 40.0)]
    hours = [
        HourCounter(H, 99.0),  # has a row: not returned, and its row's state is used
        HourCounter(H + HOUR, 105.0),
        HourCounter(H + 2 * HOUR, 120.0),
        HourCounter(H + 3 * HOUR, 125.0),  # has a row: not returned
        HourCounter(H + 4 * HOUR, 135.0),  # continues HA's row (130, 40), not the counter's 125
    ]
    assert fill_sums(existing, hours) == [
        HourSum(H + HOUR, 105.0, 15.0),  # 10 + 105 - 100
        HourSum(H + 2 * HOUR, 120.0, 30.0),  # 15 + 120 - 105
        HourSum(H + 4 * HOUR, 135.0, 45.0),  # 40 + 135 - 130
    ]


def test_hours_before_the_first_row_are_left_out() -> None:
    existing = [HourSum(H + 2 * HOUR, 50.0, 5.0)]
    hours = [
        HourCounter(H, 40.0),
        HourCounter(H + HOUR, 45.0),
        HourCounter(H + 3 * HOUR, 60.0),
    ]
    assert fill_sums(existing, hours) == [HourSum(H + 3 * HOUR, 60.0, 15.0)]


def test_nothing_is_filled_without_an_existing_row_or_missing_hours() -> None:
    assert fill_sums([], [HourCounter(H, 1.0), HourCounter(H + HOUR, 2.0)]) == []
    assert fill_sums([HourSum(H, 1.0, 1.0)], []) == []
    assert fill_sums([HourSum(H, 1.0, 1.0)], [HourCounter(H, 7.0)]) == []


def test_a_drop_below_90_percent_is_a_reset_that_adds_the_new_state() -> None:
    base = HourSum(H, 100.0, 10.0)
    hours = [
        HourCounter(H + HOUR, 2.0),  # reset: the new cycle from 0 -> 10 + 2
        HourCounter(H + 2 * HOUR, 7.0),  # 12 + 7 - 2
    ]
    assert fill_sums([base], hours) == [
        HourSum(H + HOUR, 2.0, 12.0),
        HourSum(H + 2 * HOUR, 7.0, 17.0),
    ]


def test_a_reset_to_zero_keeps_the_sum() -> None:
    base = HourSum(H, 100.0, 10.0)
    assert fill_sums([base], [HourCounter(H + HOUR, 0.0)]) == [HourSum(H + HOUR, 0.0, 10.0)]


def test_a_small_dip_is_a_negative_change_like_home_assistant() -> None:
    base = HourSum(H, 100.0, 10.0)
    hours = [HourCounter(H + HOUR, 95.0), HourCounter(H + 2 * HOUR, 97.0)]
    assert fill_sums([base], hours) == [
        HourSum(H + HOUR, 95.0, 5.0),  # 10 + 95 - 100
        HourSum(H + 2 * HOUR, 97.0, 7.0),  # 5 + 97 - 95
    ]


def test_the_reset_threshold_is_exactly_90_percent() -> None:
    base = HourSum(H, 100.0, 10.0)
    # 90 is not below 0.9 * 100: a dip of -10; 89 is: a reset adding 89
    assert fill_sums([base], [HourCounter(H + HOUR, 90.0)]) == [HourSum(H + HOUR, 90.0, 0.0)]
    assert fill_sums([base], [HourCounter(H + HOUR, 89.0)]) == [HourSum(H + HOUR, 89.0, 99.0)]


def test_a_reset_is_judged_against_a_filled_row_too() -> None:
    base = HourSum(H, 10.0, 1.0)
    hours = [HourCounter(H + HOUR, 200.0), HourCounter(H + 2 * HOUR, 150.0)]
    assert fill_sums([base], hours) == [
        HourSum(H + HOUR, 200.0, 191.0),  # 1 + 200 - 10
        HourSum(H + 2 * HOUR, 150.0, 341.0),  # 150 < 180: reset, 191 + 150
    ]


def test_folded_counters_feed_fill_sums() -> None:
    folder = _folder()
    folder.add(
        [
            _record(H + HOUR, H + HOUR + 120, pv_wh=100.0),
            _record(H + HOUR + 3480, H + 2 * HOUR, pv_wh=104.0),
            _record(H + 2 * HOUR + 3480, H + 3 * HOUR, pv_wh=109.0),
        ]
    )
    existing = [HourSum(H, 98.0, 50.0)]
    assert fill_sums(existing, folder.counters("pv_wh")) == [
        HourSum(H + HOUR, 104.0, 56.0),  # 50 + 104 - 98
        HourSum(H + 2 * HOUR, 109.0, 61.0),  # 56 + 109 - 104
    ]


# --- HistoryRecord ------------------------------------------------------------------------


def test_the_documented_record_parses() -> None:
    record = HistoryRecord.from_dict(_doc_record(), "history.records[0]")
    assert record.start == 1780284000.0
    assert record.end == 1780284120.0
    assert set(record.series) == set(HISTORY_SERIES)
    assert record.series["soc"] == Reading(43.76, 43.75, 43.78)
    assert record.series["battery_power"] == Reading(-17.0, -17.0, -17.0)
    assert (record.cell_min, record.cell_max, record.cell_delta) == (3.275, 3.28, 0.004)
    assert len(record.cells) == 8
    assert record.internal_temperature == 22.5
    assert record.external_temperatures == (17.4, None)
    assert record.dual_pv_level is None
    assert record.counters["battery_out_wh"] == 163.9
    assert record.counters["load_ah"] == 6.246
    assert len(record.counters) == 8


def test_cells_and_external_temperatures_beyond_the_list_are_none() -> None:
    record = HistoryRecord.from_dict(_doc_record(), "r")
    assert record.cell(0) == 3.279
    assert record.cell(7) == 3.276
    assert record.cell(8) is None
    assert record.cell(100) is None
    assert record.external_temperature(0) == 17.4
    assert record.external_temperature(1) is None  # null in the list
    assert record.external_temperature(2) is None  # beyond the list
    empty = _record(H, H + 120)
    assert empty.cell(0) is None
    assert empty.external_temperature(0) is None


def test_a_record_with_integer_values_gives_floats() -> None:
    data = _record_dict(H, H + 120, soc=[50, 49, 51], counters={"pv_wh": 3})
    data["cells"] = [3, None]
    record = HistoryRecord.from_dict(data, "r")
    assert record.series["soc"] == Reading(50.0, 49.0, 51.0)
    assert record.cells == (3.0, None)
    assert record.counters == {"pv_wh": 3.0}
    assert isinstance(record.counters["pv_wh"], float)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"end": H}, "r.end: must be after start"),
        ({"end": H - 1}, "r.end: must be after start"),
        ({"soc": [1.0, 2.0, 3.0, 4.0]}, "r.soc: expected [mean, min, max]"),
        ({"soc": [1.0, True, 3.0]}, "r.soc: expected a list of numbers"),
        ({"soc": "50"}, "r.soc: expected a list"),
        ({"pv_power": 0.0}, "r.pv_power: expected a list"),
        ({"start": "1780282800"}, "r.start: expected a number"),
        ({"counters": {"pv_wh": "1"}}, "r.counters.pv_wh: expected a number"),
        ({"counters": []}, "r.counters: expected an object"),
        ({"external_temperatures": [17.4, "x"]}, "r.external_temperatures: expected a list"),
        ({"dual_pv_level": 1.5}, "r.dual_pv_level: expected an integer"),
        ({"cell_min": "3.2"}, "r.cell_min: expected a number"),
    ],
)
def test_a_bad_record_names_the_field(change: dict[str, Any], message: str) -> None:
    data = _record_dict(H, H + 120, soc=[50.0, 49.0, 51.0])
    data.update(change)
    with pytest.raises(ProtocolError, match=re.escape(message)):
        HistoryRecord.from_dict(data, "r")


@pytest.mark.parametrize("key", ["start", "end", "soc", "load_power", "cells", "counters"])
def test_a_record_missing_a_required_key_names_it(key: str) -> None:
    data = _record_dict(H, H + 120)
    del data[key]
    with pytest.raises(ProtocolError, match=re.escape(f"r.{key}: missing")):
        HistoryRecord.from_dict(data, "r")


# --- HistoryAnswer ------------------------------------------------------------------------


def test_the_documented_accepted_answer_parses() -> None:
    answer = HistoryAnswer.from_payload(json.dumps(example("history_result", 0)))
    assert answer.result.accepted is True
    assert answer.result.command == "history/get"
    assert answer.result.request_id == "ha-backfill-1"
    assert len(answer.records) == 1
    [record] = answer.records
    assert record.series["soc"] == Reading(43.76, 43.75, 43.78)
    assert record.series["pack_voltage"] == Reading(26.221, 26.218, 26.223)
    assert record.counters["battery_out_ah"] == 6.246
    assert record.counters["pv_wh"] == 0.0
    assert answer.next_from == 1780284120.0


def test_the_answer_parses_from_bytes_too() -> None:
    payload = json.dumps(example("history_result", 0)).encode()
    assert HistoryAnswer.from_payload(payload).next_from == 1780284120.0


@pytest.mark.parametrize("index", [1, 2])
def test_the_documented_rejected_answers_have_no_records(index: int) -> None:
    answer = HistoryAnswer.from_payload(json.dumps(example("history_result", index)))
    assert answer.result.accepted is False
    assert answer.records == ()
    assert answer.next_from is None
    assert answer.result.errors[0].field in {"history", "limit"}


def test_a_rejected_answer_is_not_read_further() -> None:
    payload = example("history_result", 1)
    payload["records"] = "not even a list"
    answer = HistoryAnswer.from_payload(json.dumps(payload))
    assert answer.result.accepted is False
    assert answer.records == ()


def test_the_last_page_has_no_next_from() -> None:
    answer = HistoryAnswer.from_payload(_accepted([_doc_record(), _doc_record()], None))
    assert len(answer.records) == 2
    assert answer.next_from is None
    del_next = example("history_result", 0)
    del del_next["next_from"]
    assert HistoryAnswer.from_payload(json.dumps(del_next)).next_from is None


def test_an_empty_page_parses() -> None:
    answer = HistoryAnswer.from_payload(_accepted([], None))
    assert answer.result.accepted is True
    assert answer.records == ()


def _bad(**change: Any) -> dict[str, Any]:
    record = _doc_record()
    record.update(change)
    return record


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ([_bad(soc=[43.76, 43.75])], "history.records[0].soc: expected [mean, min, max]"),
        ([_doc_record(), _bad(end=1780284000)], "history.records[1].end: must be after start"),
        ([_bad(end=1780283000)], "history.records[0].end: must be after start"),
        ([_bad(cells=[3.279, "3.279"])], "history.records[0].cells: expected a list of numbers"),
        ([_bad(cells=None)], "history.records[0].cells: expected a list"),
        ([_doc_record(), "record"], "history.records[1]: expected an object"),
        ([[1780284000, 1780284120]], "history.records[0]: expected an object"),
        ([_bad(counters={"pv_wh": None})], "history.records[0].counters.pv_wh: expected a number"),
        ([_bad(load_power=[1, 2, 3, 4])], "history.records[0].load_power: expected [mean, min"),
    ],
)
def test_a_bad_answer_names_the_field(records: list[Any], message: str) -> None:
    with pytest.raises(ProtocolError, match=re.escape(message)):
        HistoryAnswer.from_payload(_accepted(records, 1780284120))


def test_a_record_without_counters_names_them() -> None:
    record = _doc_record()
    del record["counters"]
    with pytest.raises(ProtocolError, match=re.escape("history.records[0].counters: missing")):
        HistoryAnswer.from_payload(_accepted([record]))


def test_an_accepted_answer_without_records_names_them() -> None:
    payload = example("history_result", 0)
    del payload["records"]
    with pytest.raises(ProtocolError, match=re.escape("history.records: missing")):
        HistoryAnswer.from_payload(json.dumps(payload))
    payload["records"] = {"0": _doc_record()}
    with pytest.raises(ProtocolError, match=re.escape("history.records: expected a list")):
        HistoryAnswer.from_payload(json.dumps(payload))


def test_a_bad_next_from_is_named() -> None:
    with pytest.raises(ProtocolError, match=re.escape("history.next_from: expected a number")):
        HistoryAnswer.from_payload(_accepted([_doc_record()], "1780284120"))


def test_a_payload_that_is_not_json_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not JSON"):
        HistoryAnswer.from_payload("{")
    with pytest.raises(ProtocolError, match="not a JSON object"):
        HistoryAnswer.from_payload("[]")
