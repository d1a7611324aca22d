"""A request flood against `sbms-agent --simulate` on a real mosquitto (bench/mqtt_flood.py,
shorter): memory stays bounded, the control loop keeps its period, the log stays small, and a
legitimate request is answered promptly once the flood stops.

Before issue 15 the same flood (1,500 requests/s for 20 s) took the agent from 54 to 275 MB
and left the next answer 51 s behind."""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.mqtt_flood import run_flood
from tests.helpers.mqtt_broker import MosquittoBroker

pytestmark = pytest.mark.usefixtures("allow_sockets")

RSS_LIMIT_MB = 100.0  # the aim, for a 1 GB Raspberry Pi
RSS_GROWTH_MB = 25.0
LOG_LIMIT_BYTES = 20_000  # a few budgeted lines per kind, not a line per request


def test_a_flood_leaves_memory_the_loop_and_answers_intact(tmp_path: Path) -> None:
    with MosquittoBroker(tmp_path / "broker") as broker:
        figures = run_flood(broker, tmp_path, rate=1500.0, seconds=8.0)

    assert figures.sent > 5000
    assert figures.rss_peak_mb < RSS_LIMIT_MB, figures
    assert figures.rss_peak_mb - figures.rss_start_mb < RSS_GROWTH_MB, figures
    # The loop's own watchdog beats: never a gap of two periods.
    assert figures.loop_period_s > 0, figures
    assert figures.largest_gap_s < 2 * figures.loop_period_s, figures
    assert figures.answer_after_s < 5.0, figures
    assert figures.log_bytes < LOG_LIMIT_BYTES, figures
    stats = figures.link_stats
    assert stats["requests_dropped"] > 0, stats
    assert stats["requests_received"] > 0, stats
    assert set(stats["dropped_by_kind"]) <= {"config_set", "command", "history_get", "queue_full"}
