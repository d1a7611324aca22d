"""StateStore: round trips, durability across a SIGKILL, and refusing corrupt files."""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_agent.storage.state_store import STATE_SCHEMA_VERSION, StateStore, StateStoreError

REPO_ROOT = Path(__file__).resolve().parents[2]

# Saves forever, printing each sequence number once its save() has returned.
SAVE_LOOP = """
import sys
from pathlib import Path
from edge_agent.storage.state_store import StateStore

store = StateStore(Path(sys.argv[1]))
sequence = int(sys.argv[2])
padding = "x" * 4000  # several pages per save, so a kill can land mid-write
while True:
    sequence += 1
    store.save({"seq": sequence, "padding": padding, "soc": sequence % 100}, now=float(sequence))
    sys.stdout.write(f"{sequence}\\n")
    sys.stdout.flush()
"""


def test_fresh_store_holds_nothing(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        assert store.load() is None


def test_round_trip(tmp_path: Path) -> None:
    state = {"soc": 73.25, "capacity_ah": 281.5, "counters": {"pv_ah": 12.5}, "flags": [1, 2]}
    with StateStore(tmp_path / "state.db") as store:
        store.save(state, now=1_700_000_000.0)
        assert store.load() == state


def test_latest_save_wins(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        store.save({"soc": 10.0}, now=1.0)
        store.save({"soc": 20.0}, now=2.0)
        assert store.load() == {"soc": 20.0}


def test_survives_reopen_and_creates_parent_directories(tmp_path: Path) -> None:
    path = tmp_path / "var" / "lib" / "sbms-agent" / "state.db"
    with StateStore(path) as store:
        store.save({"soc": 42.0}, now=5.0)
    with StateStore.open(path) as reopened:
        assert reopened.load() == {"soc": 42.0}


def test_row_records_schema_version_and_time(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save({"soc": 1.0}, now=123.5)
    with sqlite3.connect(path) as connection:
        row = connection.execute("SELECT schema_version, written_at FROM control_state").fetchone()
    assert row == (STATE_SCHEMA_VERSION, 123.5)


def test_wal_journal_and_full_sync(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save({"soc": 1.0}, now=1.0)
        synchronous = store._connection.execute("PRAGMA synchronous").fetchone()[0]
        assert synchronous == 2  # FULL
    with sqlite3.connect(path) as connection:  # WAL mode is a property of the file
        assert connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_unserialisable_state_is_refused_and_previous_state_kept(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.db") as store:
        store.save({"soc": 55.0}, now=1.0)
        with pytest.raises(StateStoreError, match="JSON"):
            store.save({"soc": float("nan")}, now=2.0)
        with pytest.raises(StateStoreError, match="JSON"):
            store.save({"when": object()}, now=2.0)
        assert store.load() == {"soc": 55.0}


def test_closed_store_refuses_use(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    store.close()
    store.close()  # idempotent
    with pytest.raises(StateStoreError, match="closed"):
        store.load()
    with pytest.raises(StateStoreError, match="closed"):
        store.save({"soc": 1.0}, now=1.0)


def test_unknown_state_schema_version_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save({"soc": 1.0}, now=1.0)
    with sqlite3.connect(path) as connection:
        connection.execute("UPDATE control_state SET schema_version = 99")
    with StateStore(path) as store, pytest.raises(StateStoreError, match="version 99"):
        store.load()


def test_concurrent_saves_from_threads(tmp_path: Path) -> None:
    errors: list[BaseException] = []
    with StateStore(tmp_path / "state.db") as store:

        def save_many(worker: int) -> None:
            try:
                for index in range(50):
                    store.save({"worker": worker, "index": index}, now=float(index))
            except BaseException as exc:  # collected: an exception in a thread is otherwise lost
                errors.append(exc)

        threads = [threading.Thread(target=save_many, args=(worker,)) for worker in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert errors == []
        assert store.load() is not None


def test_non_sqlite_file_is_refused_and_left_alone(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = b"this is not a database, it is a shopping list\n" * 100
    path.write_bytes(garbage)
    with pytest.raises(StateStoreError, match=r"state\.db") as caught:
        StateStore(path)
    assert "recover=True" in str(caught.value)
    assert path.read_bytes() == garbage
    assert sorted(item.name for item in tmp_path.iterdir()) == ["state.db"]


def test_recover_keeps_the_corrupt_file_aside_and_starts_fresh(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    garbage = b"\x00\x01garbage" * 500
    path.write_bytes(garbage)
    stale_wal = tmp_path / "state.db-wal"
    stale_wal.write_bytes(b"stale wal of the corrupt file")
    with StateStore.open(path, recover=True) as store:
        assert store.recovered_from is not None
        assert store.recovered_from.name.startswith("state.db.corrupt-")
        assert store.recovered_from.read_bytes() == garbage
        # The old WAL belongs to the old file: it must not be replayed into the new one.
        kept_wal = store.recovered_from.with_name(store.recovered_from.name + "-wal")
        assert kept_wal.read_bytes() == b"stale wal of the corrupt file"
        assert store.load() is None
        store.save({"soc": 50.0}, now=1.0)
    with StateStore(path) as reopened:
        assert reopened.load() == {"soc": 50.0}
        assert reopened.recovered_from is None


def test_damaged_pages_are_detected(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    with StateStore(path) as store:
        store.save({"padding": "y" * 20_000}, now=1.0)
    data = bytearray(path.read_bytes())
    assert len(data) > 8192
    data[4096:8192] = b"\xff" * 4096  # overwrite the second page
    path.write_bytes(bytes(data))
    with pytest.raises(StateStoreError, match=r"state\.db"):
        StateStore(path)


def test_a_directory_in_the_way_is_not_moved_even_with_recover(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    path.mkdir()
    with pytest.raises(StateStoreError, match=r"state\.db"):
        StateStore(path, recover=True)
    assert path.is_dir()


def _last_line(text: str) -> int:
    lines = [line for line in text.splitlines() if line.strip()]
    return int(lines[-1])


def test_sigkill_during_save_loop_leaves_last_or_in_flight_state(tmp_path: Path) -> None:
    """A killed writer never leaves a damaged file or an older state than its last save.

    The child prints n after save(n) returned; the database must hold the last printed n, or
    n + 1 when that save had committed but the kill came before its line was printed.
    """
    path = tmp_path / "state.db"
    environment = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    chooser = random.Random(20240611)
    sequence = 0
    for _ in range(20):
        child = subprocess.Popen(
            [sys.executable, "-c", SAVE_LOOP, str(path), str(sequence)],
            stdout=subprocess.PIPE,
            text=True,
            env=environment,
        )
        assert child.stdout is not None
        read_before_kill = [child.stdout.readline() for _ in range(chooser.randint(1, 40))]
        assert read_before_kill[-1].strip(), "the save loop stopped early"
        os.kill(child.pid, signal.SIGKILL)
        # read() through the same buffered reader: readline() may already hold further lines
        # in its buffer, which communicate(timeout=...) would skip (it reads the raw pipe).
        # The pipe ends with the killed child, so read() returns.
        rest = child.stdout.read()
        assert child.wait(timeout=30) == -signal.SIGKILL
        last_completed = _last_line("".join(read_before_kill) + rest)

        with sqlite3.connect(path) as connection:
            assert connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with StateStore(path) as store:
            state = store.load()
        assert state is not None
        assert state["seq"] in (last_completed, last_completed + 1)
        sequence = state["seq"]
