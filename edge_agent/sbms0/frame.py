"""Decoder of the 59-character `sbms` data string of a stock Electrodacus SBMS0/SBMS120.

Every character is worth `ord(c) - 35` (the 91 characters '#'..'}'); multi-character fields are
base 91, most significant first. Layout (0-based offsets):

    0-5 date (year-2000, month, day, hour, minute, second)   6-7 SoC %
    8-23 cells 1-8 mV (2 each)   24-25 internal, 26-27 external temperature ((v - 450) / 10 C)
    28 battery current sign ('-' = discharging)   29-31 battery mA   32-34 PV1 mA
    35-37 PV2 mA   38-40 external load mA   41-49 ADC2..ADC4   50-52 heat1
    53 dual-PV level   54-55 checksum   56-58 flags

Firmware from before 2021 sends `###` at 53-55: no dual-PV level and no checksum. Such frames
are accepted on range checks alone (`checksum_present` False) unless the caller requires one.
Checksum-valid frames can still carry impossible values, so every frame is range-checked
(cells, SoC, temperatures, date, currents, dual-PV level, flag bits). The checksum is a plain
sum, so two errors that cancel pass it: plausibility.py judges a frame against the previous one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

from edge_agent.drivers.isl94203 import CELL_CONFIG_MASKS, cell_inputs

FRAME_LENGTH = 59
BASE = 91
FIRST_CHAR = 35  # '#': value 0
LAST_CHAR = FIRST_CHAR + BASE - 1  # '}': value 90
CHECKSUM_OFFSET = 1995
NO_CHECKSUM = "###"  # offsets 53-55 of older firmware

# Flag word bits, named by position: b0 is OV whatever the state of the high bits.
FLAG_NAMES = (
    "OV",
    "OVLK",
    "UV",
    "UVLK",
    "IOT",
    "COC",
    "DOC",
    "DSC",
    "CELF",
    "OPEN",
    "LVC",
    "ECCF",
    "CFET",
    "EOC",
    "DFET",
)

# Which of the eight cell inputs a pack of n cells uses (0-based): the SBMS's cell monitor is
# an ISL94203, wired as ours (a 4-cell pack on inputs 1, 2, 7 and 8).
CELL_INPUTS: dict[int, tuple[int, ...]] = {
    count: cell_inputs(mask) for count, mask in CELL_CONFIG_MASKS.items()
}

# Plausibility limits: outside them the frame is damaged, whatever its checksum says.
CELL_MV_RANGE = (1000, 5000)
TEMPERATURE_C_RANGE = (-40.0, 85.0)  # the SBMS's rated range; 91.0 C was seen on a bad line
NO_SENSOR_CODE = 0  # external temperature code 0 (-45.0 C): no sensor fitted
MAX_YEARS_AHEAD = 1  # a clock may be a little ahead; years ahead is a corrupted date
# The largest shunt the SBMS0 takes, for the battery and for PV alike, is rated 750 A (SBMS0
# user manual v0.9, Specification: "External Batt current shunt 10A up to 750A", the same for
# PV; https://electrodacus.com/SBMS0/SBMS0.pdf). A three-character field reaches 753.57 A
# (91**3 - 1 mA), so this bound only drops the top 3.57 A: the code a run of '}' characters
# makes (a published frame read 753 A for battery and PV). The external-load input is an
# external shunt too; no SBMS input is specified beyond 750 A. A tighter bound would need the
# shunt actually fitted, which no frame or page carries.
MAX_CURRENT_MA = 750_000
# Dual PV: L1 (type 1 array alone), L2 (type 6 alone), L3 (both): SBMS0 manual section 8 and
# the EXTIO type 6 table of the unofficial guide. 0 stays accepted as "no level" (the report
# publishes only 1-3); every real checked frame carries 1.
DUAL_PV_LEVEL_RANGE = (0, 3)
# The flag word has 15 documented bits (b0 OV .. b14 DFET); a higher bit set is no flag any
# firmware documents, so it is damage (the field could carry 19 bits).
FLAG_BITS = len(FLAG_NAMES)


class FrameError(ValueError):
    """The string is not a usable frame; `kind` says which class of damage (for counters)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True, slots=True)
class SbmsFrame:
    """One decoded frame. Currents in mA (battery: positive = charging), cells in mV."""

    timestamp: dt.datetime | None  # the SBMS clock; None when it reads an impossible date
    soc: int  # percent
    cells_mv: tuple[int, ...]  # all eight inputs, unused ones read 0
    internal_temperature_c: float
    external_temperature_c: float | None  # None: no sensor
    battery_ma: int
    pv1_ma: int
    pv2_ma: int
    external_load_ma: int
    adc: tuple[int, int, int]  # ADC2..ADC4
    heat1: int
    dual_pv_level: int | None  # None on firmware without it
    checksum_present: bool
    flags: int

    @property
    def flag_names(self) -> frozenset[str]:
        return frozenset(name for bit, name in enumerate(FLAG_NAMES) if self.flags >> bit & 1)

    def cells_for(self, cell_count: int) -> tuple[int, ...]:
        """The configured cells' voltages in mV, bottom first."""
        return tuple(self.cells_mv[index] for index in CELL_INPUTS[cell_count])


def char_value(char: str) -> int:
    code = ord(char)
    if not FIRST_CHAR <= code <= LAST_CHAR:
        raise FrameError("alphabet", f"character {char!r} is outside the SBMS alphabet")
    return code - FIRST_CHAR


def base91(text: str) -> int:
    value = 0
    for char in text:
        value = value * BASE + char_value(char)
    return value


def checksum(values: list[int]) -> int:
    """The checksum the SBMS puts at 54-55, from the character values of a whole frame."""
    return CHECKSUM_OFFSET + sum(values[0:54]) + sum(values[56:59])


def decode_frame(
    text: str,
    *,
    cell_count: int = 8,
    max_year: int | None = None,
    require_checksum: bool = False,
) -> SbmsFrame:
    """Decode and check one frame; raises FrameError for any damaged or impossible frame.

    `max_year` is the latest plausible year of the SBMS clock (default: this year plus one).
    """
    if len(text) != FRAME_LENGTH:
        raise FrameError("length", f"a frame has {FRAME_LENGTH} characters, not {len(text)}")
    values = [char_value(char) for char in text]
    checksum_present = text[53:56] != NO_CHECKSUM
    if checksum_present:
        stored = values[54] * BASE + values[55]
        if stored != checksum(values):
            raise FrameError("checksum", f"checksum {stored} != computed {checksum(values)}")
    elif require_checksum:
        raise FrameError("checksum", "the frame carries no checksum (firmware before 2021)")
    if text[28] not in "+-":
        raise FrameError("value", f"current sign {text[28]!r} is neither '+' nor '-'")
    frame = _fields(text, values, checksum_present=checksum_present)
    _check_plausible(frame, cell_count, max_year or dt.datetime.now(dt.UTC).year + 1)
    return frame


def _fields(text: str, values: list[int], *, checksum_present: bool) -> SbmsFrame:
    sign = -1 if text[28] == "-" else 1
    external_code = base91(text[26:28])
    return SbmsFrame(
        timestamp=_date(values[0:6]),
        soc=base91(text[6:8]),
        cells_mv=tuple(base91(text[8 + 2 * i : 10 + 2 * i]) for i in range(8)),
        internal_temperature_c=_celsius(base91(text[24:26])),
        external_temperature_c=None if external_code == NO_SENSOR_CODE else _celsius(external_code),
        battery_ma=sign * base91(text[29:32]),
        pv1_ma=base91(text[32:35]),
        pv2_ma=base91(text[35:38]),
        external_load_ma=base91(text[38:41]),
        adc=(base91(text[41:44]), base91(text[44:47]), base91(text[47:50])),
        heat1=base91(text[50:53]),
        dual_pv_level=values[53] if checksum_present else None,
        checksum_present=checksum_present,
        flags=base91(text[56:59]),
    )


def _celsius(code: int) -> float:
    return (code - 450) / 10


def _date(values: list[int]) -> dt.datetime | None:
    year, month, day, hour, minute, second = values
    try:
        return dt.datetime(2000 + year, month, day, hour, minute, second, tzinfo=dt.UTC)
    except ValueError:
        return None


def _check_plausible(frame: SbmsFrame, cell_count: int, max_year: int) -> None:
    if frame.timestamp is None:
        raise FrameError("value", "the date is not a calendar date")
    if frame.timestamp.year > max_year:
        raise FrameError("value", f"the date {frame.timestamp:%Y-%m-%d} is years ahead")
    if not 0 <= frame.soc <= 100:
        raise FrameError("value", f"SoC {frame.soc} % is outside 0..100")
    low, high = CELL_MV_RANGE
    for index in CELL_INPUTS[cell_count]:
        millivolts = frame.cells_mv[index]
        if not low <= millivolts <= high:
            raise FrameError("value", f"cell input {index + 1} reads {millivolts} mV")
    temperatures = [frame.internal_temperature_c]
    if frame.external_temperature_c is not None:
        temperatures.append(frame.external_temperature_c)
    for celsius in temperatures:
        if not TEMPERATURE_C_RANGE[0] <= celsius <= TEMPERATURE_C_RANGE[1]:
            raise FrameError("value", f"temperature {celsius:.1f} C is impossible")
    _check_currents(frame)
    _check_level_and_flags(frame)


def _check_currents(frame: SbmsFrame) -> None:
    currents = {
        "battery": frame.battery_ma,
        "PV1": frame.pv1_ma,
        "PV2": frame.pv2_ma,
        "external load": frame.external_load_ma,
    }
    for name, milliamps in currents.items():
        if abs(milliamps) > MAX_CURRENT_MA:
            raise FrameError(
                "value",
                f"{name} current {milliamps / 1000:g} A is beyond the largest SBMS shunt "
                f"({MAX_CURRENT_MA / 1000:g} A)",
            )


def _check_level_and_flags(frame: SbmsFrame) -> None:
    low, high = DUAL_PV_LEVEL_RANGE
    if frame.dual_pv_level is not None and not low <= frame.dual_pv_level <= high:
        raise FrameError("value", f"dual-PV level {frame.dual_pv_level} is outside {low}..{high}")
    if frame.flags >> FLAG_BITS:
        raise FrameError("value", f"flag word {frame.flags} sets bits above b{FLAG_BITS - 1}")
