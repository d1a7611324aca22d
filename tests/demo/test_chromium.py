"""The DevTools helper against a real headless Chromium: a page that navigates while a script
runs in it (as Home Assistant's login redirect does) is told apart from a real error."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from tests.demo.chromium import (
    DevToolsPage,
    PageNavigatedError,
    chromium_or_fail,
    chromium_page,
)

pytestmark = pytest.mark.demo

FIRST_PAGE = "data:text/html,<p>first page</p>"
# A script still running when its page goes away: Chromium can never answer it with a value.
NAVIGATE_AWAY_JS = "new Promise(() => setTimeout(() => location.assign('about:blank'), 200))"


async def _open(profile: Path) -> tuple[str, str, str]:
    async with chromium_page(chromium_or_fail(), profile, width=400, height=300) as page:
        await page.call("Page.navigate", url=FIRST_PAGE)
        first = await _text_when(page, "first page")
        with pytest.raises(PageNavigatedError, match="navigated"):
            await page.evaluate(NAVIGATE_AWAY_JS)
        with pytest.raises(RuntimeError, match=r"Runtime\.evaluate") as error:
            await page.call("Runtime.evaluate", expression="1", contextId=987654)
        assert not isinstance(error.value, PageNavigatedError)
        return first, await page.text(), str(await page.evaluate("location.href"))


async def _text_when(page: DevToolsPage, wanted: str) -> str:
    for _ in range(50):
        if wanted in (text := await page.text()):
            return text
        await asyncio.sleep(0.1)
    raise AssertionError(f"{wanted!r} never showed")


def test_a_navigation_during_a_script_is_its_own_error(
    tmp_path: Path, socket_enabled: None
) -> None:
    # socket_enabled: the DevTools websocket is TCP on localhost
    first, after, url = asyncio.run(_open(tmp_path / "profile"))

    assert first == "first page"
    assert after == ""  # the blank page has no text
    assert url == "about:blank"
