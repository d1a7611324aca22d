"""Pure builders for the JSON payloads of protocol v1 (docs/protocol.md, docs/schemas/).

Numbers are rounded to what the sensors resolve, to keep messages (and Home Assistant's
database) small. `encode` is the only way a payload becomes bytes: compact UTF-8 JSON in which a
NaN or infinity becomes null, because JSON has no such numbers.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import edge_agent
from edge_agent.config import AgentConfig, config_to_dict
from edge_agent.control.extio import remote_types
from edge_agent.control.model import (
    TEMPERATURE_NAMES,
    ControlEvent,
    ControlReport,
    EventKind,
    Measurement,
    load_current,
    measurement_ok,
    temperatures,
)
from edge_agent.control.settings import OutputType
from edge_agent.mqtt import DEFAULT_BASE, PROTOCOL_VERSION
from edge_agent.mqtt.handlers import HistoryPage
from edge_agent.mqtt.requests import HISTORY_GET
from edge_agent.mqtt.topics import Topics

MODEL = "SBMS edge agent"
SOURCES = ("diy", "sbms0", "simulator")

# Sections of config_to_dict() never published: file paths of the box, and the broker
# connection (credentials; a consumer already knows the broker it reads this from).
# The `source` section (a stock SBMS's port or URL) is box wiring, like storage.
# Local matters of the box (files, broker, where data comes from) are not published.
_HIDDEN_CONFIG_SECTIONS = ("storage", "data_log", "mqtt", "source")

# Digits kept per quantity.
_CELL_V, _PACK_V, _AMPS, _WATTS, _SOC, _AH, _WH, _CELSIUS, _TIME = 3, 2, 2, 1, 1, 2, 1, 1, 3
_COUNTER_AH = 3


def _round(value: float, digits: int) -> float:
    return round(value, digits) if math.isfinite(value) else value


def _round_opt(value: float | None, digits: int) -> float | None:
    return None if value is None else _round(value, digits)


def _soc(value: float) -> float:
    """A state of charge as published: 0-100 % whatever the estimator's unclamped count says
    (a full sync may start from 100.157 %), 0.1 % resolution."""
    return _round(min(100.0, max(0.0, value)), _SOC) if math.isfinite(value) else value


def _seconds(value: float | None) -> int | None:
    if value is None or not math.isfinite(value):
        return None
    return round(value)


# ---------------------------------------------------------------------------------------------
# Derived quantities
# ---------------------------------------------------------------------------------------------


def fitted_temperatures(config: AgentConfig, source: str) -> tuple[str, ...]:
    """The temperature inputs a box has: a stock SBMS0 its die and one external sensor; a
    DIY or simulated box the cell monitor's die, the battery thermistor on xT1 unless the
    config says none is fitted (`cell_monitor.battery_thermistor: false`), and xT2."""
    if source == "sbms0":
        return TEMPERATURE_NAMES[:2]
    if not config.control.battery_thermistor:
        return ("internal", "external2")
    return TEMPERATURE_NAMES


# ---------------------------------------------------------------------------------------------
# Payloads
# ---------------------------------------------------------------------------------------------


def announce_payload(
    config: AgentConfig,
    source: str,
    serial: str,
    commands: Sequence[str],
    *,
    topics: Topics | None = None,
    config_set: bool | None = None,
    pv_current: bool | None = None,
    temperature_inputs: Sequence[str] | None = None,
    history: bool = False,
) -> dict[str, Any]:
    """The retained description of the box.

    Defaults follow from the configuration and source: a stock SBMS0 is read-only
    (config_set false); the temperature inputs are `fitted_temperatures`. The keyword
    arguments override them when the agent knows better.
    """
    if source not in SOURCES:
        raise ValueError(f"source must be one of {', '.join(SOURCES)} (got {source!r})")
    topics = topics or Topics(DEFAULT_BASE, config.agent_id)
    if pv_current is None:
        pv_current = config.hardware.pv_shunt is not None
    if temperature_inputs is None:
        temperature_inputs = fitted_temperatures(config, source)
    unknown = set(temperature_inputs) - set(TEMPERATURE_NAMES)
    if unknown:
        raise ValueError(f"unknown temperature inputs {sorted(unknown)}")
    settable = source != "sbms0" if config_set is None else config_set
    return {
        "protocol_version": PROTOCOL_VERSION,
        "agent_version": edge_agent.__version__,
        "agent_id": config.agent_id,
        "model": MODEL,
        "source": source,
        "serial": serial,
        "cells": config.control.cell_count,
        "capacity_ah": config.control.soc.capacity_ah,
        "measurements": {
            "pv_current": pv_current,
            "temperatures": [name for name in TEMPERATURE_NAMES if name in temperature_inputs],
        },
        "outputs": [
            {
                "name": output.name,
                "type": int(output.type),
                "type_name": output_type_name(output.type),
                "wiring": output.wiring.value,
                # The types a config/set may give it (its wiring's, never into or out of 5).
                "settable_types": (
                    sorted(int(t) for t in remote_types(output.wiring)) if settable else []
                ),
            }
            for output in config.control.outputs
        ],
        "capabilities": {
            "config_set": settable,
            "commands": list(commands),
            "history": history,  # answers history/get from a data log
        },
        "topics": topics.as_dict(),
    }


@dataclass(frozen=True, slots=True)
class LinkStats:
    """What the MQTT link received and dropped since the agent started (`link_stats`)."""

    requests_received: int = 0
    dropped_by_kind: Mapping[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "requests_received": self.requests_received,
            "requests_dropped": sum(self.dropped_by_kind.values()),
            "dropped_by_kind": dict(sorted(self.dropped_by_kind.items())),
        }


def state_payload(
    report: ControlReport, link: LinkStats | None = None, *, tank_temperature: str | None = None
) -> dict[str, Any]:
    """Telemetry for one control report; measured fields are null before the first
    measurement. `link`: the MQTT link's request counters, when it has any to say.
    `tank_temperature`: the input that reads the heater tank (`diversion.tank_temperature`),
    also published as `temperatures.heater_tank`."""
    m = report.measurement
    return {
        "timestamp": _round(report.timestamp, _TIME),
        "soc": _soc(report.soc),
        # Half the ~95 % band around soc, SoC points; null where the source's own SoC is
        # published (a stock SBMS0 says nothing of its certainty). Added within 1 (issue 16).
        "soc_uncertainty": _round_opt(report.soc_uncertainty, _SOC),
        "remaining_ah": _round(report.remaining_ah, _AH),
        "capacity_ah": _round(report.capacity_ah, _AH),
        **_measured_fields(m, tank_temperature),
        "faults": sorted(fault.value for fault in report.faults),
        "interlocks": sorted(interlock.value for interlock in report.interlocks),
        "charge_allowed": report.charge_allowed,
        "load_allowed": report.load_allowed,
        "outputs": dict(report.outputs),
        "forced_off": {
            name: _round(until, _TIME) for name, until in sorted(report.forced_off.items())
        },
        "high_soc_alarm": report.high_soc_alarm,
        "low_soc_alarm": report.low_soc_alarm,
        "dual_pv_level": report.dual_pv_level,
        "time_to_full_s": _seconds(report.time_to_full_s),
        "time_to_empty_s": _seconds(report.time_to_empty_s),
        "counters": _counters(report),
        "measurement_ok": measurement_ok(report),
        **_source_stats(report),
        **_diversion(report),
        **_pv_arrays(report),
        **({"link_stats": link.as_dict()} if link is not None else {}),
    }


def _diversion(report: ControlReport) -> dict[str, Any]:
    """`diversion` (issue 19) where the box decides one (a diversion output or an array
    described under `diversion.arrays`); absent otherwise, as from a stock SBMS."""
    diversion = report.diversion
    if diversion is None:
        return {}
    counters = diversion.counters
    return {
        "diversion": {
            "diverting": diversion.diverting,
            "power_w": _round(diversion.power_w, _WATTS),
            "measured": diversion.measured,
            "available_w": _round_opt(diversion.available_w, _WATTS),
            # Rounded to nearest: monotonic, so the totals still never go backwards.
            "counters": {
                item.name: _round(getattr(counters, item.name), _WH) for item in fields(counters)
            },
        }
    }


def _pv_arrays(report: ControlReport) -> dict[str, Any]:
    """`pv_arrays_wh` (issue 20): PV energy per array on a dual-PV box with a PV shunt
    (control/pv_arrays.py); absent elsewhere. Rounded to nearest: still never backwards."""
    if report.pv_arrays_wh is None:
        return {}
    return {
        "pv_arrays_wh": {
            name: _round(value, _WH) for name, value in sorted(report.pv_arrays_wh.items())
        }
    }


def _source_stats(report: ControlReport) -> dict[str, Any]:
    """`source_stats` for a source that receives frames (a stock SBMS); absent otherwise."""
    stats = report.source_stats
    if stats is None:
        return {}
    return {
        "source_stats": {
            "frames_ok": stats.frames_ok,
            "frames_unchecked": stats.frames_unchecked,
            "frames_bad": stats.frames_bad,
            "link_errors": stats.link_errors,
            "bad_by_kind": dict(stats.bad_by_kind),
            "reanchored": stats.reanchored,
        }
    }


def _measured_fields(m: Measurement | None, tank_input: str | None) -> dict[str, Any]:
    temps = {
        name: _round_opt(value, _CELSIUS) for name, value in temperatures(m, tank_input).items()
    }
    if m is None:
        return {
            **dict.fromkeys(("voltage", "battery_current", "battery_power", "pv_current")),
            **dict.fromkeys(("pv_power", "load_current", "load_power")),
            "cells": [],
            **dict.fromkeys(("cell_min", "cell_max", "cell_delta")),
            "balancing": [],
            "temperatures": temps,
            "flags": [],
        }
    volts = m.battery_voltage
    load = load_current(m)
    return {
        "voltage": _round(volts, _PACK_V),
        "battery_current": _round(m.battery_current, _AMPS),
        "battery_power": _round(m.battery_current * volts, _WATTS),
        "pv_current": _round_opt(m.pv_current, _AMPS),
        "pv_power": None if m.pv_current is None else _round(m.pv_current * volts, _WATTS),
        "load_current": _round_opt(load, _AMPS),
        "load_power": None if load is None else _round(load * volts, _WATTS),
        "cells": [_round(cell, _CELL_V) for cell in m.cell_voltages],
        "cell_min": _round(m.min_cell, _CELL_V),
        "cell_max": _round(m.max_cell, _CELL_V),
        "cell_delta": _round(m.cell_delta, _CELL_V),
        "balancing": list(m.balancing),
        "temperatures": temps,
        "flags": sorted(m.monitor_flags),
    }


def _counters(report: ControlReport) -> dict[str, float]:
    counters = report.counters
    # Rounding to nearest is monotonic, so published totals still never go backwards.
    return {
        item.name: _round(
            getattr(counters, item.name), _COUNTER_AH if item.name.endswith("_ah") else _WH
        )
        for item in fields(counters)
    }


def config_payload(config: AgentConfig, revision: int) -> dict[str, Any]:
    """The configuration in force, minus file paths and broker credentials."""
    data = config_to_dict(config)
    for section in _HIDDEN_CONFIG_SECTIONS:
        data.pop(section, None)
    # A stock SBMS's outputs are its own: the agent drives no pin (the announce names them).
    data.setdefault("outputs", [])
    data["config_revision"] = revision
    return data


def event_payload(event: ControlEvent) -> dict[str, Any]:
    return {
        "kind": event.kind.value,
        "timestamp": _round(event.timestamp, _TIME),
        "detail": _event_detail(event),
    }


def _event_detail(event: ControlEvent) -> dict[str, Any]:
    """The detail at the resolution of the state: SoC clamped to 0-100 % with 0.1 %, a cell
    voltage with 1 mV."""
    detail = dict(event.detail)
    if event.kind is EventKind.SOC_SYNC:
        for key in ("from", "to"):
            value = detail.get(key)
            if isinstance(value, int | float) and not isinstance(value, bool):
                detail[key] = _soc(float(value))
    voltage = detail.get("voltage")
    if isinstance(voltage, float):
        detail["voltage"] = _round(voltage, _CELL_V)
    return detail


def result_payload(
    command: str,
    request_id: str | None,
    errors: Sequence[tuple[str, str]],
    now: float,
    config_revision: int | None = None,
    *,
    changed: bool | None = None,
) -> dict[str, Any]:
    """The answer to a request: accepted when `errors` is empty. `config_revision` and
    `changed` are only given for an accepted config/set."""
    payload: dict[str, Any] = {
        "request_id": request_id,
        "command": command,
        "status": "rejected" if errors else "accepted",
        "errors": capped_errors(errors),
        "timestamp": _round(now, _TIME),
    }
    if config_revision is not None:
        payload["config_revision"] = config_revision
    if changed is not None:
        payload["changed"] = changed
    return payload


# An answer stays small whatever the request: a 16 kB request of unknown keys must not buy a
# 100 kB answer. The first MAX_ERRORS problems in full (shortened), then one line counting the
# rest.
MAX_ERRORS = 20
MAX_FIELD_CHARS = 200
MAX_REASON_CHARS = 400


def capped_errors(errors: Sequence[tuple[str, str]]) -> list[dict[str, str]]:
    shown = [
        {"field": _shortened(name, MAX_FIELD_CHARS), "reason": _shortened(reason, MAX_REASON_CHARS)}
        for name, reason in errors[:MAX_ERRORS]
    ]
    if len(errors) > MAX_ERRORS:
        more = len(errors) - MAX_ERRORS
        shown.append({"field": "payload", "reason": f"and {more} more problems not listed"})
    return shown


def _shortened(text: str, limit: int) -> str:
    text = text or "?"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def history_result_payload(
    request_id: str | None,
    errors: Sequence[tuple[str, str]],
    now: float,
    *,
    page: HistoryPage | None = None,
) -> dict[str, Any]:
    """The answer to `history/get`: a result, plus the page's records when accepted."""
    payload = result_payload(HISTORY_GET, request_id, errors, now)
    if page is not None and not errors:
        payload["interval_s"] = page.interval_s
        payload["records"] = list(page.records)
        payload["next_from"] = page.next_from
    return payload


def output_type_name(output_type: OutputType) -> str:
    return output_type.name.lower()


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, Mapping):
        return {str(key): _finite(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(item) for item in value]
    return value


def encode(payload: Mapping[str, Any]) -> bytes:
    """Compact UTF-8 JSON; NaN and infinities become null (json.dumps would write NaN)."""
    clean = _finite(payload)
    try:
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode(
            "utf-8"
        )
    except UnicodeEncodeError:
        # A lone surrogate (JSON "\\ud800" in a request, echoed in an answer) has no UTF-8
        # form: escaped, the text is still valid JSON and says what was sent.
        return json.dumps(clean, separators=(",", ":"), ensure_ascii=True, allow_nan=False).encode(
            "ascii"
        )
