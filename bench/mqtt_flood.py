"""Request flood against `sbms-agent --simulate` on a real mosquitto:
`python -m bench.mqtt_flood [--rate 1500] [--seconds 60]`.

The agent runs as users run it (its own process); a flooder process publishes requests as
fast as `--rate` allows on config/set, cmd/* and history/get: no-op and junk config/sets,
unknown keys, 10 kB payloads, commands, history pages. Measured:
- the agent's RSS (from /proc) before, at its peak and after the flood;
- the control loop's period and largest gap, from the agent's own systemd watchdog
  notifications (sent after every decided sample) on a NOTIFY_SOCKET we listen on;
- answers received during the flood, and how long a legitimate request takes to be answered
  once the flood stops;
- what the agent says it dropped (`link_stats` in its retained state).
Aims (issue 15): RSS under 100 MB at any rate, largest loop gap under 2 periods, an answer
within a few seconds after the flood.
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import json
import os
import queue
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho

from tests.helpers.mqtt_broker import MosquittoBroker

REPO_ROOT = Path(__file__).resolve().parents[1]
AGENT_ID = "flood"
ROOT = f"sbms/{AGENT_ID}"
START_TIMEOUT_S = 60.0

FLOODER = r"""
import json, sys, time
import paho.mqtt.client as paho
port, root, rate, seconds = int(sys.argv[1]), sys.argv[2], float(sys.argv[3]), float(sys.argv[4])
payloads = [
    (root + "/config/set", json.dumps({"config": {"soc": {}}}).encode()),
    (root + "/config/set", json.dumps({"config": {"thresholds": {"hvd": 9.9}}}).encode()),
    (root + "/config/set", json.dumps({"config": {f"k{i}": i for i in range(400)}}).encode()),
    (root + "/config/set", b"x" * 10_000),
    (root + "/cmd/mark_full", b'{"request_id": "f"}'),
    (root + "/cmd/nonsense", b"{}"),
    (root + "/history/get", b'{"from": 0, "to": 1e9, "limit": NaN}'),
    (root + "/history/get", b'{"from": 0, "to": 86400}'),
]
acked = 0
def on_publish(*_args):
    global acked
    acked += 1
client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="flooder")
client.on_publish = on_publish
client.max_inflight_messages_set(1000)
client.max_queued_messages_set(1000)
client.connect("127.0.0.1", port)
client.loop_start()
sent, start = 0, time.monotonic()
last = None
while (now := time.monotonic() - start) < seconds:
    due = int(now * rate) + 1
    while sent < due and time.monotonic() - start < seconds:
        topic, payload = payloads[sent % len(payloads)]
        info = client.publish(topic, payload, qos=1)
        if info.rc == 0:
            sent, last = sent + 1, info
        else:
            time.sleep(0.001)  # paho's own queue is full: the broker is the bottleneck
    time.sleep(0.001)
if last is not None:
    last.wait_for_publish(30)
client.loop_stop()
client.disconnect()
print(acked)
"""


@dataclass
class FloodFigures:
    rate: float
    seconds: float
    sent: int = 0
    rss_start_mb: float = 0.0
    rss_peak_mb: float = 0.0
    rss_end_mb: float = 0.0
    loop_period_s: float = 0.0
    largest_gap_s: float = 0.0
    answers_during: int = 0
    answer_after_s: float = 0.0
    log_bytes: int = 0  # what the agent logged during the flood
    link_stats: dict[str, Any] = field(default_factory=dict)


class _WatchdogListener:
    """The agent's sd_notify datagrams: the time of every WATCHDOG=1 (one per sample)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(0.2)
        self.beats: list[float] = []
        self.ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._listen, daemon=True)
        self._thread.start()

    def _listen(self) -> None:
        while not self._stop.is_set():
            try:
                message = self.sock.recv(4096).decode(errors="replace")
            except TimeoutError:
                continue
            if "READY=1" in message:
                self.ready.set()
            if "WATCHDOG=1" in message:
                self.beats.append(time.monotonic())

    def gaps_between(self, start: float, end: float) -> list[float]:
        beats = [beat for beat in self.beats if start <= beat <= end]
        return [later - earlier for earlier, later in itertools.pairwise(beats)]

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        self.sock.close()


class _Observer:
    """A client that counts results and keeps the agent's retained state."""

    def __init__(self, port: int) -> None:
        self.results = 0
        self.state: dict[str, Any] = {}
        self.answers: queue.Queue[dict[str, Any]] = queue.Queue()
        self.subscribed = threading.Event()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="flood-observer")
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_args: self.subscribed.set()
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(
            [
                (f"{ROOT}/state", 1),
                (f"{ROOT}/+/result", 1),
                (f"{ROOT}/cmd/+/result", 1),
                (f"{ROOT}/announce", 1),
            ]
        )
        self.client.loop_start()

    def _on_message(self, _client: Any, _userdata: Any, message: paho.MQTTMessage) -> None:
        if message.topic.endswith("/result"):
            self.results += 1
            with contextlib.suppress(ValueError):
                self.answers.put(json.loads(message.payload))
        elif message.topic.endswith("/state"):
            self.state = json.loads(message.payload)

    def ask(self, topic: str, payload: dict[str, Any]) -> None:
        self.client.publish(topic, json.dumps(payload), qos=1).wait_for_publish(10)

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


def _rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _answered(observer: _Observer, request_id: str, timeout_s: float) -> float:
    """Seconds until the answer to `request_id` arrived (results of the flood are skipped)."""
    start = time.monotonic()
    while time.monotonic() - start < timeout_s:
        try:
            answer = observer.answers.get(timeout=0.2)
        except queue.Empty:
            continue
        if answer.get("request_id") == request_id:
            return time.monotonic() - start
    raise TimeoutError(f"no answer to {request_id} within {timeout_s:g} s")


def run_flood(
    broker: MosquittoBroker, work_dir: Path, *, rate: float, seconds: float
) -> FloodFigures:
    figures = FloodFigures(rate, seconds)
    listener = _WatchdogListener(work_dir / "notify.sock")
    environment = {**os.environ, "NOTIFY_SOCKET": str(listener.path), "PYTHONPATH": str(REPO_ROOT)}
    agent = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge_agent.cli",
            "--simulate",
            "--quiet",
            f"--agent-id={AGENT_ID}",
            "--mqtt-host=127.0.0.1",
            f"--mqtt-port={broker.port}",
            "--speed=1",
        ],
        cwd=work_dir,
        env=environment,
        stdout=subprocess.DEVNULL,
        stderr=(work_dir / "agent.log").open("wb"),
    )
    observer = _Observer(broker.port)
    try:
        if not listener.ready.wait(START_TIMEOUT_S):
            raise RuntimeError("the agent did not start (see agent.log)")
        _answered_or_fail(observer, "before", START_TIMEOUT_S)
        figures.rss_start_mb = _rss_mb(agent.pid)
        log_before = (work_dir / "agent.log").stat().st_size
        answers_before = observer.results
        flooder = subprocess.Popen(
            [sys.executable, "-c", FLOODER, str(broker.port), ROOT, str(rate), str(seconds)],
            stdout=subprocess.PIPE,
            text=True,
        )
        flood_start = time.monotonic()
        while flooder.poll() is None:
            figures.rss_peak_mb = max(figures.rss_peak_mb, _rss_mb(agent.pid))
            time.sleep(0.25)
        flood_end = time.monotonic()
        figures.sent = int((flooder.stdout.read() if flooder.stdout else "0").strip() or 0)
        figures.answers_during = observer.results - answers_before
        observer.ask(f"{ROOT}/config/set", {"request_id": "after", "config": {}})
        figures.answer_after_s = _answered(observer, "after", 60.0)
        figures.rss_peak_mb = max(figures.rss_peak_mb, _rss_mb(agent.pid))
        figures.rss_end_mb = _rss_mb(agent.pid)
        gaps = listener.gaps_between(flood_start, flood_end)
        figures.loop_period_s = sorted(gaps)[len(gaps) // 2] if gaps else 0.0
        figures.largest_gap_s = max(gaps, default=0.0)
        _wait_for_state(observer, figures)
        figures.link_stats = dict(observer.state.get("link_stats", {}))
        figures.log_bytes = (work_dir / "agent.log").stat().st_size - log_before
    finally:
        observer.close()
        agent.send_signal(signal.SIGINT)
        try:
            agent.wait(30)
        except subprocess.TimeoutExpired:
            agent.kill()
            agent.wait()
        listener.close()
    return figures


def _answered_or_fail(observer: _Observer, request_id: str, timeout_s: float) -> None:
    """Ask until the agent answers (its first connection may still be on its way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        observer.ask(f"{ROOT}/config/set", {"request_id": request_id, "config": {}})
        try:
            _answered(observer, request_id, 2.0)
            return
        except TimeoutError:
            continue
    raise RuntimeError("the agent never answered")


def _wait_for_state(observer: _Observer, figures: FloodFigures) -> None:
    """The state carries link_stats from the first state after the flood on."""
    deadline = time.monotonic() + 30.0
    while time.monotonic() < deadline:
        stats = observer.state.get("link_stats", {})
        if stats.get("requests_received", 0) + stats.get("requests_dropped", 0) >= 2:
            return
        time.sleep(0.2)


def main() -> None:
    parser = argparse.ArgumentParser(prog="bench.mqtt_flood", description=__doc__)
    parser.add_argument("--rate", type=float, default=1500.0, help="requests per second")
    parser.add_argument("--seconds", type=float, default=60.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp, MosquittoBroker(Path(tmp) / "broker") as broker:
        figures = run_flood(broker, Path(tmp), rate=args.rate, seconds=args.seconds)
    stats = figures.link_stats
    print(
        f"request flood, {figures.rate:g}/s for {figures.seconds:g} s (QoS 1): {figures.sent}"
        " accepted by the broker"
    )
    print(
        f"agent RSS              start {figures.rss_start_mb:5.1f} MB   peak "
        f"{figures.rss_peak_mb:5.1f} MB   after {figures.rss_end_mb:5.1f} MB   (aim < 100)"
    )
    print(
        f"control loop           period {figures.loop_period_s:5.2f} s   largest gap "
        f"{figures.largest_gap_s:5.2f} s   (aim < 2 periods)"
    )
    print(
        f"answers during flood   {figures.answers_during}"
        f" ({figures.answers_during / max(figures.seconds, 1e-9):.1f}/s)"
    )
    print(f"answer after the flood {figures.answer_after_s:5.2f} s")
    print(f"agent log during flood {figures.log_bytes} bytes")
    print(
        f"agent counted          received {stats.get('requests_received')}   dropped "
        f"{stats.get('requests_dropped')}   {stats.get('dropped_by_kind')}"
    )


if __name__ == "__main__":
    main()
