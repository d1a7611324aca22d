"""Shared test setup.

Home Assistant's loader puts its own testing config dir (which has a `custom_components`
package of its own) first on sys.path; importing ours now makes HA find the `sbms`
integration. Only when HA is installed: the Python 3.11 agent run has no HA.
"""

from __future__ import annotations

import importlib.util

import pytest

if importlib.util.find_spec("homeassistant") is not None:
    import custom_components.sbms  # noqa: F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The slow tests (marker `slow`, 30 s or more each) first: pytest-xdist hands tests out
    in this order, so both workers start on them at once instead of one finishing them at the
    end."""
    items.sort(key=lambda item: item.get_closest_marker("slow") is None)
