"""The receiver on a real port, fed by the SDK's own OTLP/HTTP exporters and by bad clients."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import logging
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import pytest
from opentelemetry.trace import SpanKind, Status, StatusCode

from orchestrator.errors import OrchestratorError
from orchestrator.telemetry.queries import LogFilter, MetricFilter, TraceFilter
from orchestrator.telemetry.receiver import DEFAULT_PORT, PROTOBUF, OtlpReceiver
from orchestrator.telemetry.store import TelemetryStore
from orchestrator.telemetry.testing import (
    logging_handler,
    meter_provider,
    spans_body,
    tracer_provider,
)
from testsupport.processes import free_port


@dataclass
class Receiving:
    store: TelemetryStore
    receiver: OtlpReceiver
    url: str


async def _receiving(tmp_path: Path, **options: int) -> AsyncIterator[Receiving]:
    store = TelemetryStore(tmp_path)
    await asyncio.to_thread(store.open, new_run=True)
    receiver = OtlpReceiver(store.add, **options)
    port = await receiver.start("127.0.0.1", free_port())
    try:
        yield Receiving(store, receiver, f"http://127.0.0.1:{port}")
    finally:
        await receiver.stop()
        await asyncio.to_thread(store.close)


@pytest.fixture
async def receiving(tmp_path: Path) -> AsyncIterator[Receiving]:
    async for value in _receiving(tmp_path, max_body=16 * 1024):
        yield value


async def test_spans_from_the_sdk_exporter(receiving: Receiving) -> None:
    def export() -> None:
        provider = tracer_provider(receiving.url, "frontend")
        tracer = provider.get_tracer("frontend.relay")
        with tracer.start_as_current_span("frontend.proxy", kind=SpanKind.SERVER) as relay:
            relay.set_attribute("outcome", "error")
            relay.set_attribute("bytes_to_backend", 1234)
            with tracer.start_as_current_span("moshi.conversation") as child:
                child.add_event("first frame", {"frame": 1})
                child.set_status(Status(StatusCode.ERROR, "engine failed"))
        provider.shutdown()

    await asyncio.to_thread(export)
    [summary] = receiving.store.traces(None, TraceFilter())
    assert summary["name"] == "frontend.proxy" and summary["outcome"] == "error"
    assert summary["resources"] == ["frontend"] and summary["error"] is True
    relay, child = receiving.store.trace(None, summary["trace_id"])
    assert relay["kind"] == "server" and relay["attributes"]["bytes_to_backend"] == 1234
    assert child["parent_span_id"] == relay["span_id"] and child["kind"] == "internal"
    assert child["status"] == "error" and child["status_message"] == "engine failed"
    [event] = child["events"]
    assert event["name"] == "first frame" and event["attributes"] == {"frame": 1}
    assert relay["start_ms"] <= child["start_ms"] <= child["end_ms"] <= relay["end_ms"]
    assert abs(relay["start_ms"] - time.time() * 1000) < 60_000


async def test_metrics_from_the_sdk_exporter_gzipped(receiving: Receiving) -> None:
    def export() -> None:
        provider = meter_provider(receiving.url, "moshi-backend", gzip=True)
        meter = provider.get_meter("moshi_backend")
        meter.create_counter("moshi.frames.dropped").add(3)
        active = meter.create_up_down_counter("moshi.conversations.active", unit="{conversation}")
        active.add(2)
        active.add(-1)
        step = meter.create_histogram(
            "moshi.step.duration", unit="ms", explicit_bucket_boundaries_advisory=[10, 20, 50, 100]
        )
        for value in [5.0] * 50 + [15.0] * 45 + [80.0] * 5:
            step.record(value)
        provider.force_flush()
        provider.shutdown()

    await asyncio.to_thread(export)
    series = {
        s["name"]: s for s in receiving.store.metrics(None, MetricFilter(resource="moshi-backend"))
    }
    last = {name: s["points"][-1][1] for name, s in series.items()}
    assert last["moshi.frames.dropped"] == 3.0
    assert last["moshi.conversations.active"] == 1.0
    assert series["moshi.conversations.active"]["unit"] == "{conversation}"
    assert last["moshi.step.duration.count"] == 100.0
    # 50 of 100 at or below 10 ms (the first bucket, from the min 5 ms up): the median is 10.
    assert last["moshi.step.duration.p50"] == pytest.approx(10.0)
    # The 99th is in (50, 100], capped by the max 80 ms.
    assert 50.0 < last["moshi.step.duration.p99"] <= 80.0
    assert series["moshi.step.duration.p99"]["unit"] == "ms"


async def test_logs_from_the_sdk_handler(receiving: Receiving) -> None:
    def export() -> str:
        provider, handler = logging_handler(receiving.url, "moshi-backend")
        logger = logging.getLogger("moshi_backend.server.test")
        logger.addHandler(handler)
        logger.propagate = False
        tracer = tracer_provider(receiving.url, "moshi-backend").get_tracer("t")
        try:
            logger.setLevel(logging.INFO)
            logger.info("client connected from %s", "127.0.0.1")
            with tracer.start_as_current_span("moshi.conversation") as span:
                logger.error("engine step failed")
                trace_id = format(span.get_span_context().trace_id, "032x")
        finally:
            logger.removeHandler(handler)
            provider.shutdown()
        return trace_id

    trace_id = await asyncio.to_thread(export)
    error, info = receiving.store.logs(None, LogFilter())
    assert info["message"] == "client connected from 127.0.0.1" and info["level"] == "info"
    assert info["logger"] == "moshi_backend.server.test" and info["resource"] == "moshi-backend"
    assert info["trace_id"] is None
    assert error["level"] == "error" and error["trace_id"] == trace_id
    assert error["span_id"] is not None and error["seq"] == info["seq"] + 1
    assert abs(error["time_ms"] - time.time() * 1000) < 60_000


async def _post(
    url: str, body: bytes, *, content_type: str = PROTOBUF, encoding: str | None = None
) -> tuple[int, str]:
    headers = {"Content-Type": content_type}
    if encoding:
        headers["Content-Encoding"] = encoding
    async with aiohttp.ClientSession() as session:
        async with session.post(url, data=body, headers=headers) as response:
            return response.status, await response.text()


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "says"),
    [
        ("/v1/traces", spans_body(1), {"content_type": "application/json"}, 415, "Content-Type"),
        ("/v1/traces", spans_body(1), {"encoding": "br"}, 415, "Content-Encoding 'br'"),
        ("/v1/traces", b"\xff" * 40, {}, 400, "not a ExportTraceServiceRequest"),
        ("/v1/logs", b"hello world", {}, 400, "not a ExportLogsServiceRequest"),
        ("/v1/metrics", spans_body(1)[:30], {}, 400, "not a ExportMetricsServiceRequest"),
        ("/v1/traces", b"\x1f\x8b not gzip at all", {"encoding": "gzip"}, 400, "bad gzip"),
        ("/v1/traces", gzip.compress(spans_body(2))[:-12], {"encoding": "gzip"}, 400, "truncated"),
        ("/v1/traces", spans_body(400), {}, 413, ""),
        ("/v1/traces", gzip.compress(b"\0" * 200_000), {"encoding": "gzip"}, 413, "decompressed"),
        ("/v1/profiles", spans_body(1), {}, 404, ""),
    ],
    ids=[
        "json",
        "brotli",
        "garbage",
        "text",
        "truncated",
        "not-gzip",
        "truncated-gzip",
        "oversized",
        "gzip-bomb",
        "unknown-path",
    ],
)
async def test_bad_requests_get_a_clear_error_and_store_nothing(
    receiving: Receiving,
    path: str,
    body: bytes,
    headers: dict[str, str],
    status: int,
    says: str,
) -> None:
    answer = await _post(receiving.url + path, body, **headers)
    assert answer[0] == status, answer
    assert says in answer[1] and "\n" not in answer[1].strip()
    assert receiving.store.received == {"spans": 0, "logs": 0, "points": 0}
    # The receiver carries on.
    assert await _post(f"{receiving.url}/v1/traces", spans_body(3)) == (200, "")
    assert receiving.store.received["spans"] == 3


async def test_head_and_get_are_405(receiving: Receiving) -> None:
    async with aiohttp.ClientSession() as session:
        for method in ("HEAD", "GET"):
            async with session.request(method, f"{receiving.url}/v1/traces") as response:
                assert response.status == 405


@pytest.fixture
async def narrow(tmp_path: Path) -> AsyncIterator[Receiving]:
    """A receiver that decodes at most 4 requests at a time."""
    async for value in _receiving(tmp_path, in_flight=4):
        yield value


async def test_a_flood_is_dropped_and_counted_while_the_loop_stays_responsive(
    narrow: Receiving,
) -> None:
    body = spans_body(512)
    lags: list[float] = []

    async def tick() -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(0.005)
            lags.append(time.perf_counter() - before - 0.005)

    ticker = asyncio.create_task(tick())
    connector = aiohttp.TCPConnector(limit=200)
    async with aiohttp.ClientSession(connector=connector) as session:

        async def post() -> int:
            async with session.post(
                f"{narrow.url}/v1/traces", data=body, headers={"Content-Type": PROTOBUF}
            ) as response:
                return response.status

        statuses = await asyncio.gather(*(post() for _ in range(150)))
    ticker.cancel()
    accepted, refused = statuses.count(200), statuses.count(503)
    assert accepted + refused == 150 and refused > 0 and accepted >= 4
    assert narrow.receiver.dropped_requests == refused
    assert narrow.store.received["spans"] == accepted * 512
    lags.sort()
    # The loop kept its pace (it also ran the 150 clients): no stall behind the decoding.
    assert lags[len(lags) // 2] < 0.02 and lags[-1] < 0.25, lags[-5:]


async def test_the_default_port_taken_means_another_and_a_given_one_an_error(
    tmp_path: Path,
) -> None:
    holder = socket.socket()
    holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    with contextlib.suppress(OSError):  # taken already: as good for this test
        holder.bind(("127.0.0.1", DEFAULT_PORT))
        holder.listen()
    store = TelemetryStore(tmp_path)
    try:
        receiver = OtlpReceiver(store.add)
        port = await receiver.start("127.0.0.1", None)
        assert port != DEFAULT_PORT
        await receiver.stop()
        refused = OtlpReceiver(store.add)
        with pytest.raises(OrchestratorError, match=f"cannot listen on 127.0.0.1:{DEFAULT_PORT}"):
            await refused.start("127.0.0.1", DEFAULT_PORT)
    finally:
        holder.close()
