"""`sbms-agent` reading a simulated stock SBMS over a pseudo-terminal and publishing to a real
mosquitto: announce, config and state validate against docs/schemas, the state carries the
frame counters, and a silent SBMS goes stale and comes back by itself."""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import paho.mqtt.client as paho
import pytest

from edge_agent.storage.data_log import DataLogStore
from tests.agent.test_sbms0_frame import encode_frame, make_frame
from tests.mqtt_broker import MosquittoBroker

SCHEMAS = Path(__file__).parents[2] / "docs" / "schemas"
AGENT_ID = "sbms0-e2e"
ROOT = f"sbms/{AGENT_ID}"

pytestmark = pytest.mark.usefixtures("allow_sockets")


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


class Watcher:
    def __init__(self, port: int) -> None:
        self.messages: queue.Queue[tuple[str, bytes]] = queue.Queue()
        self.client = paho.Client(paho.CallbackAPIVersion.VERSION2, client_id="sbms0-watcher")
        self.client.on_message = lambda _c, _u, message: self.messages.put(
            (message.topic, message.payload)
        )
        self.client.connect("127.0.0.1", port)
        self.client.subscribe(f"{ROOT}/#", qos=1)
        self.client.loop_start()

    def wait_for(self, topic: str, timeout_s: float = 30.0, **fields: Any) -> dict[str, Any]:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                got_topic, payload = self.messages.get(timeout=0.2)
            except queue.Empty:
                continue
            if got_topic != topic:
                continue
            data: dict[str, Any] = (
                {"raw": payload.decode()} if topic.endswith("/status") else json.loads(payload)
            )
            if all(data.get(key) == value for key, value in fields.items()):
                return data
        raise AssertionError(f"nothing on {topic} matching {fields} within {timeout_s} s")

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()


class SimulatedSbms:
    """Writes a frame every 0.2 s (and a damaged line every fifth time) while `sending`."""

    def __init__(self, link: Path) -> None:
        self.master, slave = os.openpty()
        link.symlink_to(os.ttyname(slave))
        os.close(slave)
        self.sending = threading.Event()
        self.sending.set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        good = (encode_frame(make_frame()) + "\r\n").encode()
        count = 0
        while not self._stop.wait(0.2):
            if not self.sending.is_set():
                continue
            count += 1
            line = good if count % 5 else good[:20] + b"\r\n"
            # Nobody has the port open yet: the line is lost, as on a real cable.
            with contextlib.suppress(OSError):
                os.write(self.master, line)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        os.close(self.master)


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[MosquittoBroker]:
    with MosquittoBroker(tmp_path / "broker") as running:
        yield running


def test_agent_publishes_a_stock_sbms_as_the_documented_state(
    broker: MosquittoBroker, tmp_path: Path
) -> None:
    link = tmp_path / "ttySBMS"
    sbms = SimulatedSbms(link)
    config = tmp_path / "config.yaml"
    config.write_text(
        f"agent_id: {AGENT_ID}\n"
        "battery: {cells: 8, capacity_ah: 200}\n"
        f"source: {{type: sbms0, serial: {{port: '{link}'}}, stale_after_s: 2}}\n"
        f"storage: {{state_path: '{tmp_path / 'state.db'}'}}\n"
        f"mqtt: {{host: 127.0.0.1, port: {broker.port}}}\n"
    )
    watcher = Watcher(broker.port)
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "--config", str(config), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert watcher.wait_for(f"{ROOT}/status") == {"raw": "online"}
        announce = watcher.wait_for(f"{ROOT}/announce")
        jsonschema.validate(announce, _schema("announce"))
        assert announce["source"] == "sbms0"
        assert announce["cells"] == 8
        assert announce["capabilities"] == {"config_set": False, "commands": [], "history": True}
        assert [output["name"] for output in announce["outputs"]] == ["pv", "load"]
        jsonschema.validate(watcher.wait_for(f"{ROOT}/config"), _schema("config"))

        state = watcher.wait_for(f"{ROOT}/state", measurement_ok=True)
        jsonschema.validate(state, _schema("state"))
        assert state["soc"] == 77.0
        assert state["cells"][0] == 3.321
        assert state["outputs"] == {"pv": True, "load": True}
        assert state["source_stats"]["frames_ok"] >= 1

        # Damaged lines are counted, never published as data.
        deadline = time.monotonic() + 30
        while state["source_stats"]["frames_bad"] == 0 and time.monotonic() < deadline:
            state = watcher.wait_for(f"{ROOT}/state")
        assert state["source_stats"]["frames_bad"] >= 1
        assert state["soc"] == 77.0

        sbms.sending.clear()  # the SBMS goes quiet: stale after 2 s
        stale = watcher.wait_for(f"{ROOT}/state", measurement_ok=False)
        jsonschema.validate(stale, _schema("state"))
        assert "measurement_stale" in stale["interlocks"]
        sbms.sending.set()  # and comes back by itself
        back = watcher.wait_for(f"{ROOT}/state", measurement_ok=True)
        assert back["interlocks"] == []
    finally:
        agent.send_signal(signal.SIGTERM)
        _out, err = agent.communicate(timeout=30)
        sbms.close()
    assert agent.returncode == 0, err.decode()
    # The stock SBMS is logged like a DIY box: the interval in progress is written at exit.
    log = DataLogStore(tmp_path / "state.datalog.db", read_only=True)
    assert log.count() >= 1
    soc = log.records(0, time.time() + 1)[-1].soc
    assert soc is not None
    assert soc.maximum == 77.0
    assert watcher.wait_for(f"{ROOT}/status") == {"raw": "offline"}
    watcher.close()
