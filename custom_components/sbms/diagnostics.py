"""Diagnostics: what the integration knows about one box, for bug reports.

Users paste this into public issues, so anything that identifies a box or a broker is
redacted: the serial, and any broker or credential key an agent might publish by mistake
(the protocol keeps `mqtt` out of `config`, but diagnostics must not rely on it).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN
from .models import AgentConfig, Announce
from .runtime_data import SbmsConfigEntry

TO_REDACT = {
    "serial",
    "serial_number",
    "mqtt",
    "host",
    "username",
    "password",
    "token",
    "tls",
    "client_cert",
    "client_key",
}


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: SbmsConfigEntry
) -> dict[str, Any]:
    """The entry, the latest announce, state and config, and why entities may be unavailable."""
    runtime = entry.runtime_data
    data = runtime.coordinator.data
    return async_redact_data(
        {
            "entry": {"title": entry.title, "data": dict(entry.data)},
            "availability": {
                "available": data.available,
                "online": data.online,
                "broker_connected": data.broker_connected,
                "protocol_supported": data.protocol_supported,
            },
            "announce": _announce(data.announce),
            "state": dataclasses.asdict(data.state) if data.state is not None else None,
            "config": dict(data.config.data) if data.config is not None else None,
            # Which curve the SoC reads near empty (issue 16): a wide band's first question.
            "soc_estimate": _soc_estimate(data.announce, data.config),
            "repair_issues": _issues(hass, entry),
            # Whether shedding is on, the alarm and LVD it saw, each load's settings and state.
            "load_shedding": runtime.shedding.diagnostics(),
            # Surplus loads (issue 19): the surplus seen, each load's settings and state.
            "surplus_loads": runtime.surplus.diagnostics(),
            # What the statistics hold of the box, the gaps waiting, the last fill.
            "statistics_backfill": (
                None if runtime.backfill is None else runtime.backfill.diagnostics()
            ),
        },
        TO_REDACT,
    )


def _announce(announce: Announce) -> dict[str, Any]:
    # `commands` is a frozenset: made a sorted list so the output is JSON and stable.
    return {**dataclasses.asdict(announce), "commands": sorted(announce.commands)}


def _soc_estimate(announce: Announce, config: AgentConfig | None) -> dict[str, Any] | None:
    """What the agent's SoC reads near empty; None for a stock SBMS0 (its own SoC) or before
    the box's configuration arrived."""
    if not announce.estimates_soc or config is None:
        return None
    return {"ocv_curve": config.ocv_curve, "empty_soc": config.value("soc", "empty_soc")}


def _issues(hass: HomeAssistant, entry: SbmsConfigEntry) -> list[str]:
    """The translation keys of this entry's open repair issues."""
    return sorted(
        issue.translation_key or issue.issue_id
        for (domain, issue_id), issue in ir.async_get(hass).issues.items()
        if domain == DOMAIN and issue_id.endswith(entry.entry_id) and issue.active
    )
