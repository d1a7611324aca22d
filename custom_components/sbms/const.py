"""Constants shared by the SBMS integration."""

from __future__ import annotations

from typing import Final

DOMAIN: Final = "sbms"

CONF_AGENT_ID: Final = "agent_id"

# Agent ids appear in MQTT topics (sbms/<agent_id>/...): the same rule as the agent's config.
AGENT_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"
