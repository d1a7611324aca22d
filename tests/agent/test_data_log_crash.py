"""Power-cut test of the data log: a writer is SIGKILLed at random moments, many times.

After every kill the file must open, pass `PRAGMA integrity_check`, and hold every record the
writer reported as committed (it reports a record only after `append` returned, and fsyncs
the report). A SIGKILL stops the process between any two instructions, also inside SQLite's
commit; unlike a power cut it keeps what the OS had cached, which synchronous=FULL covers.
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

# Appends 2-minute records forever from the newest stored one on, reporting each committed
# start time (fsynced) to the file named by argv[2].
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
    store.append(record)
    report.write(f"{start}\\n")
    report.flush()
    os.fsync(report.fileno())
    start += 120
"""


def _reported(path: Path) -> list[int]:
    if not path.exists():
        return []
    # A kill between write and flush can leave a partial last line: it was never reported.
    return [int(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


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
    unreported = 0
    for _ in range(KILLS):
        before = len(_reported(report))
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(database), str(report)],
            env=environment,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        # Some kills land while the file is being created or opened, most during writes.
        time.sleep(rng.uniform(0.05, 0.3))
        writer.send_signal(signal.SIGKILL)
        _, errors = writer.communicate()
        assert writer.returncode == -signal.SIGKILL, errors.decode()
        reported = _reported(report)
        kills_after_writes += len(reported) > before
        if database.exists():
            now_unreported = _check(database, reported)
            # At most one more per kill: committed, killed before the writer reported it.
            assert now_unreported - unreported in (0, 1)
            unreported = now_unreported
    assert kills_after_writes >= KILLS // 2  # the kills did land among writes
    with DataLogStore(database) as store:  # and the agent carries on with the file
        assert store.count() >= len(set(_reported(report)))
