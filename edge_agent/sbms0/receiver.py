"""Where the sources deliver: decodes, counts, and keeps the latest good frame.

A serial line is either a bare 59-character frame (USART data-log mode) or a JavaScript line
(`var sbms="...";`, the WiFi board's format); other `var` lines are not frames and are ignored.
An HTTP page is a whole /rawData page. Anything damaged is counted and dropped: it never
replaces the latest good frame. A frame that decodes is then judged against the last accepted
one (plausibility.py, on the agent's clock): one that jumps further than physics allows is
dropped as `jump`, until a change that persists is taken as the new reference (`reanchored`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable
from dataclasses import dataclass

from edge_agent.sbms0.frame import FrameError, SbmsFrame, decode_frame
from edge_agent.sbms0.plausibility import CrossFrameCheck, Verdict
from edge_agent.sbms0.rawdata import RawDataPage, parse_rawdata
from edge_agent.sbms0.stats import FrameStats

_LOGGER = logging.getLogger(__name__)

Clock = Callable[[], float]


@dataclass(frozen=True, slots=True)
class SbmsReading:
    """One good frame, when it arrived (agent clock), and its page when it came over HTTP."""

    frame: SbmsFrame
    received_at: float
    page: RawDataPage | None = None


class FrameReceiver:
    def __init__(self, *, cell_count: int, clock: Clock, require_checksum: bool = False) -> None:
        self._cell_count = cell_count
        self._clock = clock
        self._require_checksum = require_checksum
        self._history = CrossFrameCheck(cell_count)
        self.stats = FrameStats()
        self.latest: SbmsReading | None = None
        # Sees every line and page as it arrives ("line"/"page", text): the recording.
        self.tap: Callable[[str, str], None] | None = None

    def offer_line(self, line: str) -> None:
        """One line from the serial port, line ending included or not."""
        if self.tap is not None:
            self.tap("line", line)
        text = line.strip("\r\n\x00 ")
        if not text:
            return
        if text.startswith("var "):
            if not text.startswith(("var sbms=", "var sbms =")):
                return  # another variable of the WiFi format: not a frame
            self._page(text)
            return
        self._accept(lambda: (self._decode(text), None))

    def offer_page(self, page: str) -> None:
        """A /rawData page (or one `var sbms=` line of it)."""
        if self.tap is not None:
            self.tap("page", page)
        self._page(page)

    def _page(self, page: str) -> None:
        def decode() -> tuple[SbmsFrame, RawDataPage]:
            parsed = parse_rawdata(page)
            return self._decode(parsed.sbms), parsed

        self._accept(decode)

    def count_link_error(self) -> None:
        """A port that failed or a poll that brought nothing: not a frame, but counted."""
        self.stats.count_link_error()

    def _decode(self, text: str) -> SbmsFrame:
        # Years ahead of the agent's own clock are a damaged date, not a fast clock.
        year = dt.datetime.fromtimestamp(self._clock(), dt.UTC).year
        return decode_frame(
            text,
            cell_count=self._cell_count,
            max_year=year + 1,
            require_checksum=self._require_checksum,
        )

    def _accept(self, decode: Callable[[], tuple[SbmsFrame, RawDataPage | None]]) -> None:
        try:
            frame, page = decode()
        except FrameError as err:
            self._drop(err.kind, str(err))
            return
        now = self._clock()
        judgement = self._history.judge(frame, now)
        if judgement.verdict is Verdict.DROPPED:
            self._drop("jump", judgement.reason or "")
            return
        if judgement.verdict is Verdict.REANCHORED:
            self.stats.count_reanchor()
            _LOGGER.info(
                "SBMS frames kept disagreeing with the last accepted one (%s): this one is the "
                "new reference",
                judgement.reason,
            )
        self.stats.count_good(checked=frame.checksum_present)
        self.latest = SbmsReading(frame, now, page)

    def _drop(self, kind: str, reason: str) -> None:
        self.stats.count_bad(kind)
        _LOGGER.debug("Dropped an SBMS frame (%s): %s", kind, reason)
