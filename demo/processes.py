"""Child processes the demo owns: each in its own session, so Ctrl-C reaches only the demo,
which then stops them in order (Home Assistant, agent, broker) and kills what lingers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path


class ManagedProcess:
    """A child process with its output in a log file, stopped with its whole process group."""

    def __init__(self, name: str, command: Sequence[str], log_path: Path) -> None:
        self.name = name
        self.command = list(command)
        self.log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return None if self._process is None else self._process.pid

    def start(self, *, cwd: Path | None = None) -> None:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("wb") as log:
            self._process = subprocess.Popen(
                self.command,
                cwd=cwd,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def exit_code(self) -> int | None:
        return None if self._process is None else self._process.poll()

    def stop(self, *, timeout_s: float = 20.0, first_signal: int = signal.SIGTERM) -> None:
        """Ask politely, wait, then kill the group; also reaps children left in the group."""
        if self._process is None:
            return
        group = self._process.pid  # start_new_session: the group id is the child's pid
        if self._process.poll() is None:
            _signal_group(group, first_signal)
            try:
                self._process.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                _signal_group(group, signal.SIGKILL)
                self._process.wait()
        _signal_group(group, signal.SIGKILL)  # grandchildren that outlived their parent

    def log_tail(self, lines: int = 30) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return "\n".join(text.splitlines()[-lines:])


def _signal_group(group: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(group, signum)


def free_port() -> int:
    """A port nobody listens on now (the kernel's pick)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def wait_for_port(port: int, process: ManagedProcess, timeout_s: float) -> None:
    """Until something accepts on 127.0.0.1:`port`; fails early if `process` exits."""
    deadline = time.monotonic() + timeout_s
    while not port_in_use(port):
        if not process.running():
            raise RuntimeError(f"{process.name} exited:\n{process.log_tail()}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"{process.name} does not listen on port {port}")
        time.sleep(0.05)
