"""Telemetry of the backend: a conversation is one trace, its metrics and logs go out too, and a
stuck collector never stalls audio. What the collector received is decoded, not searched."""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import socket
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future

import aiohttp
import numpy as np
import pytest

from moshi_backend.engines.base import Engine, EngineError, EngineInfo
from moshi_backend.engines.loopback import LoopbackEngine, LoopbackSession
from moshi_backend.main import serve
from moshi_backend.settings import BackendSettings, EngineName
from moshi_backend.testing import backend_in_loop, ogg_pages, tone
from moshi_protocol.client import ChatClient, ChatClosed
from moshi_protocol.messages import FRAME_SAMPLES, CloseCode, MessageKind
from moshi_protocol.opus import OpusFrameDecoder, Pcm
from moshi_protocol.params import ChatParams
from moshi_protocol.privacy import REDACTED
from stack_telemetry.otel import SHUTDOWN_TIMEOUT_S, setup_telemetry
from stack_telemetry.testing import fake_collector, wait_for_telemetry_threads_to_end
from stack_telemetry.testing_otlp import SpanSeen, logs_in, points_in, spans_in
from testsupport.processes import free_port

# Far above the 80 ms between messages, far below what a blocked loop (a 2 s export) would show.
_MAX_AUDIO_GAP_S = 1.0
# The batch processor exports at once when this many spans wait (the SDK's default batch size).
_BATCH = 512


async def _until(condition: Callable[[], object], timeout_s: float = 10.0) -> None:
    async with asyncio.timeout(timeout_s):
        while not condition():
            await asyncio.sleep(0.02)


async def test_audio_keeps_flowing_while_exports_of_every_signal_hang(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the server's log lines reach the OTLP log handler
    sent = tone(2.4)  # 30 frames, sent at the pace of a microphone
    with fake_collector(hold_exports=True) as collector:
        handle = await asyncio.to_thread(
            setup_telemetry, "moshi-backend", collector.endpoint, metric_export_interval_ms=200
        )
        assert handle.enabled
        try:
            async with backend_in_loop(
                LoopbackEngine(capacity=2), tracer=handle.tracer, meter=handle.meter
            ) as backend:
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
    # ...and that while exports of traces, metrics and logs were hanging.
    first, last = arrivals[0], arrivals[-1]
    held = {
        e.path
        for e in exports
        if e.arrived_at < last and (e.abandoned_at is None or e.abandoned_at > first)
    }
    assert held == {"/v1/traces", "/v1/metrics", "/v1/logs"}, [
        (e.path, e.arrived_at - first, e.abandoned_at and e.abandoned_at - first) for e in exports
    ]
    assert shutdown_s < SHUTDOWN_TIMEOUT_S + 2


@pytest.fixture
def closed_endpoint() -> Iterator[str]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


async def _serve_one_conversation(endpoint: str, voice: str, audio_s: float = 0.8) -> None:
    """Run serve() as main() does, hold one conversation of audio_s in real time, stop it."""
    port = free_port()
    settings = BackendSettings(
        moshi_engine=EngineName.LOOPBACK,
        moshi_port=port,
        otel_exporter_otlp_endpoint=endpoint,
        otel_metric_export_interval=200,
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
        query = {"voice_prompt": voice, "text_prompt": _PERSONA}
        async with ChatClient.connect(url, query) as client:
            await client.handshake()
            for page in ogg_pages(tone(audio_s)):
                await client.send_audio(page)
                await asyncio.sleep(0.08)
            while (await client.receive()).kind is not MessageKind.AUDIO:
                pass
    finally:
        stop.set()
        await asyncio.wait_for(serving, SHUTDOWN_TIMEOUT_S + 20)


_PERSONA = "a persona no exported log may carry"
_SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER
_ERROR = 2  # Status.StatusCode.STATUS_CODE_ERROR


def _children(spans: list[SpanSeen], parent: SpanSeen) -> list[SpanSeen]:
    return sorted(
        (s for s in spans if s.parent_span_id == parent.span_id), key=lambda s: s.start_ns
    )


async def test_serve_exports_the_conversation_trace_its_metrics_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with fake_collector() as collector:
        # 1.6 s of conversation: several 200 ms metric exports happen during it.
        await _serve_one_conversation(collector.endpoint, "NATM1.pt", audio_s=1.6)
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()
    assert any("telemetry enabled" in r.getMessage() for r in caplog.records)

    spans = spans_in(exports)  # serve() flushed them when it stopped
    (conversation,) = (s for s in spans if s.name == "moshi.conversation")
    assert conversation.service == "moshi-backend" and conversation.kind == _SERVER_KIND
    assert conversation.parent_span_id == ""  # no traceparent on the upgrade: a trace of its own
    attributes = conversation.attributes
    assert attributes["session"].startswith("session-") and attributes["voice"] == "NATM1.pt"
    assert attributes["outcome"] in ("completed", "client_gone")
    assert attributes["frames"] >= 15 and attributes["frames_dropped"] == 0
    assert attributes["frames_late"] >= 0
    assert 0 < attributes["step_ms_p50"] <= attributes["step_ms_p99"] < 1000
    assert conversation.status_code != _ERROR
    children = _children(spans, conversation)
    # The loopback engine has no persona prompt: no moshi.persona_prompt.
    assert [c.name for c in children] == [
        "moshi.upgrade",
        "moshi.params",
        "moshi.slot_wait",
        "moshi.handshake",
        "moshi.frame_loop",
        "moshi.close",
    ]
    assert {c.trace_id for c in children} == {conversation.trace_id}
    assert all(
        conversation.start_ns <= c.start_ns <= c.end_ns <= conversation.end_ns for c in children
    )
    frame_loop, close = children[-2], children[-1]
    for name in ("frames", "frames_dropped", "frames_late", "step_ms_p50", "step_ms_p99"):
        assert frame_loop.attributes[name] == attributes[name]
    assert close.attributes["outcome"] == attributes["outcome"]
    assert close.attributes["close_code"] in (1000, 1001, 1006)

    points = [p for p in points_in(exports) if p.service == "moshi-backend"]
    active = [p.value for p in points if p.name == "moshi.conversations.active"]
    assert 1 in active and active[-1] == 0  # one during the conversation, none at the end
    steps = [p for p in points if p.name == "moshi.step.duration"]
    assert steps and steps[-1].kind == "histogram" and steps[-1].unit == "ms"
    assert steps[-1].value == attributes["frames"]  # one record per frame stepped
    names = {p.name for p in points}
    assert {"moshi.frames.dropped", "moshi.frames.late"} <= names
    assert {"process.memory.rss", "process.cpu.utilization"} <= names

    logs = [r for r in logs_in(exports) if r.service == "moshi-backend"]
    start = [r for r in logs if str(r.body).startswith(f"{attributes['session']}: start")]
    assert len(start) == 1 and start[0].scope == "moshi_backend.server"
    assert start[0].trace_id == conversation.trace_id and start[0].severity_text == "INFO"
    # The access log's line of the upgrade went out with its query cut.
    (upgrade,) = (r for r in logs if "GET /api/chat" in str(r.body))
    assert REDACTED in str(upgrade.body) and upgrade.scope == "aiohttp.access"
    assert REDACTED in upgrade.attributes["first_request_line"]
    assert not [r for r in logs if "persona no exported" in f"{r.body}{r.attributes}"]


async def _ended_by_the_server(
    engine: Engine, query: dict[str, str]
) -> tuple[ChatClosed, list[SpanSeen]]:
    """One conversation the server ends by itself; how it closed, and the spans it exported."""
    with fake_collector() as collector:
        handle = await asyncio.to_thread(setup_telemetry, "moshi-backend", collector.endpoint)
        try:
            async with backend_in_loop(engine, tracer=handle.tracer) as backend:
                async with ChatClient.connect(backend.chat_url, query) as client:
                    closed = await client.closed_reason()
                await backend.wait_idle()
        finally:
            await asyncio.to_thread(handle.shutdown)
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()
    return closed, spans_in(exports)


async def test_a_rejected_request_ends_its_trace_at_the_parameter_check() -> None:
    closed, spans = await _ended_by_the_server(LoopbackEngine(), {"seed": "soon"})
    assert closed.reason is not None and "bad seed" in closed.reason
    (conversation,) = (s for s in spans if s.name == "moshi.conversation")
    assert (
        conversation.attributes["outcome"] == "rejected" and "voice" not in conversation.attributes
    )
    children = _children(spans, conversation)
    assert [c.name for c in children] == ["moshi.upgrade", "moshi.params", "moshi.close"]
    params = children[1]
    assert params.status_code == _ERROR and params.status_message == closed.reason
    assert children[2].attributes == {"outcome": "rejected", "close_code": 1008}


async def test_serve_with_an_unreachable_collector_serves_without_telemetry(
    closed_endpoint: str, caplog: pytest.LogCaptureFixture
) -> None:
    await _serve_one_conversation(closed_endpoint, "NATF2.pt")
    wait_for_telemetry_threads_to_end()
    disabled = [r.getMessage() for r in caplog.records if "telemetry disabled" in r.getMessage()]
    assert len(disabled) == 1 and closed_endpoint in disabled[0]


class _FailingPromptSession(LoopbackSession):
    def __init__(self, params: ChatParams) -> None:
        super().__init__(0, params)
        self._ready: Future[None] = Future()
        self._ready.set_exception(EngineError("voice file unreadable"))

    @property
    def ready(self) -> Future[None]:
        return self._ready


class _FailingPromptEngine(LoopbackEngine):
    """An engine with persona prompts whose prompt fails."""

    @property
    def info(self) -> EngineInfo:
        return dataclasses.replace(super().info, persona_prompts=True)

    def start_session(self, params: ChatParams) -> LoopbackSession:
        return _FailingPromptSession(params)


async def test_an_engine_error_is_the_status_of_the_conversation_and_of_its_phase() -> None:
    closed, spans = await _ended_by_the_server(_FailingPromptEngine(), {})
    assert closed.close_code == CloseCode.INTERNAL_ERROR
    (conversation,) = (s for s in spans if s.name == "moshi.conversation")
    assert conversation.attributes["outcome"] == "error"
    assert conversation.status_code == _ERROR
    assert conversation.status_message == "engine error: voice file unreadable"
    children = _children(spans, conversation)
    assert [c.name for c in children] == [
        "moshi.upgrade",
        "moshi.params",
        "moshi.slot_wait",
        "moshi.persona_prompt",
        "moshi.close",
    ]
    prompt = children[3]
    assert prompt.status_code == _ERROR and prompt.status_message == "voice file unreadable"
    assert children[-1].attributes == {"outcome": "error", "close_code": CloseCode.INTERNAL_ERROR}
