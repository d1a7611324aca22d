"""The HTTP source against a small aiohttp server that serves /rawData pages the way the WiFi
board does, and misbehaves on demand (errors, a hang, a huge body, garbage)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
from aiohttp import web

from edge_agent.config import HttpSourceSettings
from edge_agent.sbms0.http_source import MAX_PAGE_BYTES, HttpSource
from edge_agent.sbms0.receiver import FrameReceiver
from tests.helpers.sbms0 import encode_frame, make_frame, make_page

pytestmark = pytest.mark.usefixtures("allow_sockets")

DEADLINE_S = 20.0


class Board:
    """What the fake board answers next: a page, an HTTP status, a hang or a huge body."""

    def __init__(self) -> None:
        self.mode = "page"
        self.page = make_page()
        self.requests = 0

    async def handle(self, _request: web.Request) -> web.StreamResponse:
        self.requests += 1
        if self.mode == "error":
            return web.Response(status=503, text="busy")
        if self.mode == "hang":
            await asyncio.sleep(2.0)  # well past the 0.5 s poll timeout
        if self.mode == "huge":
            return web.Response(body=b"#" * (MAX_PAGE_BYTES + 10))
        if self.mode == "garbage":
            return web.Response(body=b"\x00\xff<html>not the board</html>")
        return web.Response(text=self.page, content_type="text/javascript")


@pytest.fixture
async def board() -> AsyncIterator[tuple[Board, str]]:
    fake = Board()
    app = web.Application()
    app.router.add_get("/rawData", fake.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield fake, f"http://127.0.0.1:{port}/rawData"
    finally:
        await runner.cleanup()


async def until(condition: Callable[[], bool], what: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + DEADLINE_S
    while not condition():
        if loop.time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.02)


def _source(url: str, **settings: float) -> tuple[HttpSource, FrameReceiver]:
    receiver = FrameReceiver(cell_count=8, clock=lambda: 1_780_000_000.0)
    options = {"interval_s": 0.05, "timeout_s": 0.5, **settings}
    return HttpSource(HttpSourceSettings(url=url, **options), receiver), receiver


async def _poll(source: HttpSource, url: str) -> None:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=0.5)) as session:
        await source.poll(session)


async def test_a_page_brings_its_frame_and_variables(board: tuple[Board, str]) -> None:
    _fake, url = board
    source, receiver = _source(url)
    await _poll(source, url)
    assert receiver.stats.frames_ok == 1
    assert receiver.latest is not None
    assert receiver.latest.frame == make_frame()
    assert receiver.latest.page is not None
    assert receiver.latest.page.status is not None


@pytest.mark.parametrize("mode", ["error", "hang", "huge"])
async def test_failed_polls_are_link_errors_not_frames(board: tuple[Board, str], mode: str) -> None:
    fake, url = board
    source, receiver = _source(url)
    await _poll(source, url)
    fake.mode = mode
    await _poll(source, url)
    assert receiver.stats.link_errors == 1
    assert (receiver.stats.frames_ok, receiver.stats.frames_bad) == (1, 0)
    assert receiver.latest is not None  # the last good frame stays until it goes stale


async def test_a_page_that_is_not_the_board_is_a_bad_frame(board: tuple[Board, str]) -> None:
    fake, url = board
    fake.mode = "garbage"
    source, receiver = _source(url)
    await _poll(source, url)
    assert receiver.stats.bad_by_kind == {"page": 1}
    fake.mode = "page"
    fake.page = make_page(encode_frame(make_frame())[:-2])
    await _poll(source, url)
    assert receiver.stats.bad_by_kind == {"page": 1, "length": 1}
    assert receiver.latest is None


async def test_polling_runs_recovers_and_stops(board: tuple[Board, str]) -> None:
    fake, url = board
    source, receiver = _source(url)
    stop = asyncio.Event()
    task = asyncio.ensure_future(source.run(stop))
    await until(lambda: receiver.stats.frames_ok >= 2, "two polls")
    fake.mode = "error"
    await until(lambda: receiver.stats.link_errors >= 2, "failed polls")
    fake.mode = "page"
    fake.page = make_page(encode_frame(make_frame(soc=76)))  # a step the next second allows
    await until(lambda: receiver.latest is not None and receiver.latest.frame.soc == 76, "recovery")
    stop.set()
    await asyncio.wait_for(task, DEADLINE_S)
    assert fake.requests >= 5


async def test_nothing_listening_is_a_link_error() -> None:
    source, receiver = _source("http://127.0.0.1:9/rawData")
    await _poll(source, "http://127.0.0.1:9/rawData")
    assert receiver.stats.link_errors == 1
