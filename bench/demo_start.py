"""How long the README's demo takes to be ready, as a new user meets it (issue 20's aim: under
3 minutes from a fresh clone on a 2-core machine).

    python -m bench.demo_start                # a fresh clone of HEAD, uv's cache as it is
    python -m bench.demo_start --cold-cache   # ... and an empty uv/pip cache (every download)
    python -m bench.demo_start --starts 3     # more starts after the first

Each start runs `./scripts/demo` in the clone on free ports, times it from launch to its
"[demo] ready" line, then stops it with Ctrl-C as a user would. The first start includes
making `.venv-demo`; the later ones reuse it. The clone and its caches are deleted afterwards.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from demo.processes import free_port

REPO_ROOT = Path(__file__).resolve().parents[1]
READY_LINE = "[demo] ready: open http://localhost:"
READY_TIMEOUT_S = 900.0


def _clone(target: Path) -> None:
    subprocess.run(
        ["git", "clone", "--quiet", "--no-hardlinks", str(REPO_ROOT), str(target)], check=True
    )


def _start_once(clone: Path, environment: dict[str, str], log: Path) -> float:
    """Seconds from launch to the ready line; the demo is stopped with SIGINT afterwards."""
    command = [
        "./scripts/demo",
        f"--port={free_port()}",
        f"--mqtt-port={free_port()}",
        "--speed=300",
        f"--dir={clone / '.demo-bench'}",
    ]
    started = time.monotonic()
    with log.open("wb") as output:
        process = subprocess.Popen(
            command,
            cwd=clone,
            env=environment,
            stdin=subprocess.DEVNULL,
            stdout=output,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            while READY_LINE not in log.read_text(errors="replace"):
                if process.poll() is not None:
                    raise RuntimeError(f"the demo exited with {process.returncode}: see {log}")
                if time.monotonic() - started > READY_TIMEOUT_S:
                    raise RuntimeError(f"not ready in {READY_TIMEOUT_S:g} s: see {log}")
                time.sleep(0.2)
            ready_s = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
                try:
                    process.wait(timeout=60)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
    return ready_s


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--starts", type=int, default=2, help="starts in all (default 2)")
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="empty uv and pip caches: every package downloaded, as on a new machine",
    )
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="sbms-demo-bench-") as temporary:
        work = Path(temporary)
        clone = work / "clone"
        _clone(clone)
        environment = dict(os.environ)
        environment.pop("VIRTUAL_ENV", None)
        if args.cold_cache:
            environment["UV_CACHE_DIR"] = str(work / "uv-cache")
            environment["PIP_CACHE_DIR"] = str(work / "pip-cache")
        print(f"demo start, fresh clone of {REPO_ROOT.name} at HEAD ({os.cpu_count()} CPUs)")
        for number in range(1, args.starts + 1):
            ready_s = _start_once(clone, environment, work / f"start-{number}.log")
            what = "first start (makes .venv-demo)" if number == 1 else "a later start"
            cache = ", empty package caches" if args.cold_cache and number == 1 else ""
            print(f"  start {number}: ready in {ready_s:6.1f} s   {what}{cache}")
            sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
