"""Constants shared by the SBMS integration."""

from __future__ import annotations

import logging
from typing import Final

DOMAIN: Final = "sbms"
LOGGER: Final = logging.getLogger(__package__)

CONF_AGENT_ID: Final = "agent_id"
# The announced serial: the box's stable identity (config entry, device and entity unique ids).
CONF_SERIAL: Final = "serial"
# Topic prefix of one agent, `<base>/<agent_id>` (the base is configurable on the agent).
CONF_TOPIC_PREFIX: Final = "topic_prefix"
CONF_BASE_TOPIC: Final = "base_topic"
DEFAULT_BASE_TOPIC: Final = "sbms"

# Agent ids appear in MQTT topics (sbms/<agent_id>/...): the same rule as the agent's config.
AGENT_ID_PATTERN: Final = r"^[A-Za-z0-9_-]{1,64}$"

# The protocol versions this integration understands (docs/protocol.md).
SUPPORTED_PROTOCOL_VERSIONS: Final = frozenset({1})

# How long to wait for the agent's answer to config/set or a command.
REQUEST_TIMEOUT_S: Final = 10.0
# How long the config flow listens for retained announcements.
DISCOVERY_LISTEN_S: Final = 2.0
# How long setup and the config flow wait for one agent's retained announce (and status): a
# retained message arrives at once, an agent that is just starting needs a moment.
AGENT_CHECK_S: Final = 5.0

# Repair issue thresholds.
CELL_IMBALANCE_REPAIR_V: Final = 0.1
CELL_IMBALANCE_REPAIR_AFTER_S: Final = 30 * 60.0

# Bus event fired for every agent event (and agent offline/online); device triggers listen to it.
EVENT_SBMS: Final = f"{DOMAIN}_event"
ATTR_DEVICE_ID: Final = "device_id"
ATTR_KIND: Final = "kind"

# Agent event kinds (docs/protocol.md "event") plus the integration's own availability kinds.
AGENT_EVENT_KINDS: Final = (
    "hvd_trip",
    "hvd_release",
    "lvd_trip",
    "lvd_release",
    "high_soc_alarm",
    "high_soc_clear",
    "low_soc_alarm",
    "low_soc_clear",
    "fault_raised",
    "fault_cleared",
    "dual_pv_level",
    "soc_sync",
)
KIND_AGENT_OFFLINE: Final = "agent_offline"
KIND_AGENT_ONLINE: Final = "agent_online"

# EXTIO output types, as on the SBMS0 (docs/protocol.md "announce"), and 7, PV diversion (the
# agent's extension beyond the SBMS0's 0-6: a DSSR20's heat path, added within protocol 1).
OUTPUT_TYPE_NAMES: Final = (
    "unused",
    "hvd",
    "lvd",
    "high_soc",
    "low_soc",
    "fault",
    "dual_pv",
    "diversion",
)
OUTPUT_TYPE_FAULT: Final = 5
OUTPUT_TYPE_DUAL_PV: Final = 6

# "Hold <output> off" (switch.py) holds for the "Hold duration" number's time, a Home Assistant
# setting. force_off takes 1 s to 7 days; a default of 8 hours covers "keep the loads off
# tonight" and bounds a forgotten hold to one working day.
HOLD_DURATION_DEFAULT_H: Final = 8.0
HOLD_DURATION_MIN_H: Final = 0.25
HOLD_DURATION_MAX_H: Final = 168.0  # 604800 s, the agent's limit for force_off

# Optional-load shedding (load_shedding.py, shedding_manager.py): one subentry per load.
SUBENTRY_LOAD: Final = "load"
CONF_LOAD_ENTITY: Final = "entity_id"
CONF_PRIORITY: Final = "priority"
CONF_SHED_BELOW: Final = "shed_below"
CONF_RESTORE_ABOVE: Final = "restore_above"
# Entry option: decide on the low side of the SoC's band, max(0, soc - soc_uncertainty)
# (issue 16). Read with a default, so entries from before it need no migration.
CONF_PESSIMISTIC_SOC: Final = "pessimistic_soc"
DEFAULT_PESSIMISTIC_SOC: Final = False
# Minimum times are entered in minutes.
CONF_MIN_OFF_TIME: Final = "min_off_time"
CONF_MIN_ON_TIME: Final = "min_on_time"
# Bus event fired for each shed and restore; the logbook platform describes it.
EVENT_LOAD_SHEDDING: Final = f"{DOMAIN}_load_shedding"
ATTR_ACTION: Final = "action"
ATTR_REASON: Final = "reason"
ATTR_LOAD: Final = "load"

# Surplus loads (issue 19: surplus_loads.py, surplus_manager.py): one subentry per load, a
# subentry type of its own beside `load` (a load is one or the other, never both).
SUBENTRY_SURPLUS_LOAD: Final = "surplus_load"
CONF_MIN_SOC: Final = "min_soc"
CONF_MAX_DISCHARGE_POWER: Final = "max_discharge_power"
# Seconds (the minimum on/off times stay in minutes, as for shedding).
CONF_DISCHARGE_TIME: Final = "discharge_time"
# Bus event fired for each switching of a surplus load; the logbook platform describes it.
EVENT_SURPLUS_LOAD: Final = f"{DOMAIN}_surplus_load"
