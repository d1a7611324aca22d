"""Headless Chromium driven over the DevTools protocol: open a page, read its text through
every shadow root (Home Assistant's frontend is web components all the way down), screenshot."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import itertools
import os
import shutil
import signal
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--hide-scrollbars",
    "--remote-debugging-address=127.0.0.1",
    "--remote-debugging-port=0",
)

# All text under `root`, shadow roots included, one text node per line.
PAGE_TEXT_JS = """
(() => {
  const parts = [];
  const walk = (node) => {
    if (node.nodeType === Node.TEXT_NODE) {
      const text = node.textContent.trim();
      if (text) parts.push(text);
      return;
    }
    if (["STYLE", "SCRIPT", "TEMPLATE"].includes(node.nodeName)) return;
    if (node.shadowRoot) walk(node.shadowRoot);
    for (const child of node.childNodes) walk(child);
  };
  walk(document);
  return parts.join("\\n");
})()
"""


# What Chromium answers when the page navigates (Home Assistant's login redirect) while a
# script runs in it: the script's page is gone, a retry runs in the new one.
NAVIGATION_ERRORS = ("Inspected target navigated or closed", "Execution context was destroyed")


class PageNavigatedError(RuntimeError):
    """The page navigated away while a call ran in it."""


def chromium_binary() -> str | None:
    for name in CHROMIUM_NAMES:
        if found := shutil.which(name):
            return found
    return None


def chromium_or_fail() -> str:
    """The browser, or a failure saying how to install it (a skip only where the machine
    cannot have one: SBMS_ALLOW_NO_CHROMIUM=1)."""
    binary = chromium_binary()
    if binary is not None:
        return binary
    if os.environ.get("SBMS_ALLOW_NO_CHROMIUM") == "1":
        pytest.skip("no chromium, and SBMS_ALLOW_NO_CHROMIUM=1 says this machine cannot have it")
    pytest.fail(
        "chromium is not installed: run scripts/test as root (it installs it) or "
        "'apt-get install -y chromium'; SBMS_ALLOW_NO_CHROMIUM=1 skips this test instead"
    )


class DevToolsPage:
    """One page target over its DevTools websocket."""

    def __init__(self, socket: aiohttp.ClientWebSocketResponse) -> None:
        self._socket = socket
        self._ids = itertools.count(1)

    async def call(self, method: str, **params: Any) -> dict[str, Any]:
        message_id = next(self._ids)
        await self._socket.send_json({"id": message_id, "method": method, "params": params})
        while True:
            reply = await self._socket.receive_json()
            if reply.get("id") != message_id:
                continue  # an event
            if "error" in reply:
                message = str(reply["error"].get("message", ""))
                if any(marker in message for marker in NAVIGATION_ERRORS):
                    raise PageNavigatedError(f"{method}: {reply['error']}")
                raise RuntimeError(f"{method}: {reply['error']}")
            result: dict[str, Any] = reply["result"]
            return result

    async def evaluate(self, expression: str) -> Any:
        result = await self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        return result["result"].get("value")

    async def text(self) -> str:
        """The page's text, or "" while it is between two documents (a redirect)."""
        try:
            return str(await self.evaluate(PAGE_TEXT_JS) or "")
        except PageNavigatedError:
            return ""

    async def screenshot(self, path: Path) -> None:
        shot = await self.call("Page.captureScreenshot", format="png")
        await asyncio.to_thread(_write, path, base64.b64decode(shot["data"]))


@contextlib.asynccontextmanager
async def chromium_page(
    binary: str, profile_dir: Path, *, width: int, height: int
) -> AsyncIterator[DevToolsPage]:
    """A headless Chromium (own process group, killed on exit) and its first page."""
    process = _launch(binary, profile_dir)
    try:
        port = await _devtools_port(profile_dir, process)
        async with aiohttp.ClientSession() as session:
            async with session.get(f"http://127.0.0.1:{port}/json/list") as response:
                targets = await response.json()
            url = next(t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page")
            async with session.ws_connect(url, max_msg_size=0) as socket:
                page = DevToolsPage(socket)
                await page.call(
                    "Emulation.setDeviceMetricsOverride",
                    width=width,
                    height=height,
                    deviceScaleFactor=1,
                    mobile=False,
                )
                yield page
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def _write(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def _launch(binary: str, profile_dir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [binary, *CHROMIUM_FLAGS, f"--user-data-dir={profile_dir}", "about:blank"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )


async def _devtools_port(profile_dir: Path, process: subprocess.Popen[bytes]) -> int:
    """Chromium writes the port it picked to DevToolsActivePort in its profile."""
    marker = profile_dir / "DevToolsActivePort"
    deadline = time.monotonic() + 30.0
    while not marker.exists() or not marker.read_text(encoding="ascii").strip():
        if process.poll() is not None:
            raise RuntimeError(f"chromium exited with code {process.returncode}")
        if time.monotonic() > deadline:
            raise TimeoutError("chromium did not open its DevTools port")
        await asyncio.sleep(0.1)
    return int(marker.read_text(encoding="ascii").splitlines()[0])
