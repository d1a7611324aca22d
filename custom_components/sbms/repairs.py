"""Repair issues of one battery box: only what a user can act on.

- `unsupported_protocol`: the agent speaks a protocol version this integration does not know;
  the user updates the integration or the agent.
- `cell_imbalance`: the cell spread stayed high for long; the user checks the cell connections
  and the balancing, or a failing cell.

Two notices of earlier versions are gone, because nothing in them was the user's to do: an
agent offline for a while (the *Agent connected* sensor shows it, the log has a line when it
goes and when it comes back, and the device triggers fire) and a configuration change the
agent refused (the action that asked for it already failed with the agent's reason, which
the caller sees and an automation's trace and Home Assistant's log keep).

No issue here is fixable from Home Assistant, so no repair flow opens; `async_create_fix_flow`
exists because Home Assistant requires it of a `repairs` platform.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from homeassistant.components.repairs import ConfirmRepairFlow, RepairsFlow
from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .const import (
    CELL_IMBALANCE_REPAIR_AFTER_S,
    CELL_IMBALANCE_REPAIR_V,
    CONF_AGENT_ID,
    DOMAIN,
    SUPPORTED_PROTOCOL_VERSIONS,
)
from .models import BoxState

# Repair issue ids (translations under "issues" in translations/en.json).
ISSUE_PROTOCOL: Final = "unsupported_protocol"
ISSUE_CELL_IMBALANCE: Final = "cell_imbalance"

# The imbalance issue clears below this fraction of its threshold, so it does not flap.
_IMBALANCE_CLEAR_FRACTION: Final = 0.8


async def async_create_fix_flow(
    hass: HomeAssistant, issue_id: str, data: dict[str, Any] | None
) -> RepairsFlow:
    """Never called: every issue of this integration is created with `is_fixable=False`."""
    return ConfirmRepairFlow()


class BoxIssues:
    """Raises and clears the repair issues of one config entry."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry) -> None:
        self.hass = hass
        self.entry = entry
        self._imbalance_since: float | None = None

    def issue_id(self, issue: str) -> str:
        return f"{issue}_{self.entry.entry_id}"

    def unsupported_protocol(self, version: int) -> None:
        self._raise(
            ISSUE_PROTOCOL,
            severity=ir.IssueSeverity.ERROR,
            placeholders={
                "version": str(version),
                "supported": ", ".join(str(v) for v in sorted(SUPPORTED_PROTOCOL_VERSIONS)),
            },
        )

    def protocol_supported(self) -> None:
        self._delete(ISSUE_PROTOCOL)

    def check_imbalance(self, state: BoxState) -> None:
        """A cell spread beyond the threshold for long is worth an issue; measured on the
        agent's own timestamps so a replayed or accelerated agent is judged consistently."""
        delta = state.cell_delta if state.measurement_ok else None
        if delta is None:
            return
        if delta >= CELL_IMBALANCE_REPAIR_V:
            if self._imbalance_since is None:
                self._imbalance_since = state.timestamp
            elif state.timestamp - self._imbalance_since >= CELL_IMBALANCE_REPAIR_AFTER_S:
                self._raise(
                    ISSUE_CELL_IMBALANCE,
                    severity=ir.IssueSeverity.WARNING,
                    placeholders={
                        "delta_mv": str(round(delta * 1000)),
                        "threshold_mv": str(round(CELL_IMBALANCE_REPAIR_V * 1000)),
                    },
                )
        elif delta < CELL_IMBALANCE_REPAIR_V * _IMBALANCE_CLEAR_FRACTION:
            self._imbalance_since = None
            self._delete(ISSUE_CELL_IMBALANCE)

    def _raise(
        self, issue: str, *, severity: ir.IssueSeverity, placeholders: Mapping[str, str]
    ) -> None:
        ir.async_create_issue(
            self.hass,
            DOMAIN,
            self.issue_id(issue),
            is_fixable=False,
            severity=severity,
            translation_key=issue,
            translation_placeholders={
                "agent_id": self.entry.data[CONF_AGENT_ID],
                "title": self.entry.title,
                **placeholders,
            },
        )

    def _delete(self, issue: str) -> None:
        ir.async_delete_issue(self.hass, DOMAIN, self.issue_id(issue))
