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


@pytest.fixture
def allow_unix_sockets() -> None:
    """connect() to Unix domain sockets, for tests that serve a simulated box's bus.

    Home Assistant's test plugin lets connect() reach 127.0.0.1 only, also with
    `socket_enabled`; pytest-socket restores connect() after each test. The Python 3.11 run
    has no such plugin and needs nothing.
    """
    try:
        import pytest_socket  # type: ignore[import-untyped,unused-ignore]
    except ImportError:
        return
    pytest_socket.socket_allow_hosts(["127.0.0.1"], allow_unix_socket=True)
