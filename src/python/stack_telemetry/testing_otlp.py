"""What a FakeCollector really received, decoded with the OTLP protobuf messages, for tests."""

from __future__ import annotations

import gzip
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue
from opentelemetry.proto.resource.v1.resource_pb2 import Resource

from stack_telemetry.testing import ReceivedExport


@dataclass(frozen=True)
class SpanSeen:
    service: str
    name: str
    trace_id: str
    span_id: str
    parent_span_id: str  # "" for a root span
    kind: int  # opentelemetry.proto.trace.v1.Span.SpanKind
    start_ns: int
    end_ns: int
    attributes: dict[str, Any]
    status_code: int  # Status.StatusCode: 0 unset, 1 ok, 2 error
    status_message: str


@dataclass(frozen=True)
class PointSeen:
    service: str
    name: str
    unit: str
    kind: str  # gauge, sum or histogram
    time_ns: int
    value: float  # gauge and sum: the value; histogram: the count
    attributes: dict[str, Any]


@dataclass(frozen=True)
class LogSeen:
    service: str
    scope: str
    severity_text: str
    body: Any
    trace_id: str  # "" when logged outside a span
    span_id: str
    attributes: dict[str, Any]


def _value(value: AnyValue) -> Any:
    which = value.WhichOneof("value")
    if which is None:
        return None
    if which == "array_value":
        return [_value(item) for item in value.array_value.values]
    if which == "kvlist_value":
        return _attributes(value.kvlist_value.values)
    return getattr(value, which)


def _attributes(pairs: Iterable[KeyValue]) -> dict[str, Any]:
    return {pair.key: _value(pair.value) for pair in pairs}


def _service(resource: Resource) -> str:
    return str(_attributes(resource.attributes).get("service.name", ""))


# Per signal: its request message and the field names of its resource > scope > item nesting.
_LAYOUT: dict[str, tuple[Callable[[], Any], str, str, str]] = {
    "traces": (ExportTraceServiceRequest, "resource_spans", "scope_spans", "spans"),
    "metrics": (ExportMetricsServiceRequest, "resource_metrics", "scope_metrics", "metrics"),
    "logs": (ExportLogsServiceRequest, "resource_logs", "scope_logs", "log_records"),
}


def _items(exports: list[ReceivedExport], signal: str) -> Iterator[tuple[str, str, Any]]:
    """(service.name, scope name, item) of every item of every export of signal, in order."""
    message, resources_field, scopes_field, items_field = _LAYOUT[signal]
    for export in exports:
        if export.path != f"/v1/{signal}":
            continue
        body = gzip.decompress(export.body) if export.content_encoding == "gzip" else export.body
        request = message()
        request.ParseFromString(body)
        for resource_part in getattr(request, resources_field):
            service = _service(resource_part.resource)
            for scope_part in getattr(resource_part, scopes_field):
                for item in getattr(scope_part, items_field):
                    yield service, scope_part.scope.name, item


def spans_in(exports: list[ReceivedExport]) -> list[SpanSeen]:
    """Every span of every /v1/traces export, in the order they arrived."""
    return [
        SpanSeen(
            service=service,
            name=span.name,
            trace_id=span.trace_id.hex(),
            span_id=span.span_id.hex(),
            parent_span_id=span.parent_span_id.hex(),
            kind=span.kind,
            start_ns=span.start_time_unix_nano,
            end_ns=span.end_time_unix_nano,
            attributes=_attributes(span.attributes),
            status_code=span.status.code,
            status_message=span.status.message,
        )
        for service, _, span in _items(exports, "traces")
    ]


def points_in(exports: list[ReceivedExport]) -> list[PointSeen]:
    """Every gauge, sum and histogram data point of every /v1/metrics export."""
    seen = []
    for service, _, metric in _items(exports, "metrics"):
        kind = metric.WhichOneof("data")
        if kind not in ("gauge", "sum", "histogram"):
            continue
        for point in getattr(metric, kind).data_points:
            if kind == "histogram":
                value = float(point.count)
            else:
                number = point.WhichOneof("value")
                value = float(getattr(point, number)) if number else 0.0
            seen.append(
                PointSeen(
                    service,
                    metric.name,
                    metric.unit,
                    kind,
                    point.time_unix_nano,
                    value,
                    _attributes(point.attributes),
                )
            )
    return seen


def logs_in(exports: list[ReceivedExport]) -> list[LogSeen]:
    """Every log record of every /v1/logs export."""
    return [
        LogSeen(
            service=service,
            scope=scope,
            severity_text=record.severity_text,
            body=_value(record.body),
            trace_id=record.trace_id.hex(),
            span_id=record.span_id.hex(),
            attributes=_attributes(record.attributes),
        )
        for service, scope, record in _items(exports, "logs")
    ]
