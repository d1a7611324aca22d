"""Fixtures for the agent's tests."""

from __future__ import annotations

import contextlib

import pytest


@pytest.fixture
def allow_sockets(request: pytest.FixtureRequest) -> None:
    """Loopback sockets for tests that start a real broker.

    pytest-socket (pulled in with Home Assistant's test plugin on Python 3.13) blocks sockets by
    default; the Python 3.11 run has no such plugin and needs nothing.
    """
    with contextlib.suppress(pytest.FixtureLookupError):
        request.getfixturevalue("socket_enabled")
