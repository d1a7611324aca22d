"""What the end-to-end tests of switched loads share: the agent in a process of its own, its
output kept in a log shown only when it ended badly, and the discovered box confirmed."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.sbms.const import DOMAIN
from tests.helpers.hass import wait_for

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def agent_process(command: Sequence[str], log_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    """`command` run from the repository's root; terminated (killed if it must be) after."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, cwd=ROOT, stdout=log, stderr=log)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.returncode not in (0, -15):
            print(log_path.read_text(errors="replace"))


async def discover_and_confirm(hass: HomeAssistant, *, timeout_s: float) -> MockConfigEntry:
    """The box's discovery flow, confirmed once it appears; the entry once it is loaded."""

    def flows() -> list[Any]:
        return list(hass.config_entries.flow.async_progress_by_handler(DOMAIN))

    await wait_for(hass, lambda: bool(flows()), timeout_s=timeout_s)
    (flow,) = flows()
    result = await hass.config_entries.flow.async_configure(flow["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    entry: MockConfigEntry = result["result"]
    await wait_for(hass, lambda: entry.state is ConfigEntryState.LOADED)
    return entry
