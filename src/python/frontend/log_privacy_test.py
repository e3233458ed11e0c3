"""No persona in any log line, and /ws/logs only for the clients APP_LOGS_STREAM names."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json

import aiohttp
import pytest
from fastapi.testclient import TestClient
from starlette.testclient import WebSocketDenialResponse

from frontend.app import create_app
from frontend.settings import FrontendSettings, LogsStream
from frontend.testing import frontend_in_loop
from frontend.testing_browser import backend_process, frontend_process
from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import MessageKind
from moshi_protocol.privacy import REDACTED
from testsupport.polling import wait_for
from testsupport.processes import ProcessUnderTest, free_port

CANARY = "canary-persona-5e1f0c"


async def _converse(relay_url: str) -> None:
    params = {"text_prompt": f"You are {CANARY}.", "voice_prompt": "NATF2.pt"}
    async with ChatClient.connect(relay_url, params) as client:
        await client.handshake()
        for page in ogg_pages(tone(0.5)):
            await client.send_audio(page)
        while (await client.receive()).kind is not MessageKind.AUDIO:
            pass


async def _log_events(url: str, quiet_s: float = 1.0) -> list[dict[str, str]]:
    events: list[dict[str, str]] = []
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        while True:
            try:
                message = await asyncio.wait_for(ws.receive(), quiet_s)
            except TimeoutError:
                return events
            if message.type is not aiohttp.WSMsgType.TEXT:
                return events
            events.append(json.loads(message.data))


def _wait_for_line(process: ProcessUnderTest, text: str) -> None:
    wait_for(lambda: True if text in process.output() else None, what=text, timeout_s=10)


def test_a_relayed_persona_is_in_no_log_line_and_no_log_event() -> None:
    with (
        backend_process() as backend,
        frontend_process(backend.chat_url, proxy=True) as frontend,
    ):
        base = frontend.url.rstrip("/")
        asyncio.run(_converse(base.replace("http", "ws", 1) + "/proxy/moshi"))
        events = asyncio.run(_log_events(base.replace("http", "ws", 1) + "/ws/logs"))
        # Both services logged the conversation's URL, cut.
        for process in (frontend.process, backend.process):
            _wait_for_line(process, REDACTED)
        printed = frontend.process.output() + backend.process.output()
    assert CANARY not in printed
    assert f"/proxy/moshi{REDACTED}" in printed and f"/api/chat{REDACTED}" in printed
    assert events, "/ws/logs replayed nothing"
    shared = json.dumps(events)
    assert CANARY not in shared
    # The service's own events only: no line about one client's WebSocket and its address.
    assert '"WebSocket ' not in shared and "connection open" not in shared


def _settings(logs_stream: LogsStream) -> FrontendSettings:
    dead = f"ws://127.0.0.1:{free_port()}/api/chat"
    return FrontendSettings(moshi_ws_url=dead, app_logs_stream=logs_stream)


@pytest.mark.parametrize(
    ("logs_stream", "shared"),
    [(LogsStream.LOOPBACK, False), (LogsStream.ON, True), (LogsStream.OFF, False)],
)
def test_a_client_off_this_machine_gets_server_events_only_when_on(
    logs_stream: LogsStream, shared: bool
) -> None:
    # Starlette's test client is no loopback address: it stands for a remote browser.
    with TestClient(create_app(_settings(logs_stream))) as client:
        assert client.get("/api/config").json()["logs_stream"] is shared
        if shared:
            # Entering is the check (a refusal raises there). Leaving at once can race the
            # test client's own teardown of the app task, which then raises CancelledError.
            with (
                contextlib.suppress(concurrent.futures.CancelledError),
                client.websocket_connect("/ws/logs"),
            ):
                pass
        else:
            with pytest.raises(WebSocketDenialResponse) as refused, client.websocket_connect(
                "/ws/logs"
            ):
                pass
            assert refused.value.status_code == 403 and "APP_LOGS_STREAM" in refused.value.text


async def test_off_refuses_this_machine_too() -> None:
    async with frontend_in_loop(_settings(LogsStream.OFF)) as base, aiohttp.ClientSession() as http:
        async with http.get(base + "/api/config") as response:
            assert (await response.json())["logs_stream"] is False
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(base.replace("http", "ws", 1) + "/ws/logs")
    assert refused.value.status == 403
