"""The agent's MQTT link: topics, payloads and publishing policy (protocol v1, docs/protocol.md).

The modules here are pure: they build and judge messages and never touch a socket, so the
contract can be tested without a broker and the control loop never waits on them.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
DEFAULT_BASE = "sbms"
MAX_REQUEST_BYTES = 16384
