"""Another site's page can neither talk through the relay nor read the logs; the relay carries
the backend's API key, which no browser ever sees."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer

from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import MessageKind, encode

API_KEY = "moshi-api-key-canary-91d2"


@pytest.fixture
async def recording_backend() -> AsyncIterator[tuple[str, list[str | None]]]:
    """A stand-in /api/chat that records each upgrade's Authorization and says hello."""
    seen: list[str | None] = []

    async def chat(request: web.Request) -> web.WebSocketResponse:
        seen.append(request.headers.get("Authorization"))
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        await ws.send_bytes(encode(MessageKind.HANDSHAKE))
        await ws.close()
        return ws

    app = web.Application()
    app.router.add_get("/api/chat", chat)
    server = TestServer(app, host="127.0.0.1")
    await server.start_server()
    try:
        yield f"ws://127.0.0.1:{server.port}/api/chat", seen
    finally:
        await server.close()


def _settings(chat_url: str, **values: object) -> FrontendSettings:
    return FrontendSettings.model_validate({"moshi_ws_url": chat_url, **values})


async def _upgrade_status(url: str, origin: str | None) -> tuple[int, str]:
    """101, or the refusal's status and its reason (the body a browser's devtools show)."""
    headers = {"Origin": origin} if origin else {}
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, headers=headers)
        except aiohttp.WSServerHandshakeError:
            pass
        else:
            await ws.close()
            return 101, ""
    # The same upgrade request by hand, to read the refusal's body.
    upgrade = {
        **headers,
        "Connection": "Upgrade",
        "Upgrade": "websocket",
        "Sec-WebSocket-Version": "13",
        "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
    }
    async with httpx.AsyncClient() as http:
        answer = await http.get(url.replace("ws", "http", 1), headers=upgrade)
    return answer.status_code, answer.text


async def test_a_foreign_page_is_refused_with_a_reason_own_and_allowed_pages_are_not(
    recording_backend: tuple[str, list[str | None]],
) -> None:
    chat_url, _ = recording_backend
    settings = _settings(
        chat_url, moshi_proxy=True, moshi_allowed_origins="https://voice.example.org"
    )
    async with frontend_in_loop(settings) as base:
        own = base  # the page this frontend serves
        ws_base = base.replace("http", "ws", 1)
        for path in ("/proxy/moshi", "/ws/logs"):
            status, reason = await _upgrade_status(ws_base + path, "https://evil.example.com")
            assert status == 403, path
            assert "evil.example.com" in reason and "MOSHI_ALLOWED_ORIGINS" in reason
            for origin in (own, "https://voice.example.org", None):
                assert (await _upgrade_status(ws_base + path, origin))[0] == 101, (path, origin)


async def test_the_relay_adds_the_api_key_and_the_page_never_sees_it(
    recording_backend: tuple[str, list[str | None]],
) -> None:
    chat_url, seen = recording_backend
    async with frontend_in_loop(_settings(chat_url, moshi_api_key=API_KEY)) as base:
        async with aiohttp.ClientSession() as http:
            async with http.get(base + "/api/config") as answer:
                config_text = await answer.text()
        # With a key, browsers can only go through the relay.
        assert '"use_proxy":true' in config_text and API_KEY not in config_text
        async with ChatClient.connect(base.replace("http", "ws", 1) + "/proxy/moshi") as client:
            await client.handshake()
    assert seen[-1] == f"Bearer {API_KEY}"
