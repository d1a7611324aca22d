"""Replaying a DIY box's recording: through the real `Controller` from the recorded samples
at their recorded times, so the decisions are the live run's; or, for a recording that holds
the register transactions from the drivers' opening on (header "bus": "start"), through the
real drivers (`replay_registers`): `open_hardware` and the real `Agent` run on a `ReplayBus`
serving the recorded reads, every write is checked against the recording, and every sample
the drivers decode must equal the recorded one.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

from edge_agent.config import AgentConfig
from edge_agent.control.controller import Controller
from edge_agent.control.model import ControlReport, Measurement, MeasurementFailure, Sample
from edge_agent.diy.agent import Agent
from edge_agent.diy.hardware import open_hardware
from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.bus_log import ReplayBus, ReplayMismatchError, Transaction
from edge_agent.recording.read import Entry, RecordingError, RecordingHeader
from edge_agent.recording.record import measurement_to_dict


def replay_diy(
    header: RecordingHeader, entries: list[Entry], config: AgentConfig | None = None
) -> Iterator[ControlReport]:
    """The controller's report for every recorded sample, in order."""
    settings = (config or header.config).control
    controller = Controller(settings, header.started, header.state)
    for entry in entries:
        assert entry.sample is not None
        yield controller.update(entry.sample)


def replay_registers(header: RecordingHeader, entries: list[Entry]) -> Iterator[ControlReport]:
    """The real drivers and agent on the recorded transactions: a report for every step.

    Raises `RecordingError` naming the transaction, its line, the address and the register
    when the drivers do something else than the recording holds (a write of another value,
    another register read, more or fewer transactions in a step), and naming the line when a
    decoded sample differs from the recorded one.
    """
    if header.bus != "start":
        raise RecordingError(
            "this recording does not start at the drivers' opening (bus: "
            f"{header.bus!r}): it replays from its decoded samples only"
        )
    transactions: list[Transaction] = []
    lines: list[int] = []
    ends: list[int] = []
    for entry in entries:
        if entry.bus is None:
            raise RecordingError(f'line {entry.line}: no register transactions (no "bus")')
        transactions.extend(entry.bus)
        lines.extend([entry.line] * len(entry.bus))
        ends.append(len(transactions))
    bus = ReplayBus(transactions, lines)
    config = header.config
    name = header.bus_name
    store = _RecordedState(header.state_data)
    try:
        hardware = open_hardware(config.hardware, config.control.cell_count, bus, name)
        agent = Agent(config, hardware, store, header.started)
    except ReplayMismatchError as err:
        raise RecordingError(str(err)) from err
    except DeviceError as err:
        raise RecordingError(f"the drivers could not open the recorded chips: {err}") from err
    try:
        for entry, end in zip(entries, ends, strict=True):
            try:
                report = agent.step(entry.t)
            except ReplayMismatchError as err:
                raise RecordingError(str(err)) from err
            if bus.error is not None:  # raised inside a driver and caught there
                raise RecordingError(str(bus.error))
            if bus.position != end:
                raise RecordingError(
                    f"{bus.where(bus.position)}: the step at line {entry.line} made "
                    f"{bus.position - (end - len(entry.bus or ()))} of its "
                    f"{len(entry.bus or ())} recorded transactions"
                )
            _same_sample(entry, agent.last_sample)
            yield report
    finally:
        if agent.state_writer is not None:
            agent.state_writer.close()


class _RecordedState:
    """The recorded state as the replayed agent's store: loaded once, never written."""

    def __init__(self, data: dict[str, Any] | None) -> None:
        self._data = data

    def load(self) -> dict[str, Any] | None:
        return None if self._data is None else dict(self._data)

    def save(self, state: Mapping[str, Any], now: float) -> None:
        pass

    def close(self) -> None:
        pass


def _same_sample(entry: Entry, decoded: Sample | None) -> None:
    recorded = entry.sample
    if isinstance(recorded, Measurement) and isinstance(decoded, Measurement):
        mine, theirs = measurement_to_dict(decoded), measurement_to_dict(recorded)
        if mine == theirs:
            return
        keys = sorted(key for key in mine if mine[key] != theirs[key])
        detail = "; ".join(f"{key} {mine[key]!r}, recorded {theirs[key]!r}" for key in keys)
        raise RecordingError(f"line {entry.line}: the drivers decoded another sample: {detail}")
    if (
        isinstance(recorded, MeasurementFailure)
        and isinstance(decoded, MeasurementFailure)
        and recorded.reason == decoded.reason
    ):
        return
    raise RecordingError(
        f"line {entry.line}: the drivers gave {_sample_kind(decoded)}, the recording has "
        f"{_sample_kind(recorded)}"
    )


def _sample_kind(sample: Sample | None) -> str:
    if isinstance(sample, MeasurementFailure):
        return f"a failure ({sample.reason})"
    return "a measurement" if sample is not None else "nothing"
