"""Helpers for tests of the backend and of its clients: a real server on a free loopback port."""

from __future__ import annotations

import asyncio
import base64
import os
import socket
import ssl
import struct
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from urllib.parse import urlencode

import aiohttp
import numpy as np
from aiohttp import web
from aiohttp.test_utils import TestServer
from opentelemetry import metrics, trace

from moshi_backend.engines.base import Engine
from moshi_backend.server import ChatServer, ServerOptions
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE, MessageKind
from moshi_protocol.opus import OpusEncoder, OpusFrameDecoder, Pcm


@dataclass
class BackendInLoop:
    server: ChatServer
    base_url: str
    http_server: TestServer

    async def stop(self) -> None:
        """Stop serving now, open conversations included (a crash or restart, as clients see it)."""
        await self.http_server.close()

    @property
    def chat_url(self) -> str:
        return self.base_url.replace("http", "ws", 1) + "/api/chat"

    async def get_json(self, path: str) -> tuple[int, dict[str, object]]:
        async with aiohttp.ClientSession() as http, http.get(self.base_url + path) as response:
            return response.status, await response.json()

    async def wait_idle(self, timeout_s: float = 10.0) -> None:
        """Until no session is active: disconnects must free their slot promptly."""
        async with asyncio.timeout(timeout_s):
            while self.server.active_sessions:
                await asyncio.sleep(0.02)


@asynccontextmanager
async def backend_in_loop(
    engine: Engine,
    options: ServerOptions | None = None,
    *,
    load: bool = True,
    tracer: trace.Tracer | None = None,
    meter: metrics.Meter | None = None,
) -> AsyncIterator[BackendInLoop]:
    """A ChatServer on a free loopback port, inside the test's own event loop.

    Not a subprocess: the test reaches the server's state (sessions, metrics) directly.
    """
    server = ChatServer(engine, options, tracer=tracer, meter=meter)
    app = web.Application()
    server.install(app)
    http_server = TestServer(app, host="127.0.0.1", port=0)
    await http_server.start_server()
    try:
        if load:
            await server.load()
        yield BackendInLoop(server, str(http_server.make_url("")).rstrip("/"), http_server)
    finally:
        await http_server.close()
        await server.shutdown()


def raw_chat_socket(chat_url: str, query: Mapping[str, str] | None = None) -> socket.socket:
    """A TCP socket upgraded to /api/chat by hand, for clients that misbehave (blocking)."""
    host, port = chat_url.split("//")[1].split("/")[0].split(":")
    sock = socket.create_connection((host, int(port)), timeout=5)
    key = base64.b64encode(os.urandom(16)).decode()
    target = "/api/chat" + (f"?{urlencode(query)}" if query else "")
    sock.sendall(
        (
            f"GET {target} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        ).encode()
    )
    response = b""
    while b"\r\n\r\n" not in response:
        response += sock.recv(4096)
    assert b" 101 " in response.split(b"\r\n")[0]
    return sock


def reset_connection(sock: socket.socket) -> None:
    """Close with a TCP reset: a client that vanishes without a WebSocket close."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def tone(seconds: float, hz: float = 440.0, amplitude: float = 0.5) -> Pcm:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (amplitude * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def ogg_pages(pcm: Pcm) -> list[bytes]:
    """The Ogg/Opus pieces a streaming client sends, one per 80 ms frame that yields bytes."""
    encoder = OpusEncoder()
    whole = pcm[: pcm.size - pcm.size % FRAME_SAMPLES]  # a partial last frame is not sent
    pieces = (encoder.encode(frame) for frame in whole.reshape(-1, FRAME_SAMPLES))
    return [piece for piece in pieces if piece]


async def echo_once(chat_url: str, ssl_context: ssl.SSLContext | None = None) -> None:
    """One short conversation: a handshake, 0.8 s of tone, until the first audio comes back;
    over wss:// trusting ssl_context when given (a pinned pair), else the system's roots."""
    trust: ssl.SSLContext | bool = ssl_context if ssl_context is not None else True
    async with ChatClient.connect(chat_url, ssl_context=trust) as client:
        await client.handshake()
        for page in ogg_pages(tone(0.8)):
            await client.send_audio(page)
        while (await client.receive()).kind is not MessageKind.AUDIO:
            pass


async def speak_and_listen(
    client: ChatClient, speech: Pcm, frames: int, timeout_s: float = 30
) -> tuple[list[Pcm], list[str]]:
    """Send speech at the pace of a live microphone and receive until at least frames of the
    model's audio and one text piece came back (timeout_s at most for each message)."""

    async def speak() -> None:
        for page in ogg_pages(speech):
            await client.send_audio(page)
            await asyncio.sleep(0.08)

    speaking = asyncio.create_task(speak())
    decoder, received, text = OpusFrameDecoder(), list[Pcm](), list[str]()
    try:
        while sum(frame.size for frame in received) < frames * FRAME_SAMPLES or not text:
            message = await client.receive(timeout_s=timeout_s)
            if message.kind is MessageKind.AUDIO:
                received += decoder.feed(message.payload)
            elif message.kind is MessageKind.TEXT:
                text.append(message.text)
        await speaking
    finally:
        speaking.cancel()
    return received, text
