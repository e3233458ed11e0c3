"""Another site's page can neither talk through the relay nor read the logs; the relay carries
the backend's API key, which no browser ever sees."""

from __future__ import annotations

import aiohttp

from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.server import ServerOptions
from moshi_backend.testing import backend_in_loop
from moshi_protocol.client import ChatClient, upgrade_answer

API_KEY = "moshi-api-key-canary-91d2"


def _settings(chat_url: str, **values: object) -> FrontendSettings:
    return FrontendSettings.model_validate({"moshi_ws_url": chat_url, **values})


async def _upgrade_status(url: str, origin: str | None) -> tuple[int, str]:
    return await upgrade_answer(url, {"Origin": origin} if origin else {})


async def test_a_foreign_page_is_refused_with_a_reason_own_and_allowed_pages_are_not() -> None:
    async with backend_in_loop(LoopbackEngine()) as backend:
        settings = _settings(
            backend.chat_url, moshi_proxy=True, moshi_allowed_origins="https://voice.example.org"
        )
        await _check_origins(settings)


async def _check_origins(settings: FrontendSettings) -> None:
    async with frontend_in_loop(settings) as base:
        own = base  # the page this frontend serves
        ws_base = base.replace("http", "ws", 1)
        for path in ("/proxy/moshi", "/ws/logs"):
            status, reason = await _upgrade_status(ws_base + path, "https://evil.example.com")
            assert status == 403, path
            assert "evil.example.com" in reason and "MOSHI_ALLOWED_ORIGINS" in reason
            for origin in (own, "https://voice.example.org", None):
                assert (await _upgrade_status(ws_base + path, origin))[0] == 101, (path, origin)


async def test_the_relay_adds_the_api_key_and_the_page_never_sees_it() -> None:
    # The real backend, requiring the key: a page cannot reach it directly, the relay can.
    options = ServerOptions(api_key=API_KEY)
    async with backend_in_loop(LoopbackEngine(), options) as backend:
        status, reason = await upgrade_answer(backend.chat_url, {})
        assert status == 401 and "requires its API key" in reason
        async with frontend_in_loop(_settings(backend.chat_url, moshi_api_key=API_KEY)) as base:
            async with aiohttp.ClientSession() as http:
                async with http.get(base + "/api/config") as answer:
                    config_text = await answer.text()
            # With a key, browsers can only go through the relay.
            assert '"use_proxy":true' in config_text and API_KEY not in config_text
            relay = base.replace("http", "ws", 1) + "/proxy/moshi"
            async with ChatClient.connect(relay) as client:
                await client.handshake()
