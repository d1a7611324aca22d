"""One agent: sample, decide, switch, persist. Everything else (loops, MQTT) calls `step`."""

from __future__ import annotations

import dataclasses
import logging
from typing import Any, Protocol

from edge_agent.config import AgentConfig
from edge_agent.control.controller import Controller
from edge_agent.control.model import ControlReport, MeasurementFailure, Sample
from edge_agent.control.persisted import PersistedState
from edge_agent.control.settings import ControlSettings, OutputType
from edge_agent.diy.hardware import Hardware, configure_cell_monitor
from edge_agent.diy.sampler import Sampler
from edge_agent.drivers.bus import DeviceError
from edge_agent.drivers.gpio import GpioError
from edge_agent.recording.record import SessionRecorder, record_header, sample_entry
from edge_agent.storage.state_writer import StateSink, StateWriter

_LOGGER = logging.getLogger(__name__)


class BusLog(Protocol):
    """What the agent needs of a `drivers.bus_log.RecordingBus`."""

    name: str  # the bus's name in the drivers' messages

    def take(self) -> list[list[Any]]: ...


class Agent:
    """Owns the controller, the hardware and the state store of one battery box."""

    def __init__(
        self,
        config: AgentConfig,
        hardware: Hardware,
        store: StateSink | None,
        now: float,
        *,
        recorder: SessionRecorder | None = None,
        bus_log: BusLog | None = None,
    ) -> None:
        """`bus_log`: the recording bus the hardware was opened on, when `recorder` should
        hold every register transaction (from the drivers' opening on) beside each sample."""
        self._config = config
        self._hardware = hardware
        self._sampler = Sampler(
            hardware.cell_monitor, hardware.battery_shunt, hardware.pv_shunt, hardware.heat_shunt
        )
        restored = _restore_state(store)
        self.controller = Controller(config.control, now, restored)
        self._recorder = recorder
        self._bus_log = bus_log
        self._steps = 0
        self.last_sample: Sample | None = None  # the sampler's latest, as decoded
        # A rotated recording file starts from the state before the step it begins with.
        self._state_before_step: dict[str, Any] | None = None
        if recorder is not None:
            # Each file of a recording starts with the state to replay it from: the restored
            # one for the first, the controller's snapshot after a rotation.
            first_state = restored.to_dict() if restored is not None else None
            recorder.set_header(
                lambda at: record_header(
                    "diy",
                    self._config,
                    at,
                    first_state if self._steps == 0 else self._state_before_step,
                    bus=_bus_coverage(bus_log, self._steps),
                    bus_name=None if bus_log is None else bus_log.name,
                )
            )
            recorder.start(now)
        # Saves are committed on a thread of their own: a slow fsync never delays a sample.
        self.state_writer = StateWriter(store) if store is not None else None
        self._last_save = now
        self._started_at = now
        self._last_good_time: float | None = None  # this run's last good measurement
        self._last_report: ControlReport | None = None
        self._measurement_failing = False
        self._output_failing = False
        # Outputs start released (off); configure the cell monitor before the first decision.
        self._configure_cell_monitor()

    @property
    def output_names(self) -> tuple[str, ...]:
        return self._hardware.outputs.names

    @property
    def config(self) -> AgentConfig:
        """The configuration in force (remote changes included)."""
        return self._config

    @property
    def last_report(self) -> ControlReport | None:
        """The latest report; unlike `controller.report` it survives a settings change."""
        return self._last_report

    def apply_control_settings(self, settings: ControlSettings, now: float) -> None:
        """Run with new (already validated) control settings from the next sample on.

        The controller is rebuilt from its own snapshot, so SoC, counters, learned values,
        hysteresis and latched faults carry over. Outputs are not switched here: the next
        `step` measures first and then decides with the new settings. Raises ValueError when
        the settings name other outputs than the hardware has.
        """
        names = {output.name for output in settings.outputs}
        if names != set(self.output_names) or len(names) != len(settings.outputs):
            raise ValueError(
                f"the outputs {sorted(names)} do not match the hardware's "
                f"{sorted(self.output_names)}"
            )
        state = _carry_over(self.controller.snapshot(), self._config.control, settings)
        # The staleness clock restarts from the last good measurement, not from now: a failing
        # measurement must not get a fresh grace period because the settings changed.
        reference = self._last_good_time if self._last_good_time is not None else self._started_at
        controller = Controller(settings, min(reference, now), state)
        controller.last_failure_reason = self.controller.last_failure_reason
        cell_monitor_changed = (
            settings.cells != self._config.control.cells
            or settings.balance != self._config.control.balance
        )
        self.controller = controller
        self._config = dataclasses.replace(self._config, control=settings)
        if cell_monitor_changed:
            self._configure_cell_monitor()

    def step(self, now: float) -> ControlReport:
        """Take one sample, decide, drive the outputs, persist when due."""
        sample = self._sampler.sample(now)
        self.last_sample = sample
        if self._recorder is not None:
            self._state_before_step = self.controller.snapshot().to_dict()
        self._note_measurement(sample)
        report = self.controller.update(sample)
        self._last_report = report
        if report.measurement is not None:
            self._last_good_time = report.measurement.timestamp
        self._apply_outputs(report)
        self._record(sample)
        if now - self._last_save >= self._config.timing.state_save_interval_s:
            self.save(now)
        return report

    def _record(self, sample: Sample) -> None:
        """The step's line: the sample and, on a recording bus, the step's transactions (with
        those since the previous step: the drivers' opening before the first)."""
        transactions = self._bus_log.take() if self._bus_log is not None else None
        if self._recorder is not None:
            entry = sample_entry(sample)
            if transactions is not None:
                entry["bus"] = transactions
            self._recorder.write(entry)
        self._steps += 1

    def save(self, now: float) -> None:
        """Hand the state to the writer thread (returns at once; see `StateWriter`)."""
        if self.state_writer is None:
            return
        self.state_writer.offer(self.controller.snapshot().to_dict(), now)
        self._last_save = now

    def close(self, now: float) -> None:
        """Release every output (off) and persist the final state (waits for the commit)."""
        self._hardware.outputs.release()
        self.save(now)
        if self.state_writer is not None:
            self.state_writer.close()
        if self._recorder is not None:
            self._recorder.close()

    def _configure_cell_monitor(self) -> None:
        control = self._config.control
        try:
            configure_cell_monitor(self._hardware, control.cells, control.balance)
        except DeviceError as err:
            _LOGGER.error("Could not configure the cell monitor: %s", err)

    def _note_measurement(self, sample: object) -> None:
        failing = isinstance(sample, MeasurementFailure)
        if failing and not self._measurement_failing:
            assert isinstance(sample, MeasurementFailure)
            _LOGGER.warning("Measurement failed: %s", sample.reason)
        elif not failing and self._measurement_failing:
            _LOGGER.warning("Measurements are back")
            # A chip that lost power reloads its EEPROM defaults: put our thresholds back.
            self._configure_cell_monitor()
        self._measurement_failing = failing

    def _apply_outputs(self, report: ControlReport) -> None:
        try:
            self._hardware.outputs.apply(report.outputs)
        except (DeviceError, GpioError, OSError) as err:
            if not self._output_failing:
                _LOGGER.error("Could not switch outputs: %s", err)
            self._output_failing = True
            return
        if self._output_failing:
            _LOGGER.warning("Outputs respond again")
        self._output_failing = False


def _carry_over(
    state: PersistedState, old: ControlSettings, new: ControlSettings
) -> PersistedState:
    """The persisted state adjusted to new settings."""
    types = {output.name: output.type for output in new.outputs}
    # A hold on an output that became a fault output would hide faults: drop it.
    forced_off = {
        name: until
        for name, until in state.forced_off.items()
        if name in types and types[name] is not OutputType.FAULT
    }
    soc = state.soc
    if new.soc.capacity_ah != old.soc.capacity_ah:
        # A new nominal capacity restarts learning from it (learning is bounded around the
        # nominal value); the SoC in percent is kept.
        fraction = soc.charge_ah / soc.capacity_ah
        soc = dataclasses.replace(
            soc, capacity_ah=new.soc.capacity_ah, charge_ah=fraction * new.soc.capacity_ah
        )
    return dataclasses.replace(state, forced_off=forced_off, soc=soc)


def _bus_coverage(bus_log: BusLog | None, steps: int) -> str | None:
    if bus_log is None:
        return None
    return "start" if steps == 0 else "continued"


def _restore_state(store: StateSink | None) -> PersistedState | None:
    if store is None:
        return None
    data: dict[str, Any] | None = store.load()
    if data is None:
        return None
    try:
        return PersistedState.from_dict(data)
    except ValueError as err:
        # Protection matters more than history: start fresh, loudly, and keep running.
        _LOGGER.error("Saved state is unusable (%s); starting from the configured defaults", err)
        return None
