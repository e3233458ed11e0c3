"""Records and OTLP senders for the telemetry tests: what the services' SDK would send."""

from __future__ import annotations

import logging
import os
import uuid
from typing import Any

from opentelemetry.exporter.otlp.proto.http import Compression
from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler
from opentelemetry.sdk._logs.export import SimpleLogRecordProcessor
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor

from orchestrator.telemetry.records import Level, LogEntry, MetricPoint, Span


def span(
    trace_id: str,
    span_id: str,
    name: str,
    *,
    parent: str | None = None,
    resource: str = "moshi-backend",
    start_ms: float = 1_000.0,
    duration_ms: float = 10.0,
    status: str = "unset",
    **attributes: Any,
) -> Span:
    return Span(
        trace_id,
        span_id,
        parent,
        name,
        resource,
        "server",
        start_ms,
        start_ms + duration_ms,
        status,
        "",
        attributes,
    )


def log(
    message: str,
    *,
    level: Level = Level.INFO,
    resource: str = "moshi-backend",
    logger: str = "moshi_backend.server",
    time_ms: float = 1_000.0,
    trace_id: str | None = None,
) -> LogEntry:
    return LogEntry(time_ms, resource, level, logger, message, trace_id, None)


def point(name: str, time_ms: float, value: float, resource: str = "moshi-backend") -> MetricPoint:
    return MetricPoint(resource, name, "1", time_ms, value)


def trace_id() -> str:
    return uuid.uuid4().hex


def span_id() -> str:
    return uuid.uuid4().hex[:16]


def _resource(service: str) -> Resource:
    return Resource.create({"service.name": service, "service.instance.id": "test"})


def _compression(gzip: bool) -> Compression:
    return Compression.Gzip if gzip else Compression.NoCompression


def tracer_provider(url: str, service: str, *, gzip: bool = False) -> TracerProvider:
    """Exports each span as it ends (blocking: call from a thread), like the services' SDK."""
    provider = TracerProvider(resource=_resource(service))
    exporter = OTLPSpanExporter(endpoint=f"{url}/v1/traces", compression=_compression(gzip))
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider


def meter_provider(url: str, service: str, *, gzip: bool = False) -> MeterProvider:
    """Exports on force_flush() only (blocking)."""
    exporter = OTLPMetricExporter(endpoint=f"{url}/v1/metrics", compression=_compression(gzip))
    reader = PeriodicExportingMetricReader(exporter, export_interval_millis=3_600_000)
    return MeterProvider(metric_readers=[reader], resource=_resource(service))


def logging_handler(
    url: str, service: str, *, gzip: bool = False
) -> tuple[LoggerProvider, logging.Handler]:
    """A handler that exports each record at once (blocking), as the SDK's LoggingHandler does
    for the services' root logger."""
    provider = LoggerProvider(resource=_resource(service))
    exporter = OTLPLogExporter(endpoint=f"{url}/v1/logs", compression=_compression(gzip))
    provider.add_log_record_processor(SimpleLogRecordProcessor(exporter))
    return provider, LoggingHandler(level=logging.INFO, logger_provider=provider)


def spans_body(count: int, service: str = "moshi-backend", *, start_ns: int = 10**18) -> bytes:
    """An ExportTraceServiceRequest of count spans (one trace, each a child of the first), as
    the SDK's encoder makes them: ids, times, a few attributes of each kind."""
    trace = os.urandom(16)
    request = ExportTraceServiceRequest()
    resource_spans = request.resource_spans.add()
    resource_spans.resource.attributes.add(key="service.name").value.string_value = service
    scope = resource_spans.scope_spans.add()
    scope.scope.name = "moshi_backend.server"
    root = os.urandom(8)
    for index in range(count):
        one = scope.spans.add()
        one.trace_id = trace
        one.span_id = root if index == 0 else os.urandom(8)
        if index:
            one.parent_span_id = root
        one.name = "moshi.frame_loop" if index else "moshi.conversation"
        one.kind = 2
        one.start_time_unix_nano = start_ns + index * 1_000
        one.end_time_unix_nano = start_ns + index * 1_000 + 500_000
        one.attributes.add(key="outcome").value.string_value = "completed"
        one.attributes.add(key="frames").value.int_value = index
        one.attributes.add(key="step_ms_p99").value.double_value = 12.5
    return bytes(request.SerializeToString())
