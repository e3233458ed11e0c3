"""An asyncio client of `/api/chat`, for tests, benchmarks and tools."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp

from moshi_protocol.messages import Message, MessageKind, decode, encode


class ChatClosed(Exception):
    """The server closed the conversation; carries its 0x05 reason and close code if any."""

    def __init__(self, reason: str | None, close_code: int | None) -> None:
        super().__init__(f"closed ({close_code}): {reason}")
        self.reason = reason
        self.close_code = close_code


async def upgrade_answer(url: str, headers: Mapping[str, str]) -> tuple[int, str]:
    """101 when the WebSocket opens (then closed again), else the refusal's status and body: the
    reason a browser's devtools show for a refused page or a missing key."""
    async with aiohttp.ClientSession() as http:
        try:
            ws = await http.ws_connect(url, headers=headers)
        except aiohttp.WSServerHandshakeError:
            pass
        else:
            await ws.close()
            return 101, ""
        # The same upgrade request, as plain HTTP, to read the body aiohttp's error leaves out.
        upgrade = {
            **headers,
            "Connection": "Upgrade",
            "Upgrade": "websocket",
            "Sec-WebSocket-Version": "13",
            "Sec-WebSocket-Key": "MDEyMzQ1Njc4OWFiY2RlZg==",
        }
        async with http.get(url.replace("ws", "http", 1), headers=upgrade) as answer:
            return answer.status, await answer.text()


class ChatClient:
    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.error: str | None = None

    @classmethod
    @asynccontextmanager
    async def connect(
        cls,
        url: str,
        params: Mapping[str, str] | None = None,
        *,
        ssl_context: ssl.SSLContext | bool = True,
        timeout_s: float = 10.0,
    ) -> AsyncIterator[ChatClient]:
        timeout = aiohttp.ClientTimeout(total=None, connect=timeout_s, sock_connect=timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as http:
            ws = await http.ws_connect(
                url, params=dict(params or {}), ssl=ssl_context, max_msg_size=0, autoping=True
            )
            try:
                yield cls(ws)
            finally:
                await ws.close()

    async def receive(self, timeout_s: float = 10.0) -> Message:
        """The next protocol message; ChatClosed when the server closes (after a 0x05 or not)."""
        while True:
            raw = await self.ws.receive(timeout=timeout_s)
            if raw.type == aiohttp.WSMsgType.BINARY:
                message = decode(raw.data)
                if message.kind is MessageKind.ERROR:
                    self.error = message.text
                return message
            if raw.type in (
                aiohttp.WSMsgType.CLOSE,
                aiohttp.WSMsgType.CLOSING,
                aiohttp.WSMsgType.CLOSED,
                aiohttp.WSMsgType.ERROR,
            ):
                raise ChatClosed(self.error, self.ws.close_code)

    async def handshake(self, timeout_s: float = 30.0) -> None:
        """Wait for 0x00; ChatClosed with the server's reason if it refuses."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while True:
            remaining = deadline - asyncio.get_running_loop().time()
            message = await self.receive(max(remaining, 0.001))
            if message.kind is MessageKind.HANDSHAKE:
                return

    async def send_audio(self, ogg_bytes: bytes) -> None:
        await self.ws.send_bytes(encode(MessageKind.AUDIO, ogg_bytes))

    async def send_raw(self, data: bytes) -> None:
        await self.ws.send_bytes(data)

    async def closed_reason(self, timeout_s: float = 10.0) -> ChatClosed:
        """Read until the server closes; the close with its 0x05 reason."""
        try:
            while True:
                await self.receive(timeout_s)
        except ChatClosed as closed:
            return closed
