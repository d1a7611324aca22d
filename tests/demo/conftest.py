"""The demo as a person starts it: `./scripts/demo` in its own process group, stopped with
Ctrl-C (SIGINT); whatever it started is found and killed even when a test fails."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from demo.processes import free_port, port_in_use

REPO_ROOT = Path(__file__).resolve().parents[2]
READY_TIMEOUT_S = 180.0


class DemoRun:
    """One `./scripts/demo` on free ports, its working files under `work_dir`."""

    def __init__(self, work_dir: Path, *, speed: float, start_hour: float) -> None:
        self.extra_args: list[str] = []
        self.work_dir = work_dir
        self.port = free_port()
        self.mqtt_port = free_port()
        self.output_path = work_dir / "demo-output.txt"
        self.command = [
            str(REPO_ROOT / "scripts" / "demo"),
            f"--port={self.port}",
            f"--mqtt-port={self.mqtt_port}",
            f"--speed={speed:g}",
            f"--start-hour={start_hour:g}",
            f"--dir={work_dir / 'demo'}",
        ]
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.work_dir.mkdir(parents=True, exist_ok=True)
        with self.output_path.open("wb") as output:
            self._process = subprocess.Popen(
                [*self.command, *self.extra_args],
                cwd=REPO_ROOT,
                stdin=subprocess.DEVNULL,
                stdout=output,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # the test's Ctrl-C goes to the demo alone
            )

    def output(self) -> str:
        return self.output_path.read_text(encoding="utf-8", errors="replace")

    def wait_until_ready(self) -> None:
        """Until the demo prints its URL; fails with its output if it stops first."""
        assert self._process is not None
        deadline = time.monotonic() + READY_TIMEOUT_S
        while "[demo] ready: open http://localhost:" not in self.output():
            if self._process.poll() is not None:
                pytest.fail(f"the demo exited with {self._process.returncode}:\n{self.output()}")
            if time.monotonic() > deadline:
                pytest.fail(f"the demo was not ready in {READY_TIMEOUT_S:g} s:\n{self.output()}")
            time.sleep(0.5)

    def interrupt(self, timeout_s: float = 60.0) -> int:
        """Ctrl-C, and the demo's exit code."""
        assert self._process is not None
        self._process.send_signal(signal.SIGINT)
        return self._process.wait(timeout=timeout_s)

    def leftover_pids(self) -> list[int]:
        """Processes still running that this demo started (their command lines name its
        working dir or its broker port), the demo itself included."""
        markers = (str(self.work_dir), f"--mqtt-port={self.mqtt_port}")
        found = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                cmdline = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if any(marker in cmdline for marker in markers):
                found.append(int(entry.name))
        return found

    def ports_in_use(self) -> list[int]:
        return [port for port in (self.port, self.mqtt_port) if port_in_use(port)]

    def kill_everything(self) -> None:
        if self._process is not None and self._process.poll() is None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.interrupt(timeout_s=45.0)
        for pid in self.leftover_pids():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, signal.SIGKILL)
        if self._process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self._process.pid, signal.SIGKILL)
            self._process.wait()


NEWEST_MISSING = (
    "the newest Home Assistant's environment is not set up in this run "
    "(scripts/test sets it up as root with network: scripts/newest-env setup)"
)


def newest_home_assistant_available() -> bool:
    """The newest Home Assistant's environment (scripts/newest-env) is built by scripts/test
    where it can be (root, network); CI requires it, so there a missing one fails."""
    if os.environ.get("SBMS_NEWEST_HA") == "1":
        return True
    if os.environ.get("CI"):
        pytest.fail(NEWEST_MISSING)
    return False


def newest_home_assistant_or_skip() -> None:
    if not newest_home_assistant_available():
        pytest.skip(NEWEST_MISSING)


@pytest.fixture
def demo_run(tmp_path: Path, socket_enabled: None) -> Iterator[DemoRun]:
    """A demo (not started yet); killed with everything it started when the test ends."""
    run = DemoRun(tmp_path, speed=300, start_hour=7)
    try:
        yield run
    finally:
        run.kill_everything()
