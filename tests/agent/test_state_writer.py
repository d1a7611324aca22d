"""State saving off the control loop: a commit that hangs (an SD card's 500 ms fsync, or far
longer) never delays the next sample, the latest state is committed on close, and failures
are logged and counted instead of stopping protection.

The slow store blocks its commit on an Event the test holds, so "not delayed" is shown by
events: the next samples complete while the writer is provably still inside its commit.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from edge_agent.control.model import ControlReport
from edge_agent.runtime.loop import run_agent
from edge_agent.simulator.box import BoxSpec
from edge_agent.simulator.clock import SimulatedClock
from edge_agent.simulator.harness import SimulatedSystem, simulated_config
from edge_agent.storage.state_store import StateStore, StateStoreError
from edge_agent.storage.state_writer import StateWriter

# Only a bound for a broken test, never a timing margin: every wait below ends on an event.
EVENT_TIMEOUT_S = 60.0


class BlockingStore:
    """A real StateStore whose commits wait for the test's `release` (the injected fsync)."""

    def __init__(self, path: Path) -> None:
        self.real = StateStore(path)
        self.entered = threading.Event()  # a commit is in progress
        self.release = threading.Event()  # the test lets commits finish
        self.in_commit = False
        self.timed_out = False
        self.committed: list[float] = []

    def load(self) -> dict[str, Any] | None:
        return self.real.load()

    def save(self, state: Mapping[str, Any], now: float) -> None:
        self.in_commit = True
        self.entered.set()
        if not self.release.wait(EVENT_TIMEOUT_S):
            self.timed_out = True
        self.real.save(state, now)
        self.committed.append(now)
        self.in_commit = False

    def close(self) -> None:
        self.real.close()


class FailingStore:
    def __init__(self) -> None:
        self.fail = True
        self.saved: list[Mapping[str, Any]] = []
        self.closed = False

    def load(self) -> dict[str, Any] | None:
        return None

    def save(self, state: Mapping[str, Any], now: float) -> None:
        if self.fail:
            raise StateStoreError("state.db: cannot save the state: disk I/O error")
        self.saved.append(state)

    def close(self) -> None:
        self.closed = True


def _system(store: BlockingStore) -> SimulatedSystem:
    spec = BoxSpec.for_cells(4)
    return SimulatedSystem(spec, simulated_config(spec, sample_interval_s=1.0), store)


def _saved(path: Path) -> dict[str, Any] | None:
    with StateStore(path) as store:
        return store.load()


def test_a_blocked_commit_does_not_delay_the_next_samples(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    store = BlockingStore(path)
    system = _system(store)

    first = system.run(1.0)  # saves: the writer takes the snapshot and blocks in its commit
    assert store.entered.wait(EVENT_TIMEOUT_S)
    later = [system.run(1.0) for _ in range(3)]  # each step offers a newer snapshot

    # Three more samples were taken, decided and switched while the commit still hangs.
    assert store.in_commit
    assert not store.release.is_set()
    assert first is not None
    assert [r.timestamp for r in later if r is not None] == [
        first.timestamp + 1.0,
        first.timestamp + 2.0,
        first.timestamp + 3.0,
    ]
    writer = system.agent.state_writer
    assert writer is not None
    assert writer.written == 0
    assert writer.superseded == 2  # latest wins: only the newest waits for the disk

    store.release.set()
    system.agent.close(system.box.now)
    assert not store.timed_out
    # The first snapshot, then only the newest one (from close), were committed.
    assert store.committed == [first.timestamp, system.box.now]
    assert _saved(path) == system.agent.controller.snapshot().to_dict()


async def test_the_loop_keeps_sampling_while_a_commit_hangs(tmp_path: Path) -> None:
    """The real loop: the commit is released only by the third report's listener, so the loop
    can only get there if the save did not block it (a blocking save would hang here until
    the store gives up, and `timed_out` would say so)."""
    path = tmp_path / "state.db"
    store = BlockingStore(path)
    system = _system(store)
    clock = SimulatedClock(system.box, speed=1e9)
    writer = system.agent.state_writer
    assert writer is not None
    blocked_during: list[bool] = []

    def listen(report: ControlReport) -> None:
        if writer.offered == 0:
            return  # no save due yet (the first sample comes right after the start)
        if not blocked_during:
            assert store.entered.wait(EVENT_TIMEOUT_S)  # the first save is in its commit
        blocked_during.append(store.in_commit)
        if len(blocked_during) == 3:
            store.release.set()

    taken = await run_agent(
        system.agent, clock, 1.0, asyncio.Event(), on_report=listen, max_samples=4
    )

    assert taken == 4
    assert blocked_during == [True, True, True]
    assert not store.timed_out
    assert _saved(path) == system.agent.controller.snapshot().to_dict()


def test_write_errors_are_counted_and_logged_once_until_saving_works_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store = FailingStore()
    writer = StateWriter(store)
    with caplog.at_level(logging.WARNING, logger="edge_agent.storage.state_writer"):
        for now in (1.0, 2.0, 3.0):
            writer.offer({"soc": now}, now)
            assert writer.flush(EVENT_TIMEOUT_S)
        assert writer.write_errors == 3
        assert writer.last_error is not None
        assert "disk I/O error" in writer.last_error
        store.fail = False
        writer.offer({"soc": 4.0}, 4.0)
        assert writer.close(EVENT_TIMEOUT_S)
    messages = [r.getMessage() for r in caplog.records]
    assert [m for m in messages if "cannot save the state" in m] == [
        "State store: cannot save the state: state.db: cannot save the state: disk I/O error"
    ]
    assert any("saving again (3 saves failed so far)" in m for m in messages)
    assert store.saved == [{"soc": 4.0}]
    assert store.closed


def test_close_commits_the_latest_state_and_later_offers_are_dropped(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = StateWriter(StateStore(path))
    for now in range(1, 50):
        writer.offer({"seq": now}, float(now))
    assert writer.close(EVENT_TIMEOUT_S)
    writer.offer({"seq": 99}, 99.0)  # after close: logged, not raised, not written
    assert _saved(path) == {"seq": 49}
    assert writer.written + writer.superseded == 49


def test_close_gives_up_on_a_hung_disk_and_says_so(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    store = BlockingStore(tmp_path / "state.db")
    writer = StateWriter(store)
    writer.offer({"seq": 1}, 1.0)
    assert store.entered.wait(EVENT_TIMEOUT_S)
    with caplog.at_level(logging.ERROR):
        assert writer.close(timeout_s=0.0) is False
    assert any("did not finish" in r.getMessage() for r in caplog.records)
    store.release.set()
    assert writer.flush(EVENT_TIMEOUT_S)
