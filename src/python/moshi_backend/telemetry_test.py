"""Tracing in the backend: one span per conversation, and a stuck collector never stalls audio."""

from __future__ import annotations

import asyncio
import logging
import socket
import time
from collections.abc import Callable, Iterator

import aiohttp
import numpy as np
import pytest

from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.main import serve
from moshi_backend.settings import BackendSettings, EngineName
from moshi_backend.testing import backend_in_loop, ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import FRAME_SAMPLES, MessageKind
from moshi_protocol.opus import OpusFrameDecoder, Pcm
from stack_telemetry.otel import SHUTDOWN_TIMEOUT_S, setup_telemetry
from stack_telemetry.testing import fake_collector, wait_for_telemetry_threads_to_end
from testsupport.processes import free_port

# Far above the 80 ms between messages, far below what a blocked loop (a 2 s export) would show.
_MAX_AUDIO_GAP_S = 1.0
# The batch processor exports at once when this many spans wait (the SDK's default batch size).
_BATCH = 512


async def _until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_audio_keeps_flowing_while_span_export_hangs() -> None:
    sent = tone(2.4)  # 30 frames, sent at the pace of a microphone
    with fake_collector(hold_exports=True) as collector:
        handle = await asyncio.to_thread(setup_telemetry, "moshi-backend", collector.endpoint)
        assert handle.enabled
        try:
            async with backend_in_loop(LoopbackEngine(capacity=2), tracer=handle.tracer) as backend:
                server, chat_url = backend.server, backend.chat_url
                # Two full batches: the export thread posts them one after the other and the
                # collector holds each until the exporter's 2 s timeout, about 4 s of hanging
                # export from before the first audio to after the last.
                for _ in range(2 * _BATCH):
                    handle.tracer.start_span("pressure").end()
                await _until(collector.snapshot)  # an export is being held

                arrivals: list[float] = []
                received: list[Pcm] = []
                async with ChatClient.connect(chat_url) as client:
                    await client.handshake()

                    async def receive_until_quiet() -> None:
                        decoder = OpusFrameDecoder()
                        try:
                            while True:
                                message = await client.receive(timeout_s=1.5)
                                if message.kind is MessageKind.AUDIO:
                                    arrivals.append(time.monotonic())
                                    received.extend(decoder.feed(message.payload))
                        except TimeoutError:
                            return  # 1.5 s without a message once the input is over

                    receiving = asyncio.create_task(receive_until_quiet())
                    try:
                        for page in ogg_pages(sent):
                            await client.send_audio(page)
                            await asyncio.sleep(0.08)
                        await asyncio.wait_for(receiving, 30)
                    finally:
                        receiving.cancel()
                await _until(lambda: not server.active_sessions)
                registry = server.metrics.registry
                sent_messages = registry.get_sample_value("moshi_frames_out_total")
                frames_in = registry.get_sample_value("moshi_frames_in_total")
                dropped = registry.get_sample_value("moshi_frames_dropped_total")
        finally:
            started = time.monotonic()
            await asyncio.wait_for(asyncio.to_thread(handle.shutdown), SHUTDOWN_TIMEOUT_S + 5)
            shutdown_s = time.monotonic() - started
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()

    # Every audio message the server sent arrived, nothing was dropped on the way in.
    assert frames_in == sent.size // FRAME_SAMPLES and dropped == 0
    assert len(arrivals) == sent_messages and len(arrivals) >= frames_in - 4
    assert sum(frame.size for frame in received) >= sent.size - 4 * FRAME_SAMPLES
    gaps = np.diff(arrivals)
    assert gaps.max() < _MAX_AUDIO_GAP_S, f"audio stalled {gaps.max():.2f} s"
    # ...and that while an export was hanging.
    first, last = arrivals[0], arrivals[-1]
    assert any(
        e.arrived_at < last and (e.abandoned_at is None or e.abandoned_at > first) for e in exports
    ), [(e.arrived_at - first, e.abandoned_at and e.abandoned_at - first) for e in exports]
    assert shutdown_s < SHUTDOWN_TIMEOUT_S + 2


@pytest.fixture
def closed_endpoint() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _serve_one_conversation(endpoint: str, voice: str) -> None:
    """Run serve() as main() does, hold one short conversation, stop it."""
    port = free_port()
    settings = BackendSettings(
        moshi_engine=EngineName.LOOPBACK, moshi_port=port, otel_exporter_otlp_endpoint=endpoint
    )
    stop = asyncio.Event()
    serving = asyncio.create_task(serve(settings, stop))
    try:
        base = f"http://127.0.0.1:{port}"
        async with asyncio.timeout(20), aiohttp.ClientSession() as http:
            while True:
                try:
                    async with http.get(base + "/health") as response:
                        if response.status == 200:
                            break
                except aiohttp.ClientConnectionError:
                    pass
                await asyncio.sleep(0.05)
        url = base.replace("http", "ws", 1) + "/api/chat"
        async with ChatClient.connect(url, {"voice_prompt": voice}) as client:
            await client.handshake()
            for page in ogg_pages(tone(0.8)):
                await client.send_audio(page)
            while (await client.receive()).kind is not MessageKind.AUDIO:
                pass
    finally:
        stop.set()
        await asyncio.wait_for(serving, SHUTDOWN_TIMEOUT_S + 20)


async def test_serve_exports_one_span_per_conversation(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="stack_telemetry")
    with fake_collector() as collector:
        await _serve_one_conversation(collector.endpoint, "NATM1.pt")
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()
    assert any("telemetry enabled" in r.getMessage() for r in caplog.records)
    assert exports, "serve() flushes the spans when it stops"
    body = b"".join(e.body for e in exports)
    # The protobuf carries these strings as they are.
    for expected in (b"moshi.chat", b"moshi-backend", b"voice", b"NATM1.pt", b"outcome", b"frames"):
        assert expected in body
    assert b"completed" in body or b"client_gone" in body


async def test_serve_with_an_unreachable_collector_serves_without_telemetry(
    closed_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _serve_one_conversation(closed_endpoint, "NATF2.pt")
    wait_for_telemetry_threads_to_end()
    disabled = [r.getMessage() for r in caplog.records if "telemetry disabled" in r.getMessage()]
    assert len(disabled) == 1 and closed_endpoint in disabled[0]
