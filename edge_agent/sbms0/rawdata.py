"""Parser of the SBMS WiFi board's `/rawData` page: JavaScript `var name=value;` lines.

    var sbms="...59 characters...";   the data string (frame.py)
    var xsbms="...11...";  internal load mA (3), cell limit high/low mV (2+2), battery type (1),
                           capacity Ah (3)
    var s2=[b1,...,b8, max cell, min cell, pv on, load on];  balancing per cell input, 1-based
                           indices of the highest and lowest cell, output states
    var eA="...", eW="...";  6-character counters (mAh, 0.1 Wh): battery, PV1, PV2, external
                           load, PV1+PV2, load, then further counters; `empty-` where the model
                           has no such input

Only exact variable names on their own lines count: UART damage between the SBMS and its WiFi
board garbles names (`eWbms=`, `sbm#=`), and a garbled line can hold a stale frame. Commented
lines (`// var ...`) are skipped. A missing or damaged optional variable becomes None; only a
missing `sbms` makes the page unusable.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from edge_agent.sbms0.frame import FrameError, base91

XSBMS_LENGTH = 11
COUNTER_WIDTH = 6
EMPTY_COUNTER = "empty-"
S2_LENGTH = 12
COUNTER_NAMES = ("battery", "pv1", "pv2", "external_load", "pv", "load")

_VAR_LINE = re.compile(
    r"""^[ \t]*var[ \t]+(?P<name>[A-Za-z_][A-Za-z0-9_]*)[ \t]*=[ \t]*
        (?:"(?P<string>(?:[^"\\\n]|\\.)*)"|(?P<array>\[[^\]\n]*\]))[ \t]*;""",
    re.MULTILINE | re.VERBOSE,
)
_ESCAPE = re.compile(r"\\(.)")


@dataclass(frozen=True, slots=True)
class ExtraValues:
    """`xsbms`: values beside the frame."""

    load_ma: int  # the SBMS's own load output: PV + discharge - external load
    cell_high_mv: int
    cell_low_mv: int
    battery_type: int
    capacity_ah: int


@dataclass(frozen=True, slots=True)
class OutputStatus:
    """`s2`: balancing and output states."""

    balancing: tuple[bool, ...]  # eight cell inputs, bottom first
    max_cell: int  # 1-based cell input
    min_cell: int
    pv_on: bool
    load_on: bool


@dataclass(frozen=True, slots=True)
class RawDataPage:
    sbms: str  # the frame text, JavaScript escaping undone (not yet decoded)
    extra: ExtraValues | None
    status: OutputStatus | None
    amp_hours_mah: tuple[int | None, ...] | None  # eA; None entries: `empty-`
    watt_hours_dwh: tuple[int | None, ...] | None  # eW, in 0.1 Wh


def parse_rawdata(page: str) -> RawDataPage:
    """Raises FrameError("page", ...) when the page has no `sbms` variable."""
    strings, arrays = _variables(page)
    if "sbms" not in strings:
        raise FrameError("page", "the page has no sbms variable")
    return RawDataPage(
        sbms=strings["sbms"],
        extra=_extra(strings.get("xsbms")),
        status=_status(arrays.get("s2")),
        amp_hours_mah=_counters(strings.get("eA")),
        watt_hours_dwh=_counters(strings.get("eW")),
    )


def _variables(page: str) -> tuple[dict[str, str], dict[str, str]]:
    """String and array variables by name; the last assignment of a name wins, as in JS."""
    strings: dict[str, str] = {}
    arrays: dict[str, str] = {}
    for match in _VAR_LINE.finditer(page):
        name = match["name"]
        if match["string"] is not None:
            strings[name] = _ESCAPE.sub(r"\1", match["string"])
        else:
            arrays[name] = match["array"]
    return strings, arrays


def _extra(text: str | None) -> ExtraValues | None:
    if text is None or len(text) != XSBMS_LENGTH:
        return None
    try:
        return ExtraValues(
            load_ma=base91(text[0:3]),
            cell_high_mv=base91(text[3:5]),
            cell_low_mv=base91(text[5:7]),
            battery_type=base91(text[7:8]),
            capacity_ah=base91(text[8:11]),
        )
    except FrameError:
        return None


def _status(text: str | None) -> OutputStatus | None:
    if text is None:
        return None
    try:
        items = [int(item) for item in text.strip("[]").split(",")]
    except ValueError:
        return None
    if len(items) != S2_LENGTH or not all(item >= 0 for item in items):
        return None
    if not (1 <= items[8] <= 8 and 1 <= items[9] <= 8):
        return None
    return OutputStatus(
        balancing=tuple(bool(item) for item in items[0:8]),
        max_cell=items[8],
        min_cell=items[9],
        pv_on=bool(items[10]),
        load_on=bool(items[11]),
    )


def _counters(text: str | None) -> tuple[int | None, ...] | None:
    if text is None or not text or len(text) % COUNTER_WIDTH:
        return None
    chunks = [text[i : i + COUNTER_WIDTH] for i in range(0, len(text), COUNTER_WIDTH)]
    try:
        return tuple(None if chunk == EMPTY_COUNTER else base91(chunk) for chunk in chunks)
    except FrameError:
        return None
