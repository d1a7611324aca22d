"""Remote configuration and commands (MQTT `config/set` and `cmd/<name>`), without MQTT.

The MQTT link hands over the raw payload bytes (this is its `mqtt.handlers.RemoteHandler`);
this module parses them with `mqtt.requests`, checks every field, and either applies the
request completely or not at all. Every problem comes back as a (field, reason) pair with the
request's dotted path ("config.thresholds.hvd", "soc", "payload"); nothing here raises,
whatever the bytes.

A configuration change is validated exactly like the configuration file (merged onto the
configuration in force by `remote_merge.merge_remote_config`, then `parse_config`), saved to
the overlay file, and only then handed to the agent. If saving fails nothing changes; if the
agent refuses it, the overlay is put back. On restart `load_effective_config` rebuilds the
same configuration from the file and the overlay: remotely set fields win over the file.

The MQTT link uses `handle_config_set_async`: the overlay's write (fsync of the file and its
directory, which can take hundreds of milliseconds on an SD card) runs on a worker thread, so
samples go on meanwhile with the configuration in force; the change is applied on the loop
only after the write returned, and answered only after that. Requests are taken one at a
time (a lock), and a cancelled request still finishes its save and apply (or its
restoration): the file and the agent never disagree.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.config import AgentConfig, ConfigError
from edge_agent.control.extio import charges
from edge_agent.control.model import Interlock
from edge_agent.control.settings import OutputSettings, OutputType, Wiring
from edge_agent.diy.agent import Agent
from edge_agent.mqtt.handlers import RemoteResult
from edge_agent.mqtt.requests import (
    CONFIG_SET,
    Problem,
    RejectedError,
    check_keys,
    decode_request,
    json_kind,
    number_field,
    read_request_id,
    show_value,
)
from edge_agent.runtime.remote_merge import merge_remote_config
from edge_agent.storage.config_overlay import ConfigOverlay, ConfigOverlayError

_LOGGER = logging.getLogger(__name__)

COMMANDS = ("set_soc", "mark_full", "zero_current", "force_off", "cancel_force_off", "clear_fault")
FORCE_OFF_SECONDS = (1.0, 604800.0)  # one second to one week
# Zero calibration only near zero current, on a fresh reading: a real current (or an old
# reading) taken as the offset would skew the SoC for days.
ZERO_CURRENT_MAX_FRACTION = 0.05  # of the battery shunt rating
ZERO_CURRENT_MAX_AGE_S = 10.0
# config/set errors name the key's full path in the request ("config.thresholds.hvd").
CONFIG_FIELD_PREFIX = "config"

_COMMAND_KEYS: dict[str, tuple[str, ...]] = {
    "set_soc": ("soc",),
    "mark_full": (),
    "zero_current": (),
    "force_off": ("output", "seconds"),
    "cancel_force_off": ("output",),
    "clear_fault": (),
}


@dataclass(frozen=True, slots=True)
class _Change:
    """A validated configuration change, not yet saved or applied."""

    config: AgentConfig
    changes: Mapping[str, Any]
    combined: dict[str, Any]
    revision: int


class RemoteControl:
    """Applies remote requests to a running agent. Call from one thread (the event loop)."""

    commands: tuple[str, ...] = COMMANDS

    def __init__(
        self, agent: Agent, config: AgentConfig, overlay: ConfigOverlay | None, now: float
    ) -> None:
        """`config` is the configuration in force: `load_effective_config`'s, when an overlay
        is used (the overlay's changes and revision are taken from `overlay`)."""
        self._agent = agent
        self._config = config
        self._overlay = overlay
        self._started_at = now
        if overlay is not None and not overlay.loaded:
            _load_overlay(overlay)
        self._changes: dict[str, Any] = dict(overlay.changes) if overlay is not None else {}
        self._revision = overlay.revision if overlay is not None else 0
        self._config_lock: asyncio.Lock | None = None  # made on first async use (its loop)
        self._in_flight: set[asyncio.Task[tuple[int, bool]]] = set()

    @property
    def config(self) -> AgentConfig:
        return self._config

    @property
    def revision(self) -> int:
        return self._revision

    def handle_config_set(self, payload: bytes, now: float) -> RemoteResult:
        return self._handle(CONFIG_SET, payload, lambda document: self._config_set(document, now))

    async def handle_config_set_async(
        self, payload: bytes, clock: Callable[[], float]
    ) -> RemoteResult:
        """`handle_config_set` with the overlay's write on a worker thread (see the module's
        docstring). `clock` gives the agent's time when the change is applied."""
        if self._config_lock is None:
            self._config_lock = asyncio.Lock()
        async with self._config_lock:
            request_id: str | None = None
            try:
                document = decode_request(payload)
                request_id = read_request_id(document)
                change = self._prepare_config_set(document)
                if isinstance(change, tuple):
                    return RemoteResult(CONFIG_SET, request_id, (), *change)
                # Shielded: a cancelled request still completes its save and apply, so the
                # overlay on disk and the configuration in force never disagree.
                task = asyncio.ensure_future(self._save_and_apply(change, clock))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                revision, changed = await asyncio.shield(task)
            except RejectedError as rejected:
                return RemoteResult(CONFIG_SET, request_id, rejected.errors)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # a bug here must not take the MQTT link down
                _LOGGER.exception("Remote request %s failed", CONFIG_SET)
                return RemoteResult(
                    CONFIG_SET, request_id, (("payload", f"internal error: {exc!r}"),)
                )
            return RemoteResult(CONFIG_SET, request_id, (), revision, changed)

    async def _save_and_apply(
        self, change: _Change, clock: Callable[[], float]
    ) -> tuple[int, bool]:
        await asyncio.to_thread(self._save, change.combined, change.revision)
        try:
            return self._apply(change, clock())
        except RejectedError:
            await asyncio.to_thread(self._restore_overlay)
            raise

    def handle_command(self, name: str, payload: bytes, now: float) -> RemoteResult:
        return self._handle(name, payload, lambda document: self._command(name, document, now))

    # --- requests -----------------------------------------------------------------------------

    def _handle(
        self,
        command: str,
        payload: bytes,
        action: Callable[[dict[str, Any]], tuple[int, bool] | None],
    ) -> RemoteResult:
        request_id: str | None = None
        try:
            document = decode_request(payload)
            request_id = read_request_id(document)
            outcome = action(document)
        except RejectedError as rejected:
            return RemoteResult(command, request_id, rejected.errors)
        except Exception as exc:  # a bug here must not take the MQTT link (or the agent) down
            _LOGGER.exception("Remote request %s failed", command)
            return RemoteResult(command, request_id, (("payload", f"internal error: {exc!r}"),))
        if outcome is None:
            return RemoteResult(command, request_id, ())
        revision, changed = outcome
        return RemoteResult(command, request_id, (), revision, changed)

    def _config_set(self, document: dict[str, Any], now: float) -> tuple[int, bool]:
        """(revision in force, whether this request changed anything)."""
        change = self._prepare_config_set(document)
        if isinstance(change, tuple):
            return change
        # Saved first: an accepted change that a crash right after could lose would come back
        # as the old one on restart. If saving fails nothing has changed yet.
        self._save(change.combined, change.revision)
        try:
            return self._apply(change, now)
        except RejectedError:
            self._restore_overlay()
            raise

    def _prepare_config_set(self, document: dict[str, Any]) -> _Change | tuple[int, bool]:
        """The validated change, or (revision, False) when it changes nothing."""
        check_keys(document, ("config",))
        changes = document["config"]
        if not isinstance(changes, dict):
            raise RejectedError(("config", f"must be an object (got {json_kind(changes)})"))
        try:
            config = merge_remote_config(self._config, changes)
        except ConfigError as exc:
            raise RejectedError(
                *(_problem(CONFIG_FIELD_PREFIX, line) for line in exc.problems)
            ) from None
        if config == self._config:
            # Empty sections, or values already in force: no revision, no write, no rebuild
            # (a flood of these must not wear the SD card or churn the controller).
            return self._revision, False
        combined = combine_changes(self._changes, changes)
        return _Change(config, changes, combined, self._revision + 1)

    def _apply(self, change: _Change, now: float) -> tuple[int, bool]:
        """Hands a saved change to the agent; the caller restores the overlay if it refuses."""
        try:
            self._agent.apply_control_settings(change.config.control, now)
        except Exception as exc:
            raise RejectedError(
                ("config", f"could not be applied, nothing changed: {exc}")
            ) from exc
        self._config, self._changes, self._revision = (
            change.config,
            change.combined,
            change.revision,
        )
        _LOGGER.info(
            "Remote configuration revision %d applied: %s", change.revision, _brief(change.changes)
        )
        return change.revision, True

    def _save(self, changes: dict[str, Any], revision: int) -> None:
        if self._overlay is None:
            return
        try:
            self._overlay.save(changes, revision)
        except (ConfigOverlayError, ValueError) as exc:
            _LOGGER.error("Remote configuration not saved: %s", exc)
            raise RejectedError(("config", f"could not be saved, nothing changed: {exc}")) from exc

    def _restore_overlay(self) -> None:
        if self._overlay is None:
            return
        try:
            self._overlay.save(self._changes, self._revision)
        except (ConfigOverlayError, ValueError) as exc:
            _LOGGER.error("Could not restore the config overlay after a failed change: %s", exc)

    def _command(self, name: str, document: dict[str, Any], now: float) -> None:
        if name not in _COMMAND_KEYS:
            raise RejectedError(
                ("command", f"unknown command {show_value(name)} (known: {', '.join(COMMANDS)})")
            )
        check_keys(document, _COMMAND_KEYS[name])
        controller = self._agent.controller
        if name == "set_soc":
            controller.set_soc(number_field(document, "soc", 0.0, 100.0), now)
        elif name == "mark_full":
            controller.mark_full(now)
        elif name == "zero_current":
            self._zero_current(now)
        elif name == "force_off":
            self._force_off(document, now)
        elif name == "cancel_force_off":
            controller.cancel_force_off(self._output(document), now)
        else:
            self._clear_fault(now)

    def _zero_current(self, now: float) -> None:
        report = self._agent.last_report
        measurement = report.measurement if report is not None else None
        if measurement is None or abs(now - measurement.timestamp) > ZERO_CURRENT_MAX_AGE_S:
            raise RejectedError(
                (
                    "battery_current",
                    f"no good measurement in the last {ZERO_CURRENT_MAX_AGE_S:g} s",
                )
            )
        rating = self._config.hardware.battery_shunt.rated_current_a
        limit = ZERO_CURRENT_MAX_FRACTION * rating
        current = measurement.battery_current
        if not abs(current) < limit:
            raise RejectedError(
                (
                    "battery_current",
                    f"the battery current is {current:.2f} A: zero calibration needs less than "
                    f"{limit:g} A ({ZERO_CURRENT_MAX_FRACTION:.0%} of the {rating:g} A shunt)",
                )
            )
        offset = self._agent.controller.zero_current_offset(current)
        _LOGGER.info("Current offset set to %.4f A (reading %.4f A)", offset, current)

    def _force_off(self, document: dict[str, Any], now: float) -> None:
        errors: list[Problem] = []
        name: str | None = None
        seconds = 0.0
        try:
            name = self._output(document)
            errors += _forceable(name, self._outputs()[name])
        except RejectedError as rejected:
            errors += rejected.errors
        try:
            seconds = number_field(document, "seconds", *FORCE_OFF_SECONDS)
        except RejectedError as rejected:
            errors += rejected.errors
        if not errors and name is not None and self._at_lvd() and charges(self._outputs()[name]):
            errors.append(
                (
                    "output",
                    f"{name} charges the battery and the pack is at LVD: its charging cannot "
                    "be held off now",
                )
            )
        if errors or name is None:
            raise RejectedError(*errors)
        self._agent.controller.force_off(name, now + seconds, now)

    def _at_lvd(self) -> bool:
        report = self._agent.last_report
        return report is not None and Interlock.LVD in report.interlocks

    def _clear_fault(self, now: float) -> None:
        controller = self._agent.controller
        controller.clear_faults(now)
        still = sorted(fault.value for fault in controller.snapshot().latched_faults)
        if still:
            raise RejectedError(
                ("command", f"still latched because the condition is present: {', '.join(still)}")
            )

    def _outputs(self) -> dict[str, OutputSettings]:
        return {output.name: output for output in self._agent.controller.settings.outputs}

    def _output(self, document: dict[str, Any]) -> str:
        name = document["output"]
        outputs = self._outputs()
        if not isinstance(name, str) or name not in outputs:
            raise RejectedError(
                ("output", f"unknown output {show_value(name)} (outputs: {', '.join(outputs)})")
            )
        return name


# --- loading --------------------------------------------------------------------------------


def load_effective_config(
    file_config: AgentConfig, overlay: ConfigOverlay
) -> tuple[AgentConfig, int]:
    """The configuration file with the saved remote changes on top, and their revision.

    An overlay that cannot be read, or no longer fits the file (edited since: a removed output,
    thresholds now out of order), is logged, moved aside and ignored: the box then runs on its
    file, which was validated on its own. It never stops the agent.
    """
    loaded = _load_overlay(overlay)
    if loaded is None:
        return file_config, overlay.revision
    changes, revision = loaded
    try:
        return merge_remote_config(file_config, changes), revision
    except ConfigError as exc:
        reason = "; ".join(exc.problems)
        try:
            target = overlay.set_aside(reason)
        except ConfigOverlayError as move_error:
            _LOGGER.error("Saved remote configuration ignored (%s); %s", reason, move_error)
        else:
            _LOGGER.error(
                "Saved remote configuration %s no longer fits the configuration file (%s); "
                "ignored and moved aside to %s",
                overlay.path,
                reason,
                target,
            )
        return file_config, revision


def _load_overlay(overlay: ConfigOverlay) -> tuple[dict[str, Any], int] | None:
    try:
        return overlay.load()
    except ConfigOverlayError as exc:
        _LOGGER.error("%s; running without the saved remote configuration", exc)
        return None


def combine_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, Any]:
    """Two remote change sets as one: `new` wins, key by key, at every depth."""
    combined = dict(old)
    for key, value in new.items():
        previous = combined.get(key)
        if isinstance(value, Mapping) and isinstance(previous, Mapping):
            combined[key] = combine_changes(previous, value)
        elif isinstance(value, Mapping):
            combined[key] = combine_changes({}, value)
        else:
            combined[key] = value
    return combined


def _forceable(name: str, output: OutputSettings) -> list[Problem]:
    output_type = output.type
    if output_type is OutputType.FAULT or output.wiring is Wiring.FAULT:
        return [("output", f"{name} is the fault output: forcing it off would hide faults")]
    if output_type is OutputType.UNUSED:
        return [("output", f"{name} is unused (type 0): it is always off")]
    return []


def _problem(prefix: str, line: str) -> Problem:
    """ "thresholds.hvd: must be ..." -> ("config.thresholds.hvd", "must be ...")."""
    path, separator, reason = line.partition(": ")
    if not separator:
        return prefix or "config", line
    return (f"{prefix}.{path}" if prefix else path), reason


def _brief(changes: Mapping[str, Any]) -> str:
    return show_value(json.dumps(changes, sort_keys=True), limit=300)
