"""Relay of one browser WebSocket to the backend's /api/chat, message by message."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
import time
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
from fastapi import WebSocket
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.websockets import WebSocketDisconnect, WebSocketState

from moshi_protocol.messages import CloseCode, MessageKind, ProtocolError, encode
from moshi_protocol.params import parse_chat_params

log = logging.getLogger("frontend.proxy")

_CONNECT_TIMEOUT_S = 10.0
_SEND_TIMEOUT_S = 10.0
_HEARTBEAT_S = 10.0
_MAX_MESSAGE_BYTES = 1 << 20
_PROPAGATOR = TraceContextTextMapPropagator()
# The backend's close codes as the backend's outcome vocabulary (server.py); others: error.
_OUTCOME_OF_CLOSE: dict[int, str] = {
    CloseCode.NORMAL: "completed",
    CloseCode.TRY_AGAIN_LATER: "busy",
    CloseCode.POLICY_VIOLATION: "rejected",
    CloseCode.UNSUPPORTED_DATA: "rejected",
    CloseCode.MESSAGE_TOO_BIG: "rejected",
}


@dataclass
class RelayStats:
    to_backend_bytes: int = 0
    to_browser_bytes: int = 0
    close_code: int | None = None
    close_reason: str = ""
    # How the relay ended, in the backend's words: completed, client_gone, busy, rejected, error.
    outcome: str = ""

    def ended(self, outcome: str) -> None:
        """The first side to end decides the outcome."""
        self.outcome = self.outcome or outcome


async def _refuse(browser: WebSocket, reason: str, code: CloseCode) -> None:
    with contextlib.suppress(WebSocketDisconnect, RuntimeError):
        await asyncio.wait_for(browser.send_bytes(encode(MessageKind.ERROR, reason)), 5)
        await browser.close(code=code, reason=reason.encode()[:120].decode(errors="ignore"))


async def _browser_to_backend(
    browser: WebSocket, backend: aiohttp.ClientWebSocketResponse, stats: RelayStats
) -> None:
    while True:
        message = await browser.receive()
        if message["type"] == "websocket.disconnect":
            stats.close_code = stats.close_code or int(message.get("code", 1000))
            stats.ended("client_gone")
            return
        data, text = message.get("bytes"), message.get("text")
        if data is not None:
            # Timeout scopes, not wait_for, which wraps every relayed message in a task.
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await backend.send_bytes(data)
            stats.to_backend_bytes += len(data)
        elif text is not None:  # not protocol, but the backend is the one to say so
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await backend.send_str(text)


async def _backend_to_browser(
    browser: WebSocket, backend: aiohttp.ClientWebSocketResponse, stats: RelayStats
) -> None:
    while True:
        message = await backend.receive()
        if message.type == aiohttp.WSMsgType.BINARY:
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await browser.send_bytes(message.data)
            stats.to_browser_bytes += len(message.data)
        elif message.type == aiohttp.WSMsgType.TEXT:
            async with asyncio.timeout(_SEND_TIMEOUT_S):
                await browser.send_text(message.data)
        else:  # CLOSE, CLOSED, ERROR: the backend ended the conversation
            stats.close_code = backend.close_code or CloseCode.GOING_AWAY
            stats.close_reason = str(message.extra or "") if message.extra else ""
            stats.ended(_OUTCOME_OF_CLOSE.get(stats.close_code, "error"))
            return


async def relay(
    browser: WebSocket,
    backend_chat_url: str,
    backend_ssl: ssl.SSLContext | bool,
    backend_headers: Mapping[str, str],
) -> RelayStats:
    """Accept the browser, connect upstream with the same query, relay until either side ends."""
    await browser.accept()
    stats = RelayStats()
    try:
        params = parse_chat_params(browser.query_params, voices=None)
    except ProtocolError as error:
        await _refuse(browser, error.reason, error.close_code)
        stats.close_code = error.close_code
        stats.ended("rejected")
        return stats

    url = f"{backend_chat_url}?{urlencode(params.query())}"
    timeout = aiohttp.ClientTimeout(total=None, connect=_CONNECT_TIMEOUT_S)
    started = time.monotonic()
    headers = dict(backend_headers)
    # The current span (the route's frontend.proxy) as traceparent/tracestate.
    _PROPAGATOR.inject(headers)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        try:
            backend = await http.ws_connect(
                url,
                ssl=backend_ssl,
                headers=headers,
                heartbeat=_HEARTBEAT_S,
                max_msg_size=_MAX_MESSAGE_BYTES,
            )
        except (aiohttp.ClientError, OSError, TimeoutError) as error:
            reason = f"backend unreachable: {type(error).__name__}: {error}"
            log.warning("proxy: %s", reason)
            await _refuse(browser, reason, CloseCode.TRY_AGAIN_LATER)
            stats.close_code = CloseCode.TRY_AGAIN_LATER
            stats.close_reason = reason
            stats.ended("error")
            return stats
        log.info("proxy session opened (voice %s)", params.voice_prompt)
        tasks = {
            asyncio.create_task(_browser_to_backend(browser, backend, stats)),
            asyncio.create_task(_backend_to_browser(browser, backend, stats)),
        }
        try:
            done, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
            for task in done:
                if task.exception() is not None:
                    stats.ended("error")
                    log.warning("proxy relay ended: %r", task.exception())
        finally:
            # Both sides go when either goes; the browser learns the backend's close code.
            await backend.close()
            if browser.client_state == WebSocketState.CONNECTED:
                code = stats.close_code or CloseCode.NORMAL
                with contextlib.suppress(RuntimeError, WebSocketDisconnect):
                    await browser.close(code=code, reason=stats.close_reason[:120])
    log.info(
        "proxy session closed after %.1f s: %d bytes to backend, %d bytes to browser, code %s",
        time.monotonic() - started,
        stats.to_backend_bytes,
        stats.to_browser_bytes,
        stats.close_code,
    )
    return stats
