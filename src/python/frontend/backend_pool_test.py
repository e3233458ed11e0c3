"""Scaling out: several real backends of one slot each; new conversations go to a free one."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack

import aiohttp
import httpx
import pytest

from frontend.backend_pool import BackendPool, backend_at, backends_of
from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.testing import BackendInLoop, backend_in_loop
from moshi_protocol.client import ChatClient
from testsupport.processes import free_port


@pytest.fixture
async def backends() -> AsyncIterator[list[BackendInLoop]]:
    async with AsyncExitStack() as stack:
        yield [
            await stack.enter_async_context(backend_in_loop(LoopbackEngine(capacity=1)))
            for _ in range(2)
        ]


async def test_the_free_backend_is_picked_and_the_dead_one_skipped(
    backends: list[BackendInLoop],
) -> None:
    first, second = backends
    dead = f"ws://127.0.0.1:{free_port()}/api/chat"
    pool_backends = [backend_at(url) for url in (dead, first.chat_url, second.chat_url)]
    async with httpx.AsyncClient() as http:
        pool = BackendPool(pool_backends, http)
        assert (await pool.pick()).ws_url == first.chat_url
        async with ChatClient.connect(first.chat_url) as busy:
            await busy.handshake()
            assert (await pool.pick()).ws_url == second.chat_url
            async with ChatClient.connect(second.chat_url) as also_busy:
                await also_busy.handshake()
                # None free: a ready one (which will answer busy), never the dead one.
                assert (await pool.pick()).ws_url in (first.chat_url, second.chat_url)


def test_settings_read_a_comma_separated_list(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_WS_URLS", "ws://a:1/api/chat, ws://b:2/api/chat")
    settings = FrontendSettings()
    assert settings.moshi_ws_urls == ("ws://a:1/api/chat", "ws://b:2/api/chat")
    # The first one stands for the backend where a single one is meant (health, voices).
    assert settings.moshi_ws_url == "ws://a:1/api/chat"
    assert [b.base_url for b in backends_of(settings)] == ["http://a:1", "http://b:2"]
    monkeypatch.setenv("MOSHI_WS_URLS", "http://a:1")
    with pytest.raises(ValueError, match="ws://"):
        FrontendSettings()


async def test_config_hands_out_the_free_backend(backends: list[BackendInLoop]) -> None:
    first, second = backends
    settings = FrontendSettings(moshi_ws_urls=(first.chat_url, second.chat_url))
    async with frontend_in_loop(settings) as base, aiohttp.ClientSession() as http:
        async with ChatClient.connect(first.chat_url) as busy:
            await busy.handshake()
            async with http.get(f"{base}/api/config") as response:
                config = json.loads(await response.read())
    assert config["moshi_ws_url"] == second.chat_url


async def test_the_proxy_relays_to_the_free_backend(backends: list[BackendInLoop]) -> None:
    first, second = backends
    settings = FrontendSettings(moshi_ws_urls=(first.chat_url, second.chat_url), moshi_proxy=True)
    async with frontend_in_loop(settings) as base:
        proxy = base.replace("http", "ws", 1) + "/proxy/moshi"
        async with ChatClient.connect(first.chat_url) as busy:
            await busy.handshake()
            async with ChatClient.connect(proxy) as relayed:
                await relayed.handshake()
                assert second.server.active_sessions == 1
    await second.wait_idle()
