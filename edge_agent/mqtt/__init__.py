"""The agent's MQTT protocol and link (protocol v1, docs/protocol.md).

Pure, never touching a socket, a file or a clock, so the contract is tested without a broker:
`topics.py` (names), `payloads.py` (what is published), `requests.py` (what may be asked),
`handlers.py` (the interfaces that answer requests, implemented by the runtime), `policy.py`
(when state is published), `limits.py` (request rates and log budgets), `ha_discovery.py`,
`outbox.py` (what the link publishes and when), `router.py` (what an incoming message is and
where its answer goes). `client.py` is the link itself: the one module that connects to the
broker, in its own task, so the control loop never waits on it. Nothing here imports the
runtime.
"""

from __future__ import annotations

PROTOCOL_VERSION = 1
DEFAULT_BASE = "sbms"
