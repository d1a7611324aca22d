"""Topic names of protocol v1: everything lives under `<base>/<agent_id>/`."""

from __future__ import annotations

import re

from edge_agent.mqtt import DEFAULT_BASE

# A topic level the agent builds must not contain MQTT wildcards or separators; the base may
# have several levels ("site1/sbms") but no empty ones.
_LEVEL = re.compile(r"^[^/+#\x00]+$")
_COMMAND_NAME = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _check_base(base: str) -> str:
    levels = base.split("/")
    if not all(_LEVEL.match(level) for level in levels):
        raise ValueError(f"MQTT base {base!r}: levels must be non-empty, without '+', '#'")
    return base


class Topics:
    """Every topic one agent uses. `base` defaults to "sbms" (see the `mqtt` config)."""

    def __init__(self, base: str = DEFAULT_BASE, agent_id: str = "sbms") -> None:
        _check_base(base)
        if not _LEVEL.match(agent_id):
            raise ValueError(f"agent id {agent_id!r} cannot be a topic level")
        self.base = base
        self.agent_id = agent_id
        self.root = f"{base}/{agent_id}"

    def _topic(self, suffix: str) -> str:
        return f"{self.root}/{suffix}"

    @property
    def status(self) -> str:
        return self._topic("status")

    @property
    def announce(self) -> str:
        return self._topic("announce")

    @property
    def state(self) -> str:
        return self._topic("state")

    @property
    def config(self) -> str:
        return self._topic("config")

    @property
    def config_set(self) -> str:
        return self._topic("config/set")

    @property
    def config_result(self) -> str:
        return self._topic("config/result")

    @property
    def event(self) -> str:
        return self._topic("event")

    @property
    def history_get(self) -> str:
        return self._topic("history/get")

    @property
    def history_result(self) -> str:
        return self._topic("history/result")

    @property
    def reply_prefix(self) -> str:
        """Where a request's MQTT 5 response topic may point: `<root>/reply/...`, a tree of
        its own, so an answer can never pose as telemetry, a result or discovery."""
        return self._topic("reply/")

    def response_topic_problem(self, topic: str) -> str | None:
        """Why a requested response topic is refused, or None if it is allowed."""
        prefix = self.reply_prefix
        rest = topic[len(prefix) :] if topic.startswith(prefix) else None
        if rest is None or not rest or any(char in topic for char in "+#\x00"):
            shown = topic if len(topic) <= 80 else topic[:77] + "..."
            return f"must be below {prefix} (got {shown!r})"
        if not all(_LEVEL.match(level) for level in rest.split("/")):
            return f"must be below {prefix}, without empty levels (got {topic!r:.80})"
        return None

    @property
    def command_wildcard(self) -> str:
        return self._topic("cmd/+")

    def command(self, name: str) -> str:
        return self._topic(f"cmd/{_check_command(name)}")

    def command_result(self, name: str) -> str:
        return self._topic(f"cmd/{_check_command(name)}/result")

    def parse_command_topic(self, topic: str) -> str | None:
        """The command name of an incoming `cmd/<name>` topic; None for any other topic.

        The name is returned even when it is not a known command (the agent answers "unknown
        command" on its result topic), but only if it is a safe single topic level.
        """
        prefix = self._topic("cmd/")
        if not topic.startswith(prefix):
            return None
        name = topic[len(prefix) :]
        return name if _COMMAND_NAME.match(name) else None

    def as_dict(self) -> dict[str, str]:
        """The topic map published in the announce payload; `{name}` marks the command."""
        return {
            "status": self.status,
            "announce": self.announce,
            "state": self.state,
            "config": self.config,
            "config_set": self.config_set,
            "config_result": self.config_result,
            "event": self.event,
            "command": self._topic("cmd/{name}"),
            "command_result": self._topic("cmd/{name}/result"),
            "history_get": self.history_get,
            "history_result": self.history_result,
            "reply": self._topic("reply/{name}"),
        }


def _check_command(name: str) -> str:
    if not _COMMAND_NAME.match(name):
        raise ValueError(f"command name {name!r}: 1 to 64 letters, digits, '_' or '-'")
    return name
