"""Config flow for SBMS battery boxes, and the options flow that configures the agent.

One entry per box, keyed by the serial its agent announces. A box is found through MQTT
discovery of its retained announce (the manifest's `sbms/+/announce`), or by hand: the user
step lists the agents whose announce is retained on the broker, or takes an id and base topic
(discovery.py finds and checks them). An entry is only created for an agent that answers
(announce retained, status online).

The options flow does not store settings: it sends them to the agent with `config/set` and
finishes only when the agent accepts. The agent's retained `config` stays the source of truth,
so every form is prefilled from it and a rejection shows the agent's reason. Its fields are
the settings catalogue's (settings.py), which the number entities read too.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from types import MappingProxyType
from typing import Any, ClassVar, Final

import voluptuous as vol
from homeassistant.config_entries import (
    ConfigEntry,
    ConfigEntryState,
    ConfigFlow,
    ConfigFlowResult,
    ConfigSubentryFlow,
    OptionsFlow,
    SubentryFlowResult,
)
from homeassistant.const import PERCENTAGE, UnitOfPower, UnitOfTime
from homeassistant.core import callback
from homeassistant.helpers.selector import (
    BooleanSelector,
    EntitySelector,
    EntitySelectorConfig,
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
from homeassistant.helpers.service_info.mqtt import MqttServiceInfo

from . import ENTRY_MINOR_VERSION, ENTRY_VERSION
from .const import (
    CONF_AGENT_ID,
    CONF_BASE_TOPIC,
    CONF_DISCHARGE_TIME,
    CONF_LOAD_ENTITY,
    CONF_MAX_DISCHARGE_POWER,
    CONF_MIN_OFF_TIME,
    CONF_MIN_ON_TIME,
    CONF_MIN_SOC,
    CONF_PESSIMISTIC_SOC,
    CONF_PRIORITY,
    CONF_RESTORE_ABOVE,
    CONF_SHED_BELOW,
    CONF_TOPIC_PREFIX,
    DEFAULT_BASE_TOPIC,
    DEFAULT_PESSIMISTIC_SOC,
    DOMAIN,
    OUTPUT_TYPE_NAMES,
    SUBENTRY_LOAD,
    SUBENTRY_SURPLUS_LOAD,
)
from .coordinator import AgentRejectedError, AgentRequestError, SbmsCoordinator
from .discovery import (
    AGENT_ID,
    AnnounceError,
    FoundAgent,
    async_check_agent,
    async_listen_for_agents,
    async_mqtt_problem,
    parse_announce,
)
from .load_shedding import settings_errors
from .models import AgentConfig, RequestResult
from .runtime_data import SbmsConfigEntry
from .settings import (
    DUAL_PV,
    OUTPUT_TYPE_SETTINGS,
    SOC_ALARMS,
    TEMPERATURE,
    THRESHOLDS,
    Setting,
    output_type_in_force,
)
from .surplus_loads import DISCHARGE_TIME_MAX_S, DISCHARGE_W_MAX
from .surplus_loads import settings_errors as surplus_settings_errors
from .switched_loads import MIN_TIME_MAX_S, PRIORITY_MAX, PRIORITY_MIN

CONF_AGENT: Final = "agent"
CONF_OUTPUT: Final = "output"
CONF_OUTPUT_TYPE: Final = "output_type"
_MANUAL: Final = "manual"

# A base is one or more topic levels without wildcards or empty levels.
_BASE_TOPIC = re.compile(r"^[^/#+\s]+(/[^/#+\s]+)*$")


def _topic_schema(agent_id: str | None, base: str) -> vol.Schema:
    agent_key = (
        vol.Required(CONF_AGENT_ID)
        if agent_id is None
        else vol.Required(CONF_AGENT_ID, default=agent_id)
    )
    return vol.Schema(
        {
            agent_key: TextSelector(),
            vol.Required(CONF_BASE_TOPIC, default=base): TextSelector(),
        }
    )


def _read_topic_input(user_input: Mapping[str, Any]) -> tuple[str, str, dict[str, str]]:
    """Agent id and base topic from a form, with the field errors of bad ones."""
    agent_id = str(user_input[CONF_AGENT_ID]).strip()
    base = str(user_input[CONF_BASE_TOPIC]).strip().strip("/")
    errors: dict[str, str] = {}
    if not AGENT_ID.match(agent_id):
        errors[CONF_AGENT_ID] = "invalid_agent_id"
    if not _BASE_TOPIC.match(base):
        errors[CONF_BASE_TOPIC] = "invalid_base_topic"
    return agent_id, base, errors


# --- config flow ------------------------------------------------------------------------------


class SbmsConfigFlow(ConfigFlow, domain=DOMAIN):
    """Add a battery box: discovered over MQTT, picked from the agents seen, or by id."""

    VERSION = ENTRY_VERSION
    MINOR_VERSION = ENTRY_MINOR_VERSION

    def __init__(self) -> None:
        self._discovered: FoundAgent | None = None
        self._found: dict[str, FoundAgent] = {}

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: ConfigEntry) -> SbmsOptionsFlow:
        return SbmsOptionsFlow()

    @classmethod
    @callback
    def async_get_supported_subentry_types(
        cls, config_entry: ConfigEntry
    ) -> dict[str, type[ConfigSubentryFlow]]:
        """Optional loads for load shedding and surplus loads (issue 19), one subentry each."""
        return {SUBENTRY_LOAD: LoadSubentryFlow, SUBENTRY_SURPLUS_LOAD: SurplusLoadSubentryFlow}

    # --- MQTT discovery ---------------------------------------------------------------------

    async def async_step_mqtt(self, discovery_info: MqttServiceInfo) -> ConfigFlowResult:
        """An agent's retained announce arrived on `sbms/<agent_id>/announce`."""
        try:
            agent = parse_announce(discovery_info.topic, discovery_info.payload)
        except AnnounceError as err:
            return self.async_abort(reason=err.reason)
        # A configured box follows its agent to another base topic even while another flow
        # is open for it; only then does a second flow for the same box abort as in progress.
        existing = await self.async_set_unique_id(agent.serial, raise_on_progress=False)
        if existing is not None and existing.data.get(CONF_AGENT_ID) == agent.agent_id:
            # Moved topics need the reload to subscribe anew; the coordinator follows the
            # announce itself. An announce of the same box under another agent id (a stale
            # retained one after a rename) changes nothing: Reconfigure renames.
            moved = existing.data.get(CONF_TOPIC_PREFIX) != agent.prefix
            self._abort_if_unique_id_configured(
                updates={CONF_TOPIC_PREFIX: agent.prefix}, reload_on_update=moved
            )
        self._abort_if_unique_id_configured()
        await self.async_set_unique_id(agent.serial)
        self._discovered = agent
        self.context["title_placeholders"] = {"name": agent.agent_id}
        return await self.async_step_discovery_confirm()

    async def async_step_discovery_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the discovered box before adding it."""
        assert self._discovered is not None
        if user_input is not None:
            return self._create_entry(self._discovered)
        self._set_confirm_only()
        return self.async_show_form(
            step_id="discovery_confirm",
            description_placeholders=self._discovered.placeholders(),
        )

    # --- by hand ----------------------------------------------------------------------------

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Pick one of the agents seen on the broker, or enter another id."""
        errors: dict[str, str] = {}
        if user_input is None:
            if problem := await async_mqtt_problem(self.hass):
                return self.async_abort(reason=problem)
            configured = self._async_current_ids(include_ignore=False)
            self._found = {
                prefix: agent
                for prefix, agent in (await async_listen_for_agents(self.hass)).items()
                if agent.serial not in configured
            }
            if not self._found:
                return await self.async_step_manual()
        elif user_input[CONF_AGENT] == _MANUAL:
            return await self.async_step_manual()
        else:
            agent = self._found[user_input[CONF_AGENT]]
            if result := await self._async_add_checked(agent.prefix, errors):
                return result
        return self.async_show_form(
            step_id="user", data_schema=self._agents_schema(), errors=errors
        )

    def _agents_schema(self) -> vol.Schema:
        options = [
            SelectOptionDict(value=prefix, label=agent.label())
            for prefix, agent in sorted(self._found.items())
        ]
        options.append(SelectOptionDict(value=_MANUAL, label=_MANUAL))
        return vol.Schema(
            {
                vol.Required(CONF_AGENT): SelectSelector(
                    SelectSelectorConfig(
                        options=options,
                        mode=SelectSelectorMode.LIST,
                        translation_key="discovered_agent",
                    )
                )
            }
        )

    async def async_step_manual(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Enter an agent id and base topic."""
        errors: dict[str, str] = {}
        agent_id: str | None = None
        base = DEFAULT_BASE_TOPIC
        if user_input is not None:
            agent_id, base, errors = _read_topic_input(user_input)
            if not errors and (
                result := await self._async_add_checked(f"{base}/{agent_id}", errors)
            ):
                return result
        return self.async_show_form(
            step_id="manual", data_schema=_topic_schema(agent_id, base), errors=errors
        )

    async def _async_add_checked(
        self, prefix: str, errors: dict[str, str]
    ) -> ConfigFlowResult | None:
        """The new entry if the agent answers; else None with the reason in `errors`."""
        try:
            agent = await async_check_agent(self.hass, prefix)
        except AnnounceError as err:
            errors["base"] = err.reason
            return None
        # The user's choice wins over a discovery flow still open for the same box.
        await self.async_set_unique_id(agent.serial, raise_on_progress=False)
        self._abort_if_unique_id_configured()
        return self._create_entry(agent)

    def _create_entry(self, agent: FoundAgent) -> ConfigFlowResult:
        return self.async_create_entry(title=f"SBMS {agent.agent_id}", data=agent.entry_data())

    # --- reconfigure ------------------------------------------------------------------------

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Move the box to another base topic or agent id; it must stay the same box (serial)."""
        entry = self._get_reconfigure_entry()
        agent_id: str = entry.data[CONF_AGENT_ID]
        base = str(entry.data[CONF_TOPIC_PREFIX]).removesuffix(f"/{agent_id}")
        errors: dict[str, str] = {}
        if user_input is not None:
            agent_id, base, errors = _read_topic_input(user_input)
            if not errors:
                if problem := await async_mqtt_problem(self.hass):
                    return self.async_abort(reason=problem)
                try:
                    agent = await async_check_agent(self.hass, f"{base}/{agent_id}")
                except AnnounceError as err:
                    errors["base"] = err.reason
                else:
                    await self.async_set_unique_id(agent.serial, raise_on_progress=False)
                    self._abort_if_unique_id_mismatch(reason="wrong_agent")
                    return self.async_update_reload_and_abort(
                        entry, data_updates=agent.entry_data()
                    )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=_topic_schema(agent_id, base),
            errors=errors,
            description_placeholders={"agent_id": entry.data[CONF_AGENT_ID]},
        )


# --- options flow: the agent's settings -------------------------------------------------------


_MENU: Final = ("thresholds", "soc_alarms", "temperature", "dual_pv", "outputs", "load_shedding")


def setting_selector(setting: Setting, config: AgentConfig | None) -> NumberSelector:
    """A setting's field: the catalogue's unit and step, within the box's remote window
    around the value in force (`Setting.bounds`, as the number entity's range)."""
    low, high = setting.bounds(config)
    selector = NumberSelectorConfig(mode=NumberSelectorMode.BOX, step=setting.step, min=low)
    if high is not None:
        selector["max"] = high
    if setting.unit is not None:
        selector["unit_of_measurement"] = setting.unit
    return NumberSelector(selector)


def _settings_schema(
    settings: Sequence[Setting], values: Mapping[str, Any], config: AgentConfig
) -> vol.Schema:
    """A form of `settings`, each prefilled with `values[key]` when known."""
    fields: dict[Any, Any] = {}
    for setting in settings:
        value = values.get(setting.key)
        marker = (
            vol.Required(setting.key) if value is None else vol.Required(setting.key, default=value)
        )
        fields[marker] = setting_selector(setting, config)
    return vol.Schema(fields)


def _form_errors(result: RequestResult, fields: Mapping[str, str]) -> dict[str, str]:
    """Put each of the agent's errors on its form field (`fields`: agent path -> field)."""
    errors = {fields.get(error.field, "base"): "rejected" for error in result.errors}
    return errors or {"base": "rejected"}


class SbmsOptionsFlow(OptionsFlow):
    """Change the agent's thresholds and output types; applied only once the agent accepts."""

    def __init__(self) -> None:
        self._output: str | None = None
        self._output_type: int | None = None

    @property
    def _coordinator(self) -> SbmsCoordinator:
        entry: SbmsConfigEntry = self.config_entry
        return entry.runtime_data.coordinator

    @property
    def _config(self) -> AgentConfig:
        config = self._coordinator.data.config
        assert config is not None  # checked when the flow opened
        return config

    def _current(self, settings: Sequence[Setting]) -> dict[str, Any]:
        """The values in force, from the agent's retained config."""
        return {s.key: self._config.value(s.section, s.key) for s in settings}

    def _offered(self, settings: Sequence[Setting]) -> tuple[Setting, ...]:
        """The settings this agent has: one added later only when its config carries it."""
        return tuple(s for s in settings if s.offered_by(self._config))

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose what to change; only while the agent can answer."""
        if self.config_entry.state is not ConfigEntryState.LOADED:
            return self.async_abort(reason="not_loaded")
        data = self._coordinator.data
        if not data.available:
            return self.async_abort(reason="agent_offline")
        if not data.announce.config_set:
            return self.async_abort(reason="config_set_not_supported")
        if data.config is None:
            return self.async_abort(reason="config_unknown")
        menu = [item for item in _MENU if item != "outputs" or self._choosable_outputs()]
        return self.async_show_menu(step_id="init", menu_options=menu)

    async def async_step_thresholds(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_settings_step("thresholds", THRESHOLDS, user_input)

    async def async_step_soc_alarms(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_settings_step("soc_alarms", SOC_ALARMS, user_input)

    async def async_step_temperature(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_settings_step("temperature", TEMPERATURE, user_input)

    async def async_step_dual_pv(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        return await self._async_settings_step("dual_pv", DUAL_PV, user_input)

    async def _async_settings_step(
        self, step_id: str, settings: Sequence[Setting], user_input: dict[str, Any] | None
    ) -> ConfigFlowResult:
        """A form of settings; submitting sends the changed ones."""
        settings = self._offered(settings)
        values = self._current(settings)
        errors: dict[str, str] = {}
        reason = ""
        if user_input is not None:
            changes = _changes(settings, values, user_input)
            errors, reason = await self._async_send(changes, _paths(settings))
            if not errors:
                return self._finish()
            values = user_input  # show what the user asked for, to correct it
        return self.async_show_form(
            step_id=step_id,
            data_schema=_settings_schema(settings, values, self._config),
            errors=errors,
            description_placeholders={"reason": reason},
        )

    # --- outputs ----------------------------------------------------------------------------

    async def async_step_outputs(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick an output."""
        if user_input is not None:
            self._output = user_input[CONF_OUTPUT]
            return await self.async_step_output_type()
        options = [SelectOptionDict(value=name, label=name) for name in self._choosable_outputs()]
        schema = vol.Schema(
            {
                vol.Required(CONF_OUTPUT): SelectSelector(
                    SelectSelectorConfig(options=options, mode=SelectSelectorMode.LIST)
                )
            }
        )
        return self.async_show_form(step_id="outputs", data_schema=schema)

    def _choosable_outputs(self) -> list[str]:
        """Outputs whose wiring leaves a type to choose (every output with an older agent)."""
        return [o.name for o in self._coordinator.data.announce.outputs if o.type_choice]

    def _settable_types(self) -> tuple[int, ...]:
        """The types the chosen output may be given: the agent's `settable_types`."""
        assert self._output is not None
        output = self._coordinator.data.announce.output(self._output)
        return output.remote_types if output is not None else ()

    def _current_type(self) -> int:
        """The chosen output's type in force (read as the select reads it), else as announced
        when the configuration gives it no valid type."""
        assert self._output is not None
        data = self._coordinator.data
        in_force = output_type_in_force(data.config, data.announce, self._output)
        if in_force is not None:
            return in_force
        announced = data.announce.output(self._output)
        assert announced is not None  # only announced outputs are offered
        return announced.type

    async def async_step_output_type(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Pick the output's type; types without settings are sent at once."""
        assert self._output is not None
        current = self._current_type()
        errors: dict[str, str] = {}
        reason = ""
        chosen = current
        if user_input is not None:
            chosen = int(user_input[CONF_OUTPUT_TYPE])
            self._output_type = chosen
            if chosen in OUTPUT_TYPE_SETTINGS:
                return await self.async_step_output_settings()
            changes = self._type_change(chosen, current)
            errors, reason = await self._async_send(changes, {self._type_path(): CONF_OUTPUT_TYPE})
            if not errors:
                return self._finish()
        return self.async_show_form(
            step_id="output_type",
            data_schema=_output_type_schema(chosen, (*self._settable_types(), current)),
            errors=errors,
            description_placeholders={"output": self._output, "reason": reason},
        )

    async def async_step_output_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The settings the chosen type acts on; sent together with the type change."""
        assert self._output is not None
        assert self._output_type is not None
        settings = self._offered(OUTPUT_TYPE_SETTINGS[self._output_type])
        values = self._current(settings)
        errors: dict[str, str] = {}
        reason = ""
        if user_input is not None:
            current_type = self._current_type()
            changes = {
                **self._type_change(self._output_type, current_type),
                **_changes(settings, values, user_input),
            }
            errors, reason = await self._async_send(changes, _paths(settings))
            if not errors:
                return self._finish()
            values = user_input
        return self.async_show_form(
            step_id="output_settings",
            data_schema=_settings_schema(settings, values, self._config),
            errors=errors,
            description_placeholders={
                "output": self._output,
                "type": OUTPUT_TYPE_NAMES[self._output_type],
                "reason": reason,
            },
        )

    def _type_change(self, chosen: int, current: int) -> dict[str, Any]:
        assert self._output is not None
        if chosen == current:
            return {}
        return {"outputs": {self._output: {"type": chosen}}}

    def _type_path(self) -> str:
        return f"config.outputs.{self._output}.type"

    # --- load shedding: Home Assistant's own option, kept in the entry ------------------------

    async def async_step_load_shedding(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Whether shedding decides on the low side of the SoC's band (issue 16)."""
        options = self.config_entry.options
        if user_input is not None:
            return self.async_create_entry(
                data={**options, CONF_PESSIMISTIC_SOC: bool(user_input[CONF_PESSIMISTIC_SOC])}
            )
        current = bool(options.get(CONF_PESSIMISTIC_SOC, DEFAULT_PESSIMISTIC_SOC))
        schema = vol.Schema(
            {vol.Required(CONF_PESSIMISTIC_SOC, default=current): BooleanSelector()}
        )
        return self.async_show_form(step_id="load_shedding", data_schema=schema)

    # --- sending ----------------------------------------------------------------------------

    async def _async_send(
        self, changes: dict[str, Any], fields: Mapping[str, str]
    ) -> tuple[dict[str, str], str]:
        """Send `changes` in one config/set: (form errors, the agent's reason); no errors = ok."""
        if not changes:
            return {}, ""  # nothing to change: no request
        try:
            await self._coordinator.async_set_config(changes)
        except AgentRejectedError as err:
            return _form_errors(err.result, fields), err.result.describe()
        except AgentRequestError:
            return {"base": "agent_unavailable"}, ""
        return {}, ""

    def _finish(self) -> ConfigFlowResult:
        # The agent's retained config is the record of what is applied: nothing to store.
        return self.async_create_entry(data=dict(self.config_entry.options))


def _changes(
    settings: Sequence[Setting], values: Mapping[str, Any], user_input: Mapping[str, Any]
) -> dict[str, dict[str, Any]]:
    """Only the settings whose submitted value differs from the one in force, by section."""
    changes: dict[str, dict[str, Any]] = {}
    for setting in settings:
        wanted = user_input.get(setting.key)
        if wanted is not None and wanted != values.get(setting.key):
            changes.setdefault(setting.section, {})[setting.key] = wanted
    return changes


def _paths(settings: Sequence[Setting]) -> dict[str, str]:
    return {setting.path: setting.key for setting in settings}


def _output_type_schema(current: int, types: Sequence[int]) -> vol.Schema:
    """A choice of `types` (the output's settable ones and the one in force), by number."""
    options = [str(number) for number in sorted({*types, current})]
    return vol.Schema(
        {
            vol.Required(CONF_OUTPUT_TYPE, default=str(current)): SelectSelector(
                SelectSelectorConfig(
                    options=options,
                    mode=SelectSelectorMode.DROPDOWN,
                    translation_key=CONF_OUTPUT_TYPE,
                )
            )
        }
    )


# --- subentries: the loads of load shedding and of surplus loads (issue 19) -----------------

# Anything with turn_on/turn_off services; climate and water heaters switch their mode off.
LOAD_DOMAINS: Final = [
    "switch",
    "light",
    "fan",
    "climate",
    "water_heater",
    "input_boolean",
    "humidifier",
    "media_player",
    "siren",
]


def _box(maximum: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=0, max=maximum, step=1, unit_of_measurement=unit, mode=NumberSelectorMode.BOX
        )
    )


def _load_and_priority(values: Mapping[str, Any]) -> dict[vol.Required, Any]:
    """The first two fields of either kind's form."""
    return {
        vol.Required(
            CONF_LOAD_ENTITY, default=values.get(CONF_LOAD_ENTITY, vol.UNDEFINED)
        ): EntitySelector(EntitySelectorConfig(domain=LOAD_DOMAINS)),
        vol.Required(CONF_PRIORITY, default=values[CONF_PRIORITY]): NumberSelector(
            NumberSelectorConfig(
                min=PRIORITY_MIN, max=PRIORITY_MAX, step=1, mode=NumberSelectorMode.BOX
            )
        ),
    }


def _minutes() -> NumberSelector:
    return _box(MIN_TIME_MAX_S / 60, UnitOfTime.MINUTES)


class SwitchedLoadSubentryFlow(ConfigSubentryFlow):
    """Add or change one load of a kind (switched_loads.py); a kind says its subentry type,
    defaults, form and checks. An entity is a load of one kind only, so the two kinds never
    fight over one switch. Saving reloads the box (shedding_manager.py)."""

    SUBENTRY_TYPE: ClassVar[str]
    OTHER_TYPE: ClassVar[str]  # the other kind
    OTHER_ERROR: ClassVar[str]  # the error when the entity is a load of the other kind
    DEFAULTS: ClassVar[Mapping[str, Any]]

    def _schema(self, values: Mapping[str, Any]) -> vol.Schema:
        raise NotImplementedError

    def _settings_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        """The kind's checks of the settings (field -> key)."""
        raise NotImplementedError

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> SubentryFlowResult:
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = self._validate(user_input, exclude=None)
            if not errors:
                return self.async_create_entry(
                    title=self._title(data[CONF_LOAD_ENTITY]),
                    data=data,
                    unique_id=data[CONF_LOAD_ENTITY],
                )
        return self.async_show_form(
            step_id="user",
            data_schema=self._schema({**self.DEFAULTS, **(user_input or {})}),
            errors=errors,
            description_placeholders=_entity_placeholder(user_input),
        )

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> SubentryFlowResult:
        subentry = self._get_reconfigure_subentry()
        errors: dict[str, str] = {}
        if user_input is not None:
            data, errors = self._validate(user_input, exclude=subentry.subentry_id)
            if not errors:
                return self.async_update_and_abort(
                    self._get_entry(),
                    subentry,
                    title=self._title(data[CONF_LOAD_ENTITY]),
                    data=data,
                    unique_id=data[CONF_LOAD_ENTITY],
                )
        return self.async_show_form(
            step_id="reconfigure",
            data_schema=self._schema({**self.DEFAULTS, **subentry.data, **(user_input or {})}),
            errors=errors,
            description_placeholders=_entity_placeholder(user_input),
        )

    def _validate(
        self, user_input: Mapping[str, Any], *, exclude: str | None
    ) -> tuple[dict[str, Any], dict[str, str]]:
        """The subentry data and the form's errors (field -> key)."""
        data = {**self.DEFAULTS, **user_input}
        errors = self._settings_errors(data)
        entity_id = str(data[CONF_LOAD_ENTITY])
        entry = self._get_entry()
        if _configured_as(entry, self.SUBENTRY_TYPE, entity_id, exclude=exclude):
            errors[CONF_LOAD_ENTITY] = "load_already_configured"
        elif _configured_as(entry, self.OTHER_TYPE, entity_id):
            errors[CONF_LOAD_ENTITY] = self.OTHER_ERROR
        data[CONF_PRIORITY] = int(data[CONF_PRIORITY])
        return data, errors

    def _title(self, entity_id: str) -> str:
        state = self.hass.states.get(entity_id)
        return state.name if state is not None else entity_id


def _entity_placeholder(user_input: Mapping[str, Any] | None) -> dict[str, str]:
    """The chosen entity, named in the errors ("... is already a surplus load")."""
    return {"entity": str((user_input or {}).get(CONF_LOAD_ENTITY, ""))}


def _configured_as(
    entry: ConfigEntry, subentry_type: str, entity_id: str, *, exclude: str | None = None
) -> bool:
    """Whether `entity_id` is already one of the entry's loads of `subentry_type` (other than
    the subentry `exclude`, the one being changed)."""
    return any(
        subentry.subentry_type == subentry_type
        and subentry.data.get(CONF_LOAD_ENTITY) == entity_id
        and subentry.subentry_id != exclude
        for subentry in entry.subentries.values()
    )


class LoadSubentryFlow(SwitchedLoadSubentryFlow):
    """Add or change one optional load (load_shedding.py)."""

    SUBENTRY_TYPE = SUBENTRY_LOAD
    OTHER_TYPE = SUBENTRY_SURPLUS_LOAD
    OTHER_ERROR = "load_is_surplus"
    DEFAULTS = MappingProxyType(
        {
            CONF_PRIORITY: 10,
            CONF_SHED_BELOW: 30,
            CONF_RESTORE_ABOVE: 50,
            CONF_MIN_OFF_TIME: 10,
            CONF_MIN_ON_TIME: 5,
        }
    )

    def _schema(self, values: Mapping[str, Any]) -> vol.Schema:
        return vol.Schema(
            {
                **_load_and_priority(values),
                vol.Required(CONF_SHED_BELOW, default=values[CONF_SHED_BELOW]): _box(
                    100, PERCENTAGE
                ),
                vol.Required(CONF_RESTORE_ABOVE, default=values[CONF_RESTORE_ABOVE]): _box(
                    100, PERCENTAGE
                ),
                vol.Required(CONF_MIN_OFF_TIME, default=values[CONF_MIN_OFF_TIME]): _minutes(),
                vol.Required(CONF_MIN_ON_TIME, default=values[CONF_MIN_ON_TIME]): _minutes(),
            }
        )

    def _settings_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        return settings_errors(
            priority=float(data[CONF_PRIORITY]),
            shed_below=float(data[CONF_SHED_BELOW]),
            restore_above=float(data[CONF_RESTORE_ABOVE]),
            min_off_s=float(data[CONF_MIN_OFF_TIME]) * 60,
            min_on_s=float(data[CONF_MIN_ON_TIME]) * 60,
        )


class SurplusLoadSubentryFlow(SwitchedLoadSubentryFlow):
    """Add or change one surplus load (issue 19, surplus_loads.py)."""

    SUBENTRY_TYPE = SUBENTRY_SURPLUS_LOAD
    OTHER_TYPE = SUBENTRY_LOAD
    OTHER_ERROR = "load_is_shed"
    DEFAULTS = MappingProxyType(
        {
            CONF_PRIORITY: 10,
            CONF_MIN_SOC: 90,
            CONF_MAX_DISCHARGE_POWER: 100,
            CONF_DISCHARGE_TIME: 120,
            CONF_MIN_ON_TIME: 5,
            CONF_MIN_OFF_TIME: 10,
        }
    )

    def _schema(self, values: Mapping[str, Any]) -> vol.Schema:
        return vol.Schema(
            {
                **_load_and_priority(values),
                vol.Required(CONF_MIN_SOC, default=values[CONF_MIN_SOC]): _box(100, PERCENTAGE),
                vol.Required(
                    CONF_MAX_DISCHARGE_POWER, default=values[CONF_MAX_DISCHARGE_POWER]
                ): _box(DISCHARGE_W_MAX, UnitOfPower.WATT),
                vol.Required(CONF_DISCHARGE_TIME, default=values[CONF_DISCHARGE_TIME]): _box(
                    DISCHARGE_TIME_MAX_S, UnitOfTime.SECONDS
                ),
                vol.Required(CONF_MIN_ON_TIME, default=values[CONF_MIN_ON_TIME]): _minutes(),
                vol.Required(CONF_MIN_OFF_TIME, default=values[CONF_MIN_OFF_TIME]): _minutes(),
            }
        )

    def _settings_errors(self, data: Mapping[str, Any]) -> dict[str, str]:
        return surplus_settings_errors(
            priority=float(data[CONF_PRIORITY]),
            min_soc=float(data[CONF_MIN_SOC]),
            max_discharge_w=float(data[CONF_MAX_DISCHARGE_POWER]),
            discharge_s=float(data[CONF_DISCHARGE_TIME]),
            min_on_s=float(data[CONF_MIN_ON_TIME]) * 60,
            min_off_s=float(data[CONF_MIN_OFF_TIME]) * 60,
        )
