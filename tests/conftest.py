"""Shared test setup.

Home Assistant's loader puts its own testing config dir (which has a `custom_components`
package of its own) first on sys.path; importing ours now makes HA find the `sbms`
integration. Only when HA is installed: the Python 3.11 agent run has no HA.
"""

from __future__ import annotations

import importlib.util

if importlib.util.find_spec("homeassistant") is not None:
    import custom_components.sbms  # noqa: F401
