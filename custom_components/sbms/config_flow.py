"""Config flow: one entry per battery box, identified by its agent id."""

from __future__ import annotations

import re
from typing import Any

import voluptuous as vol
from homeassistant.config_entries import ConfigFlow, ConfigFlowResult

from .const import AGENT_ID_PATTERN, CONF_AGENT_ID, DOMAIN

_AGENT_ID = re.compile(AGENT_ID_PATTERN)
_USER_SCHEMA = vol.Schema({vol.Required(CONF_AGENT_ID): str})


class SbmsConfigFlow(ConfigFlow, domain=DOMAIN):
    """Ask for the agent id; MQTT discovery of agents comes with a later version."""

    VERSION = 1

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            agent_id = str(user_input[CONF_AGENT_ID]).strip()
            if _AGENT_ID.match(agent_id):
                await self.async_set_unique_id(agent_id)
                self._abort_if_unique_id_configured()
                return self.async_create_entry(
                    title=f"SBMS {agent_id}", data={CONF_AGENT_ID: agent_id}
                )
            errors[CONF_AGENT_ID] = "invalid_agent_id"
        return self.async_show_form(step_id="user", data_schema=_USER_SCHEMA, errors=errors)
