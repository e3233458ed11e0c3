"""OTLP/HTTP protobuf request bodies decoded into the store's records. CPU work: callers run it
on a thread, never on the event loop."""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum
from typing import TypeVar

from google.protobuf.message import DecodeError  # type: ignore[import-untyped]
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from orchestrator.telemetry.histograms import explicit_quantile, exponential_quantile
from orchestrator.telemetry.otlp_values import attributes, hex_id, ms, plain, service_name
from orchestrator.telemetry.records import Batch, Level, LogEntry, MetricPoint, Span

_KINDS = {0: "unspecified", 1: "internal", 2: "server", 3: "client", 4: "producer", 5: "consumer"}
_STATUSES = {0: "unset", 1: "ok", 2: "error"}
_LEVEL_NAMES = {
    "trace": Level.DEBUG,
    "debug": Level.DEBUG,
    "info": Level.INFO,
    "warn": Level.WARNING,
    "warning": Level.WARNING,
    "error": Level.ERROR,
    "fatal": Level.CRITICAL,
    "critical": Level.CRITICAL,
}
# The percentiles derived from every histogram point, as `<name>.p50` and `<name>.p99`.
QUANTILES = ((0.5, "p50"), (0.99, "p99"))


class Signal(str, Enum):
    """The three OTLP/HTTP paths, by their last segment."""

    TRACES = "traces"
    METRICS = "metrics"
    LOGS = "logs"


class Undecodable(ValueError):
    """A body that is no Export*ServiceRequest; the message is one line for the client."""


def decode(signal: Signal, body: bytes) -> Batch:
    return _DECODERS[signal](body)


Request = TypeVar(
    "Request", ExportTraceServiceRequest, ExportLogsServiceRequest, ExportMetricsServiceRequest
)


def _parse(message_type: type[Request], body: bytes) -> Request:
    message = message_type()
    try:
        message.ParseFromString(body)
    except DecodeError as error:
        raise Undecodable(f"not a {message_type.__name__}: {error}") from None
    # Protobuf keeps fields it does not know: bytes of something else can parse "successfully".
    if body and not message.ListFields():
        raise Undecodable(f"not a {message_type.__name__}: none of its fields in {len(body)} bytes")
    return message


def decode_traces(body: bytes) -> Batch:
    request = _parse(ExportTraceServiceRequest, body)
    batch = Batch()
    for resource_spans in request.resource_spans:
        resource = service_name(resource_spans.resource)
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                trace_id, span_id = hex_id(span.trace_id), hex_id(span.span_id)
                if trace_id is None or span_id is None:
                    raise Undecodable(f"span {span.name!r} has no valid trace or span id")
                batch.spans.append(
                    Span(
                        trace_id=trace_id,
                        span_id=span_id,
                        parent_span_id=hex_id(span.parent_span_id),
                        name=span.name,
                        resource=resource,
                        kind=_KINDS.get(span.kind, "unspecified"),
                        start_ms=ms(span.start_time_unix_nano),
                        end_ms=ms(max(span.end_time_unix_nano, span.start_time_unix_nano)),
                        status=_STATUSES.get(span.status.code, "unset"),
                        status_message=span.status.message,
                        attributes=attributes(span.attributes),
                        events=[
                            {
                                "name": event.name,
                                "time_ms": ms(event.time_unix_nano),
                                "attributes": attributes(event.attributes),
                            }
                            for event in span.events
                        ],
                    )
                )
    return batch


def level_of(record: LogRecord) -> Level:
    """From severity_number (OTLP's ranges of four), else from severity_text, else INFO."""
    number = record.severity_number
    if number:
        return (Level.DEBUG, Level.DEBUG, Level.INFO, Level.WARNING, Level.ERROR, Level.CRITICAL)[
            min(max(number - 1, 0) // 4, 5)
        ]
    return _LEVEL_NAMES.get(record.severity_text.strip().lower(), Level.INFO)


def decode_logs(body: bytes) -> Batch:
    request = _parse(ExportLogsServiceRequest, body)
    batch = Batch()
    for resource_logs in request.resource_logs:
        resource = service_name(resource_logs.resource)
        for scope_logs in resource_logs.scope_logs:
            scope = scope_logs.scope.name
            for record in scope_logs.log_records:
                extra = attributes(record.attributes)
                message = plain(record.body)
                logger = extra.get("logger.name") or scope or extra.get("code.namespace") or ""
                batch.logs.append(
                    LogEntry(
                        time_ms=ms(record.time_unix_nano or record.observed_time_unix_nano),
                        resource=resource,
                        level=level_of(record),
                        logger=str(logger),
                        message=message if isinstance(message, str) else str(message or ""),
                        trace_id=hex_id(record.trace_id),
                        span_id=hex_id(record.span_id),
                    )
                )
    return batch


def decode_metrics(body: bytes) -> Batch:
    request = _parse(ExportMetricsServiceRequest, body)
    batch = Batch()
    for resource_metrics in request.resource_metrics:
        resource = service_name(resource_metrics.resource)
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                batch.points.extend(metric_points(resource, metric))
    return batch


def metric_points(resource: str, metric: Metric) -> list[MetricPoint]:
    """Gauge and Sum points as sent; histograms and summaries as `.p50`, `.p99`, `.count`."""
    found: list[MetricPoint] = []

    def add(suffix: str, time_unix_nano: int, value: float | None) -> None:
        if value is not None:
            found.append(
                MetricPoint(resource, metric.name + suffix, metric.unit, ms(time_unix_nano), value)
            )

    data = metric.WhichOneof("data")
    if data in ("gauge", "sum"):
        for number in getattr(metric, data).data_points:
            kind = number.WhichOneof("value")
            add("", number.time_unix_nano, float(getattr(number, kind)) if kind else None)
    elif data == "histogram":
        for point in metric.histogram.data_points:
            low = point.min if point.HasField("min") else None
            high = point.max if point.HasField("max") else None
            for q, suffix in QUANTILES:
                value = explicit_quantile(q, point.explicit_bounds, point.bucket_counts, low, high)
                add(f".{suffix}", point.time_unix_nano, value)
            add(".count", point.time_unix_nano, float(point.count))
    elif data == "exponential_histogram":
        for expo in metric.exponential_histogram.data_points:
            positive = expo.positive
            for q, suffix in QUANTILES:
                value = exponential_quantile(
                    q, expo.scale, expo.zero_count, positive.offset, positive.bucket_counts
                )
                add(f".{suffix}", expo.time_unix_nano, value)
            add(".count", expo.time_unix_nano, float(expo.count))
    elif data == "summary":
        for summary in metric.summary.data_points:
            for quantile in summary.quantile_values:
                for q, suffix in QUANTILES:
                    if abs(quantile.quantile - q) < 1e-9:
                        add(f".{suffix}", summary.time_unix_nano, quantile.value)
            add(".count", summary.time_unix_nano, float(summary.count))
    return found


_DECODERS: dict[Signal, Callable[[bytes], Batch]] = {
    Signal.TRACES: decode_traces,
    Signal.METRICS: decode_metrics,
    Signal.LOGS: decode_logs,
}
