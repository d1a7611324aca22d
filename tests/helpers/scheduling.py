"""What a loaded machine did to this thread, so a test can tell a stall of its own code from a
wait for a CPU (Linux: /proc/thread-self/schedstat)."""

from __future__ import annotations

from pathlib import Path

_SCHEDSTAT = Path("/proc/thread-self/schedstat")


def runqueue_wait_s() -> float:
    """Seconds this thread has spent runnable but waiting for a CPU since it started.

    A gap in a loop's cadence minus the growth of this over the gap is what the loop itself
    slept or blocked for: a busy machine's share is taken out, a blocking call is not."""
    fields = _SCHEDSTAT.read_text().split()
    return int(fields[1]) / 1e9
