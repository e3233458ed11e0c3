from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import pytest

from frontend.log_broadcast import LogBroadcast, LogEvent
from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.testing import BackendInLoop, backend_in_loop
from testsupport.processes import free_port


def _settings(backend_base_url: str, proxy: bool = False) -> FrontendSettings:
    ws_url = backend_base_url.replace("http", "ws", 1) + "/api/chat"
    return FrontendSettings(moshi_ws_url=ws_url, backend_poll_interval_s=0.2, moshi_proxy=proxy)


@pytest.fixture
async def backend() -> AsyncIterator[BackendInLoop]:
    async with backend_in_loop(LoopbackEngine(capacity=2)) as running:
        yield running


async def _get(url: str) -> tuple[int, dict[str, str], bytes]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        headers = {name.lower(): value for name, value in response.headers.items()}
        return response.status, headers, await response.read()


async def test_config_with_the_backend_up(
    backend: BackendInLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_must_never_reach_a_browser")
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        status, _, body = await _get(base + "/api/config")
    assert status == 200
    config = json.loads(body)
    assert config["moshi_ws_url"] == backend.chat_url
    assert config["voices_source"] == "backend" and len(config["voices"]) == 18
    assert config["use_proxy"] is False and config["proxy_path"] == "/proxy/moshi"
    assert config["protocol"]["kinds"]["audio"] == 1 and config["protocol"]["frame_samples"] == 1920
    assert config["reconnect_delay_ms"] == 4000
    assert {p["name"] for p in config["personas"]} >= {"Teacher"}
    assert b"hf_must_never" not in body


async def test_config_and_health_with_the_backend_down() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    async with frontend_in_loop(_settings(dead, proxy=True)) as base:
        _, _, config_body = await _get(base + "/api/config")
        status, _, health_body = await _get(base + "/health")
    config = json.loads(config_body)
    assert config["voices_source"] == "builtin" and len(config["voices"]) == 18
    assert config["use_proxy"] is True
    health = json.loads(health_body)
    assert status == 200 and health["status"] == "ok"
    assert health["backend"]["reachable"] is False and health["backend"]["status"] == "unreachable"


async def test_health_reports_the_backend(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        status, _, body = await _get(base + "/health")
    health = json.loads(body)
    assert status == 200
    assert health["backend"] == {
        "url": backend.base_url,
        "reachable": True,
        "status": "ready",
        "error": None,
    }


async def test_logs_replay_then_stream_backend_changes(backend: BackendInLoop) -> None:
    logs = LogBroadcast()
    logs.publish(LogEvent.now("INFO", "test", "before anyone connected"))
    async with (
        frontend_in_loop(_settings(backend.base_url), logs) as base,
        aiohttp.ClientSession() as http,
        http.ws_connect(base.replace("http", "ws", 1) + "/ws/logs") as ws,
    ):
        first = await ws.receive_json(timeout=5)
        assert first["message"] == "before anyone connected"
        assert set(first) == {"timestamp", "level", "source", "message"}
        # The health watcher reports the backend's state as an event.
        async with asyncio.timeout(10):
            while True:
                event = await ws.receive_json()
                if "backend" in event["message"] and "ready" in event["message"]:
                    break
        logs.publish(LogEvent.now("ERROR", "test", "live event"))
        async with asyncio.timeout(5):
            while (await ws.receive_json())["message"] != "live event":
                pass
    await asyncio.sleep(0.1)
    assert logs.subscriber_count == 0


async def test_unknown_route_is_404(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        status, _, _ = await _get(base + "/api/nothing-here")
    assert status == 404


async def test_ui_and_assets_have_types_and_revalidation_headers(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        status, headers, body = await _get(base + "/")
        assert status == 200 and headers["content-type"].startswith("text/html")
        assert headers["cache-control"] == "no-cache" and b"<html" in body.lower()
        status, headers, _ = await _get(base + "/static/app.js")
        assert status == 200 and "javascript" in headers["content-type"]
        assert headers["cache-control"] == "no-cache" and headers["etag"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(base + "/static/app.js", headers={"If-None-Match": headers["etag"]}) as r,
        ):
            assert r.status == 304
        status, _, _ = await _get(base + "/static/..%2Fsettings.py")
        assert status == 404


async def test_the_shared_theme_is_served_like_the_assets() -> None:
    async with frontend_in_loop(_settings(f"http://127.0.0.1:{free_port()}")) as base:
        status, headers, body = await _get(base + "/theme/theme.css")
        _, _, page = await _get(base + "/")
    assert status == 200 and headers["content-type"].startswith("text/css")
    assert headers["cache-control"] == "no-cache" and b"--bg:" in body
    assert b'href="theme/theme.css"' in page
