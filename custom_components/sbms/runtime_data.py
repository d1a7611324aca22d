"""Everything one loaded config entry owns (`SbmsRuntimeData`), and the entry's type.

The top of the integration's layers below the platforms and `__init__.py`: it names the
coordinator, the managers of switched loads and the back-fill, and none of them imports it
back (they take a plain `ConfigEntry`), so the modules import one way only
(docs/architecture.md, "The integration's modules").
"""

from __future__ import annotations

from dataclasses import dataclass, field

from homeassistant.config_entries import ConfigEntry

from .backfill import HistoryBackfill
from .coordinator import HoldDuration, SbmsCoordinator
from .shedding_manager import SheddingManager
from .surplus_manager import SurplusManager


@dataclass(slots=True)
class SbmsRuntimeData:
    """What one loaded config entry owns; nothing of it is kept in `hass.data`."""

    coordinator: SbmsCoordinator
    shedding: SheddingManager
    surplus: SurplusManager
    hold: HoldDuration = field(default_factory=HoldDuration)
    # None without the recorder (no long-term statistics to fill); set once the platforms
    # exist, because it finds the sensors' entities in the registry.
    backfill: HistoryBackfill | None = None


SbmsConfigEntry = ConfigEntry[SbmsRuntimeData]
