"""Polls the SBMS WiFi board's /rawData page with aiohttp.

The board refreshes the page about every 2 s; each poll has its own timeout, so a board that
hangs delays nothing else. A failed poll is a link error, never a frame; the receiver's
latest frame simply ages until the agent reports it stale.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import aiohttp

from edge_agent.config import HttpSourceSettings
from edge_agent.sbms0.receiver import FrameReceiver

_LOGGER = logging.getLogger(__name__)

MAX_PAGE_BYTES = 64 * 1024  # a real page is about 2 kB: anything far larger is not the board


class HttpSource:
    def __init__(self, settings: HttpSourceSettings, receiver: FrameReceiver) -> None:
        self._settings = settings
        self._receiver = receiver
        self._failing = False
        self.polls = 0

    async def run(self, stop: asyncio.Event) -> None:
        timeout = aiohttp.ClientTimeout(total=self._settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                await self.poll(session)
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self._settings.interval_s)

    async def poll(self, session: aiohttp.ClientSession) -> None:
        self.polls += 1
        try:
            page = await self._fetch(session)
        except (aiohttp.ClientError, TimeoutError, ValueError) as err:
            self._receiver.count_link_error()
            if not self._failing:
                _LOGGER.warning("SBMS page %s: %s", self._settings.url, err or type(err).__name__)
            self._failing = True
            return
        if self._failing:
            _LOGGER.info("SBMS page %s answers again", self._settings.url)
        self._failing = False
        self._receiver.offer_page(page)

    async def _fetch(self, session: aiohttp.ClientSession) -> str:
        async with session.get(self._settings.url) as response:
            response.raise_for_status()
            body = await response.content.read(MAX_PAGE_BYTES + 1)
        if len(body) > MAX_PAGE_BYTES:
            raise ValueError(f"the page is larger than {MAX_PAGE_BYTES} bytes")
        return body.decode("latin-1")
