"""Power-cut test of the data log: a writer is SIGKILLed at random moments, many times.

After every kill the file must open, pass `PRAGMA integrity_check`, and hold every record the
writer reported as committed (it reports a record only after `append` returned, and fsyncs
the report). A SIGKILL stops the process between any two instructions, also inside SQLite's
commit; unlike a power cut it keeps what the OS had cached, which synchronous=FULL covers.

Where the kills land is decided by what the writer reports, not by sleeps that a busy machine
stretches: most kills wait until the writer has committed a new record (so they land among
writes), a few come at once (while the file is created or opened). The writer also reports
each `append` it begins, so the test can prove that kills landed inside one.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from edge_agent.storage.data_log import DataLogStore

REPO_ROOT = Path(__file__).resolve().parents[2]
KILLS = 40

# How long to wait for the writer to report something before calling it stuck (it is a
# deadline for a broken writer, not a timing margin: the kills wait for reports).
REPORT_TIMEOUT_S = 120.0

# Appends 2-minute records forever from the newest stored one on, reporting to the file named
# by argv[2] "begin <start>" before each append and "<start>" (fsynced) after it committed.
WRITER = """
import os, sys
from pathlib import Path
from edge_agent.storage.data_log import DataLogStore, Record, Stat

store = DataLogStore(Path(sys.argv[1]), interval_s=120)
report = open(sys.argv[2], "a")
start = (store.last_time() or 1_780_000_080)
cells = tuple(3.3 + i / 1000 for i in range(8))
while True:
    record = Record(
        start=start, end=start + 120, samples=120, missing=0,
        soc=Stat(50.0, 49.0, 51.0), pack_voltage=Stat(26.4, 26.3, 26.5), cells=cells,
        outputs={"extio3": start % 240 == 0}, counters={"pv_wh": start / 1000},
    )
    report.write(f"begin {start}\\n")
    report.flush()
    store.append(record)
    report.write(f"{start}\\n")
    report.flush()
    os.fsync(report.fileno())
    start += 120
"""


def _lines(path: Path) -> list[str]:
    if not path.exists():
        return []
    # A kill between write and flush can leave a partial last line: it was never reported.
    return [line[:-1] for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def _reported(path: Path) -> list[int]:
    """The start times the writer reported as committed."""
    return [int(line) for line in _lines(path) if not line.startswith("begin ")]


def _killed_inside_append(path: Path) -> bool:
    """Whether the writer's last report is an `append` it began and never reported done."""
    lines = _lines(path)
    return bool(lines) and lines[-1].startswith("begin ")


def _wait_for_commits(path: Path, more_than: int, writer: subprocess.Popen[bytes]) -> None:
    """Until the writer reported more than `more_than` committed records."""
    deadline = time.monotonic() + REPORT_TIMEOUT_S
    while len(_reported(path)) <= more_than:
        assert writer.poll() is None, "the writer stopped by itself"
        assert time.monotonic() < deadline, f"no record committed within {REPORT_TIMEOUT_S} s"
        time.sleep(0.005)


def _check(database: Path, reported: list[int]) -> int:
    """Checks the file; returns how many stored records were never reported."""
    connection = sqlite3.connect(database)
    try:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_schema")}
        if "records" not in tables:  # killed before the schema's transaction committed
            assert reported == []
            return 0
        stored = {row[0] for row in connection.execute("SELECT start FROM records")}
    finally:
        connection.close()
    missing = set(reported) - stored
    assert not missing, f"committed records lost: {sorted(missing)[:5]}"
    return len(stored) - len(set(reported))


def test_random_kills_never_lose_a_committed_record_or_corrupt_the_log(tmp_path: Path) -> None:
    database = tmp_path / "log.db"
    report = tmp_path / "committed.txt"
    rng = random.Random(8)
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    kills_after_writes = 0
    kills_inside_append = 0
    unreported = 0
    for kill in range(KILLS):
        before = len(_reported(report))
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), str(report)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # A few kills land while the file is being created or opened (the first always: no
        # file yet), most during writes: after the writer reported 1-3 new committed records,
        # plus a random part of a write.
        if kill % 5 != 0:
            _wait_for_commits(report, before + rng.randint(0, 2), writer)
            time.sleep(rng.uniform(0, 0.01))
        writer.send_signal(signal.SIGKILL)
        _, errors = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, errors.decode()
        reported = _reported(report)
        kills_after_writes += len(reported) > before
        kills_inside_append += _killed_inside_append(report)
        if database.exists():
            now_unreported = _check(database, reported)
            # At most one more per kill: committed, killed before the writer reported it.
            assert now_unreported - unreported in (0, 1)
            unreported = now_unreported
    # The kills did land among writes (by construction), and some inside `append` itself:
    # the writer began one and never reported it done.
    assert kills_after_writes >= KILLS * 4 // 5
    assert kills_inside_append > 0
    with DataLogStore(database) as store:  # and the agent carries on with the file
        assert store.count() >= len(set(_reported(report)))
