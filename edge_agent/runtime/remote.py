"""Remote configuration and commands (MQTT `config/set` and `cmd/<name>`), without MQTT.

The MQTT link hands over the raw payload bytes; this module parses them, checks every field,
and either applies the request completely or not at all. Every problem comes back as a
(field, reason) pair with the request's dotted path ("config.thresholds.hvd", "soc",
"payload"); nothing here raises, whatever the bytes.

A configuration change is validated exactly like the configuration file (merged onto the
configuration in force, then `parse_config`), saved to the overlay file, and only then handed
to the agent. If saving fails nothing changes; if the agent refuses it, the overlay is put
back. On restart `load_effective_config` rebuilds the same configuration from the file and the
overlay: remotely set fields win over the file.

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
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from edge_agent.config import AgentConfig, ConfigError, merge_remote_config
from edge_agent.control.extio import charges
from edge_agent.control.model import Interlock
from edge_agent.control.settings import OutputSettings, OutputType, Wiring
from edge_agent.problems import unknown_key
from edge_agent.runtime.agent import Agent
from edge_agent.storage.config_overlay import ConfigOverlay, ConfigOverlayError

_LOGGER = logging.getLogger(__name__)

MAX_PAYLOAD_BYTES = 16384
MAX_NESTING = 16  # objects/arrays inside one another
CONFIG_SET = "config/set"
COMMANDS = ("set_soc", "mark_full", "zero_current", "force_off", "cancel_force_off", "clear_fault")
FORCE_OFF_SECONDS = (1.0, 604800.0)  # one second to one week
# Zero calibration only near zero current, on a fresh reading: a real current (or an old
# reading) taken as the offset would skew the SoC for days.
ZERO_CURRENT_MAX_FRACTION = 0.05  # of the battery shunt rating
ZERO_CURRENT_MAX_AGE_S = 10.0
# config/set errors name the key's full path in the request ("config.thresholds.hvd").
CONFIG_FIELD_PREFIX = "config"

_REQUEST_ID = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_REQUEST_ID_RULE = "must be 1 to 64 letters, digits, '_', '.', ':' or '-'"
_COMMAND_KEYS: dict[str, tuple[str, ...]] = {
    "set_soc": ("soc",),
    "mark_full": (),
    "zero_current": (),
    "force_off": ("output", "seconds"),
    "cancel_force_off": ("output",),
    "clear_fault": (),
}

Problem = tuple[str, str]  # (field, reason)


@dataclass(frozen=True, slots=True)
class RemoteResult:
    """The answer to one request: accepted when there are no errors."""

    command: str  # "config/set" or the command name
    request_id: str | None
    errors: tuple[Problem, ...]
    config_revision: int | None = None  # accepted config/set only
    changed: bool | None = None  # accepted config/set only: False when nothing changed

    @property
    def accepted(self) -> bool:
        return not self.errors


@dataclass(frozen=True, slots=True)
class _Change:
    """A validated configuration change, not yet saved or applied."""

    config: AgentConfig
    changes: Mapping[str, Any]
    combined: dict[str, Any]
    revision: int


class _RejectedError(Exception):
    def __init__(self, *errors: Problem) -> None:
        super().__init__(errors)
        self.errors = errors


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
                request_id = _request_id(document)
                change = self._prepare_config_set(document)
                if isinstance(change, tuple):
                    return RemoteResult(CONFIG_SET, request_id, (), *change)
                # Shielded: a cancelled request still completes its save and apply, so the
                # overlay on disk and the configuration in force never disagree.
                task = asyncio.ensure_future(self._save_and_apply(change, clock))
                self._in_flight.add(task)
                task.add_done_callback(self._in_flight.discard)
                revision, changed = await asyncio.shield(task)
            except _RejectedError as rejected:
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
        except _RejectedError:
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
            request_id = _request_id(document)
            outcome = action(document)
        except _RejectedError as rejected:
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
        except _RejectedError:
            self._restore_overlay()
            raise

    def _prepare_config_set(self, document: dict[str, Any]) -> _Change | tuple[int, bool]:
        """The validated change, or (revision, False) when it changes nothing."""
        _check_keys(document, ("config",))
        changes = document["config"]
        if not isinstance(changes, dict):
            raise _RejectedError(("config", f"must be an object (got {_kind(changes)})"))
        try:
            config = merge_remote_config(self._config, changes)
        except ConfigError as exc:
            raise _RejectedError(
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
            raise _RejectedError(
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
            raise _RejectedError(("config", f"could not be saved, nothing changed: {exc}")) from exc

    def _restore_overlay(self) -> None:
        if self._overlay is None:
            return
        try:
            self._overlay.save(self._changes, self._revision)
        except (ConfigOverlayError, ValueError) as exc:
            _LOGGER.error("Could not restore the config overlay after a failed change: %s", exc)

    def _command(self, name: str, document: dict[str, Any], now: float) -> None:
        if name not in _COMMAND_KEYS:
            raise _RejectedError(
                ("command", f"unknown command {_show(name)} (known: {', '.join(COMMANDS)})")
            )
        _check_keys(document, _COMMAND_KEYS[name])
        controller = self._agent.controller
        if name == "set_soc":
            controller.set_soc(_number(document, "soc", 0.0, 100.0), now)
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
            raise _RejectedError(
                (
                    "battery_current",
                    f"no good measurement in the last {ZERO_CURRENT_MAX_AGE_S:g} s",
                )
            )
        rating = self._config.hardware.battery_shunt.rated_current_a
        limit = ZERO_CURRENT_MAX_FRACTION * rating
        current = measurement.battery_current
        if not abs(current) < limit:
            raise _RejectedError(
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
        except _RejectedError as rejected:
            errors += rejected.errors
        try:
            seconds = _number(document, "seconds", *FORCE_OFF_SECONDS)
        except _RejectedError as rejected:
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
            raise _RejectedError(*errors)
        self._agent.controller.force_off(name, now + seconds, now)

    def _at_lvd(self) -> bool:
        report = self._agent.last_report
        return report is not None and Interlock.LVD in report.interlocks

    def _clear_fault(self, now: float) -> None:
        controller = self._agent.controller
        controller.clear_faults(now)
        still = sorted(fault.value for fault in controller.snapshot().latched_faults)
        if still:
            raise _RejectedError(
                ("command", f"still latched because the condition is present: {', '.join(still)}")
            )

    def _outputs(self) -> dict[str, OutputSettings]:
        return {output.name: output for output in self._agent.controller.settings.outputs}

    def _output(self, document: dict[str, Any]) -> str:
        name = document["output"]
        outputs = self._outputs()
        if not isinstance(name, str) or name not in outputs:
            raise _RejectedError(
                ("output", f"unknown output {_show(name)} (outputs: {', '.join(outputs)})")
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


# --- parsing --------------------------------------------------------------------------------


class _DuplicateKeyError(ValueError):
    pass


def decode_request(payload: bytes) -> dict[str, Any]:
    """Bytes -> a JSON object, or _RejectedError naming the payload's problem."""
    untrusted: object = payload
    if not isinstance(untrusted, bytes | bytearray | memoryview):
        raise _RejectedError(("payload", f"must be bytes (got {type(untrusted).__name__})"))
    data = bytes(untrusted)
    if len(data) > MAX_PAYLOAD_BYTES:
        raise _RejectedError(
            ("payload", f"too large: {len(data)} bytes (at most {MAX_PAYLOAD_BYTES})")
        )
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise _RejectedError(
            ("payload", f"not UTF-8 text (byte {exc.start}: {exc.reason})")
        ) from None
    try:
        document = json.loads(text, object_pairs_hook=_unique_keys, parse_int=_json_int)
    except _DuplicateKeyError as exc:
        raise _RejectedError(("payload", str(exc))) from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno} column {exc.colno}"
        raise _RejectedError(("payload", f"invalid JSON at {where}: {exc.msg}")) from None
    except RecursionError:
        raise _RejectedError(("payload", f"nested more than {MAX_NESTING} levels deep")) from None
    except ValueError as exc:  # e.g. an integer with more digits than Python converts
        raise _RejectedError(("payload", f"invalid JSON: {exc}")) from None
    if not isinstance(document, dict):
        raise _RejectedError(("payload", f"must be a JSON object (got {_kind(document)})"))
    if _too_deep(document):
        raise _RejectedError(("payload", f"nested more than {MAX_NESTING} levels deep"))
    return document


def _too_deep(document: object) -> bool:
    """Iterative, so the check itself cannot overflow the stack. Valid requests nest 4 deep;
    refusing deeper ones keeps recursion (repr, validation) safe further on."""
    level: list[object] = [document]
    for _ in range(MAX_NESTING):
        level = [
            child
            for item in level
            if isinstance(item, dict | list)
            for child in (item.values() if isinstance(item, dict) else item)
        ]
        if not level:
            return False
    return any(isinstance(item, dict | list) for item in level)


# Every key the protocol uses is a word: a key with ": ", "." or anything else would make the
# dotted field paths of the answer ambiguous, so it is refused before any check reads it.
_KEY = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for key, value in pairs:
        if not _KEY.match(key):
            raise _DuplicateKeyError(
                f"key {_show(key)} is not a key of this protocol (keys are 1 to 64 letters, "
                "digits, '_' or '-')"
            )
        if key in document:
            raise _DuplicateKeyError(f"duplicate key {_show(key)}")
        document[key] = value
    return document


def _json_int(text: str) -> int | float:
    """Integers beyond what a float holds become +-inf, which every number check rejects
    naming the field (instead of an OverflowError deep in a comparison)."""
    value = int(text)
    if abs(value) <= 2**53:
        return value
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def _request_id(document: Mapping[str, Any]) -> str | None:
    if "request_id" not in document:
        return None
    value = document["request_id"]
    if isinstance(value, str) and _REQUEST_ID.fullmatch(value):
        return value
    raise _RejectedError(("request_id", f"{_REQUEST_ID_RULE} (got {_show(value)})"))


def _check_keys(document: Mapping[str, Any], required: tuple[str, ...]) -> None:
    allowed = {*required, "request_id"}
    errors = [(key, unknown_key(key, allowed)) for key in document if key not in allowed]
    errors += [(key, "required key is missing") for key in required if key not in document]
    if errors:
        raise _RejectedError(*errors)


def _number(document: Mapping[str, Any], key: str, low: float, high: float) -> float:
    value = document[key]
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _RejectedError((key, f"must be a number (got {_show(value)})"))
    if not math.isfinite(value):
        raise _RejectedError((key, f"must be a finite number (got {value!r})"))
    if not low <= value <= high:
        raise _RejectedError((key, f"must be between {low:g} and {high:g} (got {value:g})"))
    return float(value)


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


def _kind(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else type(value).__name__


def _show(value: Any, limit: int = 40) -> str:
    """A value for an error message: short, so a hostile payload cannot bloat the result."""
    try:
        text = repr(value)
    except (ValueError, RecursionError):  # huge ints, deep nesting
        text = f"<{_kind(value)}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _brief(changes: Mapping[str, Any]) -> str:
    return _show(json.dumps(changes, sort_keys=True), limit=300)
