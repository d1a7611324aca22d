"""The stock SBMS's side in tests: frames and /rawData pages built from known values (the
encoder the decoder is tested against), and a simulated SBMS on a pseudo-terminal."""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import os
import threading
from pathlib import Path

from edge_agent.sbms0.frame import SbmsFrame

UTC = dt.UTC


def digits(value: int, width: int) -> str:
    """Base 91, most significant first, each digit as chr(35 + digit)."""
    assert 0 <= value < 91**width, (value, width)
    chars = []
    for _ in range(width):
        value, digit = divmod(value, 91)
        chars.append(chr(35 + digit))
    return "".join(reversed(chars))


def encode_frame(frame: SbmsFrame) -> str:
    """The frame an SBMS would send for these values (checksum included unless absent)."""
    when = frame.timestamp or dt.datetime(2000, 1, 1, tzinfo=UTC)
    date = [when.year - 2000, when.month, when.day, when.hour, when.minute, when.second]
    external = (
        0
        if frame.external_temperature_c is None
        else round(frame.external_temperature_c * 10) + 450
    )
    text = "".join(digits(value, 1) for value in date)
    text += digits(frame.soc, 2)
    text += "".join(digits(cell, 2) for cell in frame.cells_mv)
    text += digits(round(frame.internal_temperature_c * 10) + 450, 2) + digits(external, 2)
    text += ("-" if frame.battery_ma < 0 else "+") + digits(abs(frame.battery_ma), 3)
    text += digits(frame.pv1_ma, 3) + digits(frame.pv2_ma, 3)
    text += digits(frame.external_load_ma, 3)
    text += "".join(digits(value, 3) for value in frame.adc) + digits(frame.heat1, 3)
    flags = digits(frame.flags, 3)
    if not frame.checksum_present:
        return text + "###" + flags
    level = digits(frame.dual_pv_level or 0, 1)
    total = 1995 + sum(ord(char) - 35 for char in text + level + flags)
    return text + level + digits(total, 2) + flags


def make_frame(**changes: object) -> SbmsFrame:
    """A healthy 8S frame: 26.6 V, 12.5 A discharge, 3.2 A PV, both FETs on."""
    base = SbmsFrame(
        timestamp=dt.datetime(2025, 6, 1, 12, 30, 15, tzinfo=UTC),
        soc=77,
        cells_mv=(3321, 3322, 3323, 3324, 3325, 3326, 3327, 3328),
        internal_temperature_c=24.5,
        external_temperature_c=18.3,
        battery_ma=-12500,
        pv1_ma=3200,
        pv2_ma=0,
        external_load_ma=1500,
        adc=(0, 0, 0),
        heat1=0,
        dual_pv_level=1,
        checksum_present=True,
        flags=20480,
    )
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def js_string(text: str) -> str:
    return text.replace("\\", "\\\\")


def make_page(
    frame_text: str | None = None,
    *,
    s2: str = "[0,1,0,0,0,0,0,1,8,1,1,0]",
    counters: tuple[int | None, ...] = (1000, 2000, 300, 0, 2300, 700, 500),
) -> str:
    frame_text = encode_frame(make_frame()) if frame_text is None else frame_text
    e_a = "".join("empty-" if value is None else digits(value, 6) for value in counters)
    e_w = "".join("empty-" if value is None else digits(value * 266 // 10, 6) for value in counters)
    xsbms = digits(1234, 3) + digits(3650, 2) + digits(2800, 2) + digits(1, 1)
    xsbms += digits(280, 3)
    return "\n".join(
        [
            'var PV1="####";',
            f'var eA="{js_string(e_a)}";',
            f'var eW="{js_string(e_w)}";',
            "var s1=['Ah','A','SBMS0  '];",
            f"var s2={s2};",
            f'var sbms="{js_string(frame_text)}";',
            f'var xsbms="{js_string(xsbms)}";',
        ]
    )


class SimulatedSbms:
    """Writes a frame every 0.2 s (and a damaged line every fifth time) while `sending`."""

    def __init__(self, link: Path) -> None:
        self.master, slave = os.openpty()
        link.symlink_to(os.ttyname(slave))
        os.close(slave)
        self.sending = threading.Event()
        self.sending.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        good = (encode_frame(make_frame()) + "\r\n").encode()
        count = 0
        while not self._stop.wait(0.2):
            if not self.sending.is_set():
                continue
            count += 1
            line = good if count % 5 else good[:20] + b"\r\n"
            # Nobody has the port open yet: the line is lost, as on a real cable.
            with contextlib.suppress(OSError):
                os.write(self.master, line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)
