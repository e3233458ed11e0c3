"""The floor of the round-trip benchmark: a bare aiohttp WebSocket echo that only re-codes Opus.

It speaks just enough of `/api/chat` for the benchmark client (the 0x00 handshake, then 0x01
audio both ways) and does the least work an echo can do: decode, re-encode, send. Whatever the
real server adds on top (admission, the bounded queue, the engine's worker thread) shows up as
the difference between the two.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Sequence

from aiohttp import WSMsgType, web

from moshi_protocol.messages import MessageKind, ProtocolError, decode, encode
from moshi_protocol.opus import OpusEncoder, OpusFrameDecoder

# A benchmark client sends a page every 80 ms; this much silence means it is gone.
_RECEIVE_TIMEOUT_S = 30.0
_SEND_TIMEOUT_S = 5.0


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ready"})


async def chat(request: web.Request) -> web.WebSocketResponse:
    ws = web.WebSocketResponse(receive_timeout=_RECEIVE_TIMEOUT_S)
    await ws.prepare(request)
    decoder, encoder = OpusFrameDecoder(), OpusEncoder()
    try:
        async with asyncio.timeout(_SEND_TIMEOUT_S):
            await ws.send_bytes(encode(MessageKind.HANDSHAKE))
        async for raw in ws:
            if raw.type is not WSMsgType.BINARY:
                continue
            message = decode(raw.data)
            if message.kind is not MessageKind.AUDIO:
                continue
            # On the loop, not in a worker thread: about 0.3 ms of codec work per frame, and the
            # hop to a thread is one of the costs the real server is measured against.
            for frame in decoder.feed(message.payload):
                audio = encoder.encode(frame)
                if audio:
                    async with asyncio.timeout(_SEND_TIMEOUT_S):
                        await ws.send_bytes(encode(MessageKind.AUDIO, audio))
    except (ProtocolError, TimeoutError, ConnectionError):
        pass  # a benchmark peer that misbehaves or vanishes just ends its own conversation
    finally:
        await ws.close()
    return ws


def create_app() -> web.Application:
    app = web.Application()
    app.add_routes([web.get("/health", health), web.get("/api/chat", chat)])
    return app


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="floor-server", description="Bare Opus re-coding WebSocket echo on /api/chat."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8999)
    args = parser.parse_args(argv)
    # run_app turns SIGINT/SIGTERM into a clean shutdown.
    web.run_app(create_app(), host=args.host, port=args.port, print=None, access_log=None)
    return 0


if __name__ == "__main__":
    sys.exit(main())
