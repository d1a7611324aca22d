"""The agent's remotely adjustable settings, described once: the number entities and the
settings form (the options flow) both read this catalogue.

Each `Setting` is one key of one section of the agent's configuration (`config/set`), with its
unit and the integration's own limits and step. The limits are only what the agent could ever
accept; the box's `remote_window` narrows each range (`Setting.bounds`), and the rules across
values (uvlo < lvd < lvd_reconnect < hvd_reconnect < eoc <= hvd < ovlo, release levels inside
their alarms, ...) stay with the agent, which rejects a change that breaks them and says why.
The integration ships without the agent, so none of this is imported from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from homeassistant.const import (
    PERCENTAGE,
    UnitOfElectricCurrent,
    UnitOfElectricPotential,
    UnitOfTemperature,
    UnitOfTime,
)

from .const import OUTPUT_TYPE_NAMES
from .models import AgentConfig, Announce


@dataclass(frozen=True, slots=True, kw_only=True)
class Setting:
    """One remotely adjustable setting: `section.key` in the agent's configuration."""

    section: str
    key: str
    unit: str | None
    minimum: float
    # None: no upper limit on the form (a number entity needs one and uses `entity_maximum`)
    maximum: float | None
    step: float
    # Added within protocol version 1: offered only when the agent's config has it, so an
    # older agent is never sent a key it does not know.
    added_later: bool = False

    @property
    def path(self) -> str:
        """The field name the agent uses in a rejection."""
        return f"config.{self.section}.{self.key}"

    def value(self, config: AgentConfig) -> float | None:
        """The value in force, None when absent or not a number."""
        value = config.value(self.section, self.key)
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        return float(value)

    def offered_by(self, config: AgentConfig) -> bool:
        """Whether this agent has the setting (one added later only when its config has it)."""
        return not self.added_later or config.value(self.section, self.key) is not None

    def bounds(self, config: AgentConfig | None) -> tuple[float, float | None]:
        """The range a change may take: the box's remote window, else the limits here.

        The range also takes in the value in force: the file may put a setting outside the
        window, and the agent accepts it unchanged, so Home Assistant must too.
        """
        window = None if config is None else config.remote_window(self.section, self.key)
        if window is None:
            return self.minimum, self.maximum
        low, high = window
        if config is not None and (in_force := self.value(config)) is not None:
            low, high = min(low, in_force), max(high, in_force)
        return low, high


@dataclass(frozen=True, slots=True)
class _Range:
    """What a group of settings shares: unit, limits and step."""

    unit: str | None
    minimum: float
    maximum: float | None
    step: float

    def of(self, section: str, keys: str, *, added_later: bool = False) -> tuple[Setting, ...]:
        """The settings `keys` (space-separated, in this order) of `section`."""
        return tuple(
            Setting(
                section=section,
                key=key,
                unit=self.unit,
                minimum=self.minimum,
                maximum=self.maximum,
                step=self.step,
                added_later=added_later,
            )
            for key in keys.split()
        )


# 1 mV: the resolution the agent publishes cells in.
_CELL_VOLTAGE: Final = _Range(UnitOfElectricPotential.VOLT, 2.0, 4.3, 0.001)
# How long a limit's condition must hold before it trips (the LFP envelope's longest: 30 s).
_TRIP_DELAY: Final = _Range(UnitOfTime.SECONDS, 0.0, 30.0, 0.1)
_PERCENT: Final = _Range(PERCENTAGE, 0.0, 100.0, 0.1)
_TEMPERATURE: Final = _Range(UnitOfTemperature.CELSIUS, -40.0, 125.0, 0.1)

_ALL: Final = (
    # Highest voltage first, as the levels stack up on a cell.
    *_CELL_VOLTAGE.of("thresholds", "ovlo hvd eoc hvd_reconnect lvd_reconnect lvd uvlo"),
    *_TRIP_DELAY.of(
        "thresholds", "ovlo_delay_s hvd_delay_s lvd_delay_s uvlo_delay_s", added_later=True
    ),
    *_PERCENT.of("soc_alarms", "high high_release low_release low"),
    *_TEMPERATURE.of("temperature", "charge_min charge_max"),
    *_Range(UnitOfTemperature.CELSIUS, 0.0, 50.0, 0.1).of("temperature", "charge_hysteresis"),
    *_TEMPERATURE.of("temperature", "discharge_min discharge_max", added_later=True),
    *_TEMPERATURE.of("temperature", "internal_cutoff internal_release"),
    # The agent only asks imax > 0; no charge path of a DIY box carries more than 1000 A.
    *_Range(UnitOfElectricCurrent.AMPERE, 0.1, 1000.0, 0.1).of("dual_pv", "imax"),
    *_Range(None, 0.0, None, 0.01).of(
        "dual_pv", "up_to_l2_fraction up_to_l3_fraction down_fraction"
    ),
    *_Range(UnitOfTime.SECONDS, 0.0, None, 1.0).of("dual_pv", "min_level_hold_s"),
    *_Range(PERCENTAGE, 10.0, 100.0, 1.0).of("max_soc", "max_soc"),
    # The agent publishes at least this often (0 < interval_s <= 3600).
    *_Range(UnitOfTime.SECONDS, 1.0, 3600.0, 1.0).of("publish", "interval_s"),
)

# Every setting by `section.key`.
SETTINGS: Final[Mapping[str, Setting]] = {f"{s.section}.{s.key}": s for s in _ALL}


def settings_of(section: str, *keys: str) -> tuple[Setting, ...]:
    """The settings of one section, in the order given (all of the section without keys)."""
    if keys:
        return tuple(SETTINGS[f"{section}.{key}"] for key in keys)
    return tuple(s for s in _ALL if s.section == section)


# The pages of the settings form, and the settings each output type acts on (by type
# number; unused and fault have none).
THRESHOLDS: Final = settings_of("thresholds")
SOC_ALARMS: Final = settings_of("soc_alarms")
TEMPERATURE: Final = settings_of("temperature")
DUAL_PV: Final = settings_of("dual_pv")
_DUAL_PV_LEVELS: Final = settings_of(
    "dual_pv", "imax", "up_to_l2_fraction", "up_to_l3_fraction", "down_fraction"
)
OUTPUT_TYPE_SETTINGS: Final[Mapping[int, tuple[Setting, ...]]] = {
    1: settings_of("thresholds", "hvd", "hvd_reconnect"),
    2: settings_of("thresholds", "lvd_reconnect", "lvd"),
    3: settings_of("soc_alarms", "high", "high_release"),
    4: settings_of("soc_alarms", "low_release", "low"),
    6: _DUAL_PV_LEVELS,
}


def output_type(value: Any) -> int | None:
    """A valid output type number (0-7), None for anything else (true/false included)."""
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value if 0 <= value < len(OUTPUT_TYPE_NAMES) else None


def output_type_in_force(config: AgentConfig | None, announce: Announce, output: str) -> int | None:
    """The output's type in the configuration in force, else as announced, else None."""
    if config is not None:
        for item in config.data.get("outputs", []):
            if isinstance(item, dict) and item.get("name") == output:
                return output_type(item.get("type"))
    announced = announce.output(output)
    return announced.type if announced is not None else None
