"""Recording what the agent read, to replay a user's problem on a laptop (`sbms-agent replay`).

A recording is JSON lines. Line 1 is the header: the format and version, the source (`diy`:
decoded samples from the I2C chips; `sbms0`: the raw lines and pages of a stock SBMS), the
configuration in force (without the `mqtt` section: no broker password in a bug report), and
for `diy` the controller state the run started from. Then one line per event, in time order:

- diy:   {"t": T, "sample": {cell_voltages, battery_current, ...}} or {"t": T, "failure": "..."},
         each with "bus": [transactions] when the agent runs on a `RecordingBus`
         (`drivers/bus_log.py`: every register read and write of the step, errors included)
- sbms0: {"t": T, "line": "..."}, {"t": T, "page": "..."} and {"t": T, "step": true}

Version 2 (this agent) added the transactions and the header's "bus": null (none), "start"
(the file starts with the drivers' opening transactions; "bus_name" is the bus's name in the
drivers' messages, so it replays through the real
drivers) or "continued" (a file begun at a rotation: the drivers' state at that moment is not
in it, so it replays from the decoded samples). Version 1 files are read as before.

Size: about 350 bytes a sample for 8 cells (30 MB a day at one sample a second); with the
transactions about 1.1 kB (8S: 30 transactions, 95 MB a day). The file is
bounded: past `max_bytes` it is renamed to FILE.1 (replacing an older one) and a new FILE
starts with a fresh header holding the state at that moment, so each file replays on its own
and the two together never exceed twice `max_bytes`. Lines are written to the page cache and
never fsynced: recording does not wait for the disk, and a power cut loses the tail only.
A write error disables recording with one logged error; the agent runs on.
"""

from __future__ import annotations

import json
import logging
import math
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import IO, Any

import edge_agent
from edge_agent.config import AgentConfig, config_to_dict
from edge_agent.control.model import Measurement, MeasurementFailure, Sample

_LOGGER = logging.getLogger(__name__)

RECORD_FORMAT = "sbms-agent-record"
RECORD_VERSION = 2
READABLE_VERSIONS = (1, 2)
DEFAULT_MAX_BYTES = 50 * 1024 * 1024

HeaderFactory = Callable[[float], dict[str, Any]]


def record_header(
    source: str,
    config: AgentConfig,
    started: float,
    state: Mapping[str, Any] | None,
    *,
    bus: str | None = None,
    bus_name: str | None = None,
) -> dict[str, Any]:
    """`bus`: None (no transactions), "start" or "continued" (see the module's docstring)."""
    data = config_to_dict(config)
    data.pop("mqtt", None)
    return {
        "format": RECORD_FORMAT,
        "version": RECORD_VERSION,
        "source": source,
        "agent_version": edge_agent.__version__,
        "started": started,
        "config": data,
        "state": None if state is None else dict(state),
        "bus": bus,
        "bus_name": bus_name,
    }


def sample_entry(sample: Sample) -> dict[str, Any]:
    if isinstance(sample, MeasurementFailure):
        return {"t": sample.timestamp, "failure": sample.reason}
    return {"t": sample.timestamp, "sample": measurement_to_dict(sample)}


def measurement_to_dict(measurement: Measurement) -> dict[str, Any]:
    return {
        "cell_voltages": list(measurement.cell_voltages),
        "battery_current": measurement.battery_current,
        "charge_delta_ah": measurement.charge_delta_ah,
        "pv_current": measurement.pv_current,
        "pack_voltage": measurement.pack_voltage,
        "internal_temperature": measurement.internal_temperature,
        "external_temperatures": list(measurement.external_temperatures),
        "balancing": list(measurement.balancing),
        "monitor_flags": sorted(measurement.monitor_flags),
        # Only with a heat-path shunt, so older readers take recordings of other boxes.
        **({} if measurement.heat_power_w is None else {"heat_power_w": measurement.heat_power_w}),
    }


class SessionRecorder:
    """Appends entries to a bounded JSON-lines file. `write` never raises."""

    def __init__(self, path: Path, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_bytes < 4096:
            raise ValueError("a recording needs at least 4096 bytes")
        self.path = path
        self._header: HeaderFactory = lambda _now: {}
        self._max_bytes = max_bytes
        self._file: IO[str] | None = None
        self._size = 0
        self._lock = threading.Lock()  # a serial source's thread and the loop may both write
        self.entries = 0
        self.rotations = 0
        self.failed = False

    def set_header(self, header: HeaderFactory) -> None:
        """What each file starts with (called with the time of the file's first entry)."""
        self._header = header

    def start(self, now: float) -> None:
        """Open the file (replacing one there) and write the header. Raises OSError."""
        self._open(now)

    def write(self, entry: Mapping[str, Any]) -> None:
        with self._lock:
            self._write_entry(entry)

    def _write_entry(self, entry: Mapping[str, Any]) -> None:
        if self.failed:
            return
        try:
            if self._file is None:
                self._open(float(entry["t"]))
            elif self._size >= self._max_bytes:
                self._rotate(float(entry["t"]))
            self._write_line(entry)
        except (OSError, ValueError, TypeError) as err:
            self.failed = True
            _LOGGER.error("Recording to %s stopped: %s", self.path, err)
            return
        self.entries += 1

    def close(self) -> None:
        with self._lock:
            self._close()

    def _close(self) -> None:
        if self._file is not None:
            try:
                self._file.close()
            except OSError as err:
                _LOGGER.error("Recording to %s: %s", self.path, err)
            self._file = None

    def _open(self, now: float) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = self.path.open("w", encoding="utf-8")
        self._size = 0
        self._write_line(self._header(now))

    def _rotate(self, now: float) -> None:
        assert self._file is not None
        self._file.close()
        self._file = None
        self.path.replace(self.path.with_name(self.path.name + ".1"))
        self.rotations += 1
        self._open(now)

    def _write_line(self, data: Mapping[str, Any]) -> None:
        assert self._file is not None
        line = json.dumps(data, allow_nan=False, separators=(",", ":"), default=_jsonable) + "\n"
        self._file.write(line)
        self._file.flush()  # to the page cache: a crash keeps what was read, no fsync wait
        self._size += len(line.encode("utf-8"))


def _jsonable(value: object) -> object:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    raise TypeError(f"{type(value).__name__} is not JSON data")
