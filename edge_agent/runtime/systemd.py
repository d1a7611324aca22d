"""systemd's service notification protocol (sd_notify): READY, the watchdog keep-alive, STOPPING.

One datagram per message to the AF_UNIX socket named by $NOTIFY_SOCKET ("@..." = Linux
abstract namespace), as sd_notify(3) describes. Written here with the socket module: the
protocol is one datagram, the `sdnotify` package has had no release since 2017 and swallows
every error, and `systemd-python` needs libsystemd to build. Outside systemd (no
$NOTIFY_SOCKET) every call does nothing.

The control loop sends WATCHDOG=1 after each decided sample (`runtime.loop.run_agent`), so a
loop that hangs, even while other threads live, misses its keep-alive and systemd kills and
restarts the agent (`WatchdogSec=` in packaging/systemd/sbms-agent.service).
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

_LOGGER = logging.getLogger(__name__)


class SystemdNotifier:
    """Sends notifications to the service manager; never raises."""

    def __init__(self, environ: Mapping[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):
            address = "\0" + address[1:]
        self._address = address or None
        self._socket: socket.socket | None = None
        self._failed = False
        self.watchdog_usec = _watchdog_usec(env)

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def ready(self, status: str = "") -> None:
        self.notify("READY=1" + (f"\nSTATUS={status}" if status else ""))

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def notify(self, message: str) -> None:
        if self._address is None:
            return
        try:
            if self._socket is None:
                self._socket = socket.socket(
                    socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                )
            self._socket.sendto(message.encode(), self._address)
        except OSError as error:
            if not self._failed:  # once: a missing socket would otherwise log every second
                _LOGGER.error(
                    "Could not notify systemd (%s): %s", message.partition("\n")[0], error
                )
            self._failed = True
        else:
            self._failed = False

    def close(self) -> None:
        if self._socket is not None:
            self._socket.close()
            self._socket = None


def _watchdog_usec(env: Mapping[str, str]) -> int | None:
    """WatchdogSec= as systemd passes it, when it is meant for this process."""
    pid = env.get("WATCHDOG_PID")
    if pid is not None and pid != str(os.getpid()):
        return None
    try:
        usec = int(env.get("WATCHDOG_USEC", ""))
    except ValueError:
        return None
    return usec if usec > 0 else None
