"""`sbms-agent` reading a simulated stock SBMS over a pseudo-terminal and publishing to a real
mosquitto: announce, config and state validate against docs/schemas, the state carries the
frame counters, and a silent SBMS goes stale and comes back by itself."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from edge_agent.storage.data_log import DataLogStore
from tests.helpers.mqtt import PahoWatcher
from tests.helpers.mqtt_broker import MosquittoBroker
from tests.helpers.sbms0 import SimulatedSbms

SCHEMAS = Path(__file__).parents[2] / "docs" / "schemas"
AGENT_ID = "sbms0-e2e"
ROOT = f"sbms/{AGENT_ID}"

pytestmark = pytest.mark.usefixtures("allow_sockets")


def _schema(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SCHEMAS / f"{name}.schema.json").read_text())
    return loaded


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
    watcher = PahoWatcher(broker.port, [f"{ROOT}/#"], client_id="sbms0-watcher")
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge_agent", "--config", str(config), "--quiet"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        assert watcher.next(f"{ROOT}/status").payload == b"online"
        announce = watcher.next(f"{ROOT}/announce").json()
        jsonschema.validate(announce, _schema("announce"))
        assert announce["source"] == "sbms0"
        assert announce["cells"] == 8
        assert announce["capabilities"] == {"config_set": False, "commands": [], "history": True}
        assert announce["measurements"]["pv_current"] is True  # the SBMS always measures PV
        assert [output["name"] for output in announce["outputs"]] == ["pv", "load"]
        jsonschema.validate(watcher.next(f"{ROOT}/config").json(), _schema("config"))

        state = watcher.next(f"{ROOT}/state", measurement_ok=True).json()
        jsonschema.validate(state, _schema("state"))
        assert state["soc"] == 77.0
        assert state["cells"][0] == 3.321
        assert state["outputs"] == {"pv": True, "load": True}
        assert state["source_stats"]["frames_ok"] >= 1

        # Damaged lines are counted, never published as data.
        deadline = time.monotonic() + 30
        while state["source_stats"]["frames_bad"] == 0 and time.monotonic() < deadline:
            state = watcher.next(f"{ROOT}/state").json()
        assert state["source_stats"]["frames_bad"] >= 1
        assert state["soc"] == 77.0

        sbms.sending.clear()  # the SBMS goes quiet: stale after 2 s
        stale = watcher.next(f"{ROOT}/state", measurement_ok=False).json()
        jsonschema.validate(stale, _schema("state"))
        assert "measurement_stale" in stale["interlocks"]
        sbms.sending.set()  # and comes back by itself
        back = watcher.next(f"{ROOT}/state", measurement_ok=True).json()
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
    assert watcher.next(f"{ROOT}/status").payload == b"offline"
    watcher.close()
