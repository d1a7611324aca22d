"""Counters of received frames; a report carries a copy (`ControlReport.source_stats`)."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.control.model import SourceStats


@dataclass(slots=True)
class FrameStats:
    """Good frames (`frames_ok`, of which `frames_unchecked` carried no checksum), dropped
    ones (`frames_bad`, by damage class in `bad_by_kind`: `length`, `alphabet`, `checksum`,
    `value`, `page`, and `jump` for a frame that disagrees with the one before), frames taken
    as a new reference after `jump` drops in a row (`reanchored`, also counted in
    `frames_ok`), and link failures (`link_errors`: a serial port that could not be opened or
    vanished, an HTTP poll that failed)."""

    frames_ok: int = 0
    frames_unchecked: int = 0
    frames_bad: int = 0
    link_errors: int = 0
    reanchored: int = 0
    bad_by_kind: dict[str, int] = field(default_factory=dict)

    def count_good(self, *, checked: bool) -> None:
        self.frames_ok += 1
        if not checked:
            self.frames_unchecked += 1

    def count_bad(self, kind: str) -> None:
        self.frames_bad += 1
        self.bad_by_kind[kind] = self.bad_by_kind.get(kind, 0) + 1

    def count_reanchor(self) -> None:
        self.reanchored += 1

    def count_link_error(self) -> None:
        self.link_errors += 1

    def snapshot(self) -> SourceStats:
        return SourceStats(
            self.frames_ok,
            self.frames_unchecked,
            self.frames_bad,
            self.link_errors,
            self.reanchored,
            tuple(sorted(self.bad_by_kind.items())),
        )
