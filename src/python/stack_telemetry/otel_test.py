from __future__ import annotations

import asyncio
import itertools
import logging
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from opentelemetry import metrics, trace

from stack_telemetry.otel import TelemetryHandle, setup_telemetry
from stack_telemetry.process_metrics import register_process_metrics
from stack_telemetry.testing import fake_collector, wait_for_telemetry_threads_to_end
from stack_telemetry.testing_otlp import logs_in, points_in, spans_in

# Generous: these bound "quickly" and "about 2 s" without timing the machine.
_QUICK_S = 5.0
_BOUNDED_S = 10.0


@pytest.fixture
def closed_port() -> Iterator[int]:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))  # bound, never listening: held so no one else takes it
        yield int(sock.getsockname()[1])


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A collector that accepts connections (the kernel does) and never says a word."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(8)
        yield int(sock.getsockname()[1])
    # Closing the listener resets the connections it queued, which ends the prober.
    wait_for_telemetry_threads_to_end()


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every attempt to resolve or connect, which then fails."""
    attempts: list[str] = []

    def refuse(name: str) -> Any:
        def attempt(*args: object, **kwargs: object) -> None:
            attempts.append(f"{name}{args}")
            raise OSError(f"test forbids network use: {name}")

        return attempt

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse(name))
    for name in ("connect", "connect_ex"):
        monkeypatch.setattr(socket.socket, name, refuse(f"socket.{name}"))
    return attempts


def _span_is_usable(handle: TelemetryHandle) -> None:
    with handle.tracer.start_as_current_span("work", attributes={"n": 1}) as span:
        span.set_attribute("outcome", "fine")
    handle.meter.create_counter("unit.work").add(1)
    handle.meter.create_histogram("unit.step", unit="ms").record(12.5)
    logging.getLogger("unit.work").warning("work done")


def _root_handlers() -> list[logging.Handler]:
    return list(logging.getLogger().handlers)


@pytest.mark.parametrize("endpoint", [None, ""])
def test_no_endpoint_is_disabled_and_touches_no_network(
    endpoint: str | None, no_network: list[str]
) -> None:
    threads_before, handlers_before = threading.active_count(), _root_handlers()
    handle = setup_telemetry("unit", endpoint)
    assert not handle.enabled and handle.pipelines is None and handle.log_handler is None
    assert "OTEL_EXPORTER_OTLP_ENDPOINT is not set" in handle.reason
    assert isinstance(handle.tracer, trace.NoOpTracer)
    assert isinstance(handle.meter, metrics.NoOpMeter)
    assert _root_handlers() == handlers_before
    _span_is_usable(handle)
    assert handle.shutdown() is True
    assert no_network == []
    assert threading.active_count() == threads_before


def test_closed_port_disables_quickly_and_says_which_endpoint(
    closed_port: int, caplog: pytest.LogCaptureFixture
) -> None:
    endpoint = f"http://127.0.0.1:{closed_port}"
    started = time.monotonic()
    handlers_before = _root_handlers()
    handle = setup_telemetry("unit", endpoint)
    assert time.monotonic() - started < _QUICK_S
    assert not handle.enabled and handle.pipelines is None
    assert isinstance(handle.meter, metrics.NoOpMeter) and _root_handlers() == handlers_before
    assert endpoint in handle.reason and "unreachable" in handle.reason
    assert "Connection" in handle.reason  # ConnectionRefusedError: the cause, not only the effect
    _span_is_usable(handle)
    disabled_lines = [r for r in caplog.records if "telemetry disabled" in r.getMessage()]
    assert len(disabled_lines) == 1 and endpoint in disabled_lines[0].getMessage()
    wait_for_telemetry_threads_to_end()


async def test_silent_collector_gives_up_after_the_probe_timeout_without_blocking_the_loop(
    silent_port: int,
) -> None:
    endpoint = f"http://127.0.0.1:{silent_port}"
    ticks: list[float] = []

    async def tick() -> None:
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.02)

    ticker = asyncio.create_task(tick())
    started = time.monotonic()
    try:
        # How a service calls it from async code: the probe blocks a worker thread, not the loop.
        handle = await asyncio.wait_for(
            asyncio.to_thread(setup_telemetry, "unit", endpoint), _BOUNDED_S
        )
    finally:
        ticker.cancel()
        await asyncio.gather(ticker, return_exceptions=True)
    elapsed = time.monotonic() - started
    assert 1.5 <= elapsed < _BOUNDED_S  # waited for the 2 s probe, then gave up
    assert not handle.enabled
    assert endpoint in handle.reason and "within 2 s" in handle.reason
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert gaps and max(gaps) < 0.5


def test_a_url_that_cannot_be_probed_disables_quickly() -> None:
    started = time.monotonic()
    handle = setup_telemetry("unit", "http://127.0.0.1:not-a-port")
    assert time.monotonic() - started < _QUICK_S
    assert not handle.enabled and "ValueError" in handle.reason and "not-a-port" in handle.reason
    wait_for_telemetry_threads_to_end()


def test_https_endpoint_that_does_not_speak_tls_disables() -> None:
    with fake_collector() as collector:
        endpoint = collector.endpoint.replace("http:", "https:", 1)
        handle = setup_telemetry("unit", endpoint)
    wait_for_telemetry_threads_to_end()
    assert not handle.enabled and endpoint in handle.reason and "SSL" in handle.reason


def test_answering_collector_enables_and_receives_spans_metrics_and_logs(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)  # the root logger's level: records below it reach no handler
    with fake_collector() as collector:
        handle = setup_telemetry("unit-service", collector.endpoint, metric_export_interval_ms=200)
        try:
            assert handle.enabled and handle.pipelines is not None
            assert collector.heads == 1  # one probe for the three signals
            # Local to the handle: the process-wide providers stay the SDK's proxies.
            assert trace.get_tracer_provider() is not handle.pipelines.tracer_provider
            assert metrics.get_meter_provider() is not handle.pipelines.meter_provider
            assert handle.log_handler in _root_handlers()
            register_process_metrics(handle.meter)
            with handle.tracer.start_as_current_span("unit-span") as span:
                span.set_attribute("voice", "NATF2.pt")
                logging.getLogger("unit.inside").info("inside the span")
                trace_id = format(span.get_span_context().trace_id, "032x")
            logging.getLogger("unit.outside").debug("below INFO: not exported")
            handle.meter.create_up_down_counter("unit.active").add(1)
            handle.meter.create_histogram("unit.step", unit="ms").record(12.5)
        finally:
            assert handle.shutdown() is True  # flushes all three
        assert handle.log_handler not in _root_handlers()
        logging.getLogger("unit.after").warning("after shutdown: not exported")
        exports = collector.snapshot()
    wait_for_telemetry_threads_to_end()
    assert {e.path for e in exports} == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    (span_seen,) = spans_in(exports)
    assert (span_seen.service, span_seen.name) == ("unit-service", "unit-span")
    assert span_seen.attributes == {"voice": "NATF2.pt"} and span_seen.trace_id == trace_id
    points = {(p.name, p.kind): p for p in points_in(exports)}
    assert points["unit.active", "sum"].value == 1
    step = points["unit.step", "histogram"]
    assert step.value == 1 and step.unit == "ms"
    assert points["process.memory.rss", "gauge"].value > 1_000_000
    assert points["process.cpu.utilization", "gauge"].value >= 0
    assert {p.service for p in points.values()} == {"unit-service"}
    logs = {record.body: record for record in logs_in(exports) if record.scope.startswith("unit.")}
    assert set(logs) == {"inside the span"}
    inside = logs["inside the span"]
    assert (inside.service, inside.scope, inside.severity_text) == (
        "unit-service",
        "unit.inside",
        "INFO",
    )
    assert inside.trace_id == trace_id and inside.span_id == span_seen.span_id


def test_exports_to_a_collector_that_stopped_answering_are_abandoned_after_2_s(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with fake_collector(hold_exports=True) as collector:
        handle = setup_telemetry("unit", collector.endpoint)
        assert handle.enabled
        try:
            _span_is_usable(handle)
            started = time.monotonic()
            # The final exports hang until the exporters' 2 s timeout, all three at once:
            # shutdown waits that long, not three times that.
            done = handle.shutdown(timeout_s=_BOUNDED_S)
            assert done and time.monotonic() - started < _BOUNDED_S
        finally:
            handle.shutdown()
        exports = collector.snapshot()
    assert {e.path for e in exports} == {"/v1/traces", "/v1/metrics", "/v1/logs"}
    for export in exports:
        assert export.abandoned_at is not None
        assert 1.5 <= export.abandoned_at - export.arrived_at < _QUICK_S
    wait_for_telemetry_threads_to_end()


async def test_held_exports_of_every_signal_do_not_stall_the_loop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    with fake_collector(hold_exports=True) as collector:
        handle = setup_telemetry("unit", collector.endpoint, metric_export_interval_ms=100)
        counter = handle.meter.create_counter("unit.ticks")
        ticks: list[float] = []
        for _ in range(512):  # a full batch: the span processor exports at once
            handle.tracer.start_span("pressure").end()
        try:
            # Each tick records a metric, logs and ends a span while exports of all three hang.
            async with asyncio.timeout(_BOUNDED_S):
                while {e.path for e in collector.snapshot()} != {
                    "/v1/traces",
                    "/v1/metrics",
                    "/v1/logs",
                } or len(ticks) < 100:
                    ticks.append(time.monotonic())
                    counter.add(1)
                    logging.getLogger("unit.tick").info("tick %d", len(ticks))
                    handle.tracer.start_span("tick").end()
                    await asyncio.sleep(0.01)
        finally:
            await asyncio.to_thread(handle.shutdown, 0.5)
    wait_for_telemetry_threads_to_end()
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.5


def test_shutdown_gives_up_at_its_deadline() -> None:
    with fake_collector(hold_exports=True) as collector:
        handle = setup_telemetry("unit", collector.endpoint)
        _span_is_usable(handle)
        started = time.monotonic()
        assert handle.shutdown(timeout_s=0.3) is False
        assert time.monotonic() - started < _QUICK_S
    # Closing the collector released the held export; the abandoned shutdown then finishes.
    wait_for_telemetry_threads_to_end()
