"""Home Assistant fixtures for the integration tests (pytest-homeassistant-custom-component)."""

from __future__ import annotations

from typing import Any

import pytest


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: Any) -> None:
    """HA ignores custom_components/ in tests unless this fixture is requested."""
