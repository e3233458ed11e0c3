"""Telemetry through the relay: the frontend's span is the parent of the backend's conversation,
and the relay's metrics and logs go out. What the collector received is decoded, not searched."""

from __future__ import annotations

import asyncio
import logging

import pytest

from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.testing import backend_in_loop, ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import CloseCode, MessageKind
from stack_telemetry.otel import setup_telemetry
from stack_telemetry.testing import fake_collector, wait_for_telemetry_threads_to_end
from stack_telemetry.testing_otlp import logs_in, points_in, spans_in

_SERVER_KIND = 2  # opentelemetry.proto.trace.v1.Span.SpanKind.SPAN_KIND_SERVER


async def test_the_relay_span_is_the_parent_of_the_backend_conversation(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the relay's log lines reach the OTLP log handler
    with fake_collector() as collector:
        backend_telemetry = await asyncio.to_thread(
            setup_telemetry, "moshi-backend", collector.endpoint
        )
        try:
            async with backend_in_loop(
                LoopbackEngine(capacity=1), tracer=backend_telemetry.tracer
            ) as backend:
                settings = FrontendSettings(
                    moshi_backend_url=backend.base_url,
                    moshi_proxy=True,
                    otel_exporter_otlp_endpoint=collector.endpoint,
                    otel_metric_export_interval=200,
                )
                async with frontend_in_loop(settings) as base:
                    proxy_url = base.replace("http", "ws", 1) + "/proxy/moshi"
                    async with ChatClient.connect(
                        proxy_url, {"voice_prompt": "VARF3.pt"}
                    ) as client:
                        await client.handshake()
                        # 1.2 s in real time: the 200 ms metric exports see the relay open.
                        for page in ogg_pages(tone(1.2)):
                            await client.send_audio(page)
                            await asyncio.sleep(0.08)
                        while (await client.receive()).kind is not MessageKind.AUDIO:
                            pass
                    await backend.wait_idle()
                    async with ChatClient.connect(proxy_url, {"seed": "soon"}) as refused:
                        closed = await refused.closed_reason()
                # The frontend's lifespan has ended: its telemetry is flushed.
        finally:
            await asyncio.to_thread(backend_telemetry.shutdown)
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()
    assert closed.close_code == CloseCode.POLICY_VIOLATION

    spans = spans_in(exports)
    relayed, rejected = sorted(
        (s for s in spans if s.name == "frontend.proxy"), key=lambda s: s.start_ns
    )
    assert relayed.service == "frontend" and relayed.kind == _SERVER_KIND
    assert relayed.parent_span_id == ""
    assert relayed.attributes["bytes_to_backend"] > 0 and relayed.attributes["bytes_to_browser"] > 0
    assert relayed.attributes["outcome"] == "client_gone"  # the browser hung up first
    (conversation,) = (s for s in spans if s.name == "moshi.conversation")
    assert conversation.service == "moshi-backend"
    assert conversation.trace_id == relayed.trace_id  # one conversation, one trace
    assert conversation.parent_span_id == relayed.span_id
    # Started within the relay; it may end a little after it (the backend's close handshake).
    assert relayed.start_ns <= conversation.start_ns <= relayed.end_ns
    # Refused by the frontend itself: nothing reached the backend.
    assert rejected.attributes["outcome"] == "rejected"
    assert rejected.attributes["close_code"] == CloseCode.POLICY_VIOLATION
    assert not [s for s in spans if s.trace_id == rejected.trace_id and s.service != "frontend"]

    points = [p for p in points_in(exports) if p.service == "frontend"]
    active = [p.value for p in points if p.name == "frontend.relays.active"]
    assert 1 in active and active[-1] == 0
    assert [p.value for p in points if p.name == "frontend.relays.total"][-1] == 2
    assert {"process.memory.rss", "process.cpu.utilization"} <= {p.name for p in points}

    logs = [r for r in logs_in(exports) if r.service == "frontend"]
    (opened,) = (r for r in logs if str(r.body).startswith("proxy session opened"))
    assert opened.scope == "frontend.proxy" and opened.trace_id == relayed.trace_id
