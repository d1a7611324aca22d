"""Talking to the demo's Home Assistant as its browser does: trusted-network login, REST API."""

from __future__ import annotations

import asyncio
import time
from typing import Any, Final

import aiohttp

LOGIN_HANDLER: Final = ["trusted_networks", None]


class HomeAssistantApi:
    """One logged-in session with the demo's Home Assistant."""

    def __init__(self, session: aiohttp.ClientSession, base_url: str, token: str) -> None:
        self._session = session
        self.base_url = base_url
        self._token = token
        self._headers = {"Authorization": f"Bearer {token}"}

    async def get(self, path: str) -> Any:
        async with self._session.get(self.base_url + path, headers=self._headers) as response:
            response.raise_for_status()
            return await response.json()

    async def states(self) -> dict[str, dict[str, Any]]:
        """Every entity's state object, by entity id."""
        return {item["entity_id"]: item for item in await self.get("/api/states")}

    async def command(self, message: dict[str, Any]) -> Any:
        """One websocket command's result (what the frontend asks, e.g. repairs/list_issues)."""
        async with self._session.ws_connect(self.base_url + "/api/websocket") as socket:
            if (await socket.receive_json())["type"] != "auth_required":
                raise RuntimeError("websocket: no auth_required")
            await socket.send_json({"type": "auth", "access_token": self._token})
            reply = await socket.receive_json()
            if reply["type"] != "auth_ok":
                raise RuntimeError(f"websocket: authentication failed: {reply}")
            await socket.send_json({"id": 1, **message})
            reply = await socket.receive_json()
            if not reply.get("success"):
                raise RuntimeError(f"websocket: {message['type']} failed: {reply.get('error')}")
            return reply["result"]

    async def repair_issues(self) -> list[dict[str, Any]]:
        """The repair issues Settings > Repairs lists (ignored ones left out)."""
        result = await self.command({"type": "repairs/list_issues"})
        return [issue for issue in result["issues"] if not issue.get("ignored")]

    async def running(self) -> bool:
        config = await self.get("/api/config")
        return bool(config.get("state") == "RUNNING")


async def trusted_login(session: aiohttp.ClientSession, base_url: str) -> str:
    """An access token, from the login flow a browser on this machine goes through."""
    client_id = base_url + "/"
    flow = await _post_json(
        session,
        f"{base_url}/auth/login_flow",
        {"client_id": client_id, "handler": LOGIN_HANDLER, "redirect_uri": client_id},
    )
    if flow["type"] == "form":  # more than one user: pick the first, as bypass would
        user = flow["data_schema"][0]["options"][0][0]
        flow = await _post_json(
            session,
            f"{base_url}/auth/login_flow/{flow['flow_id']}",
            {"client_id": client_id, "user": user},
        )
    if flow["type"] != "create_entry":
        raise RuntimeError(f"trusted-network login failed: {flow}")
    form = {"grant_type": "authorization_code", "code": flow["result"], "client_id": client_id}
    async with session.post(f"{base_url}/auth/token", data=form) as response:
        response.raise_for_status()
        token = await response.json()
    return str(token["access_token"])


async def _post_json(
    session: aiohttp.ClientSession, url: str, payload: dict[str, Any]
) -> dict[str, Any]:
    async with session.post(url, json=payload) as response:
        response.raise_for_status()
        result: dict[str, Any] = await response.json()
        return result


async def connect_when_running(
    session: aiohttp.ClientSession, base_url: str, *, timeout_s: float
) -> HomeAssistantApi:
    """Log in once Home Assistant answers, and wait until it has finished starting."""
    deadline = time.monotonic() + timeout_s
    api: HomeAssistantApi | None = None
    while True:
        try:
            if api is None:
                api = HomeAssistantApi(session, base_url, await trusted_login(session, base_url))
            if await api.running():
                return api
        except (aiohttp.ClientError, KeyError, ValueError):
            pass  # not listening yet, or the auth providers are still loading
        if time.monotonic() > deadline:
            raise TimeoutError(f"Home Assistant at {base_url} did not start")
        await asyncio.sleep(0.5)
