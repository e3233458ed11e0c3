"""Decoding details the SDK tests do not reach: percentiles, severities, odd ids."""

from __future__ import annotations

import pytest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.proto.logs.v1.logs_pb2 import LogRecord, SeverityNumber
from opentelemetry.proto.metrics.v1.metrics_pb2 import Metric

from orchestrator.telemetry.decoding import Undecodable, decode_traces, level_of, metric_points
from orchestrator.telemetry.histograms import explicit_quantile, exponential_quantile
from orchestrator.telemetry.records import Level


def test_explicit_quantiles_interpolate_inside_the_bucket() -> None:
    # 10 values in (0, 10], 10 in (10, 20]: the median is the first bucket's top.
    assert explicit_quantile(0.5, [10, 20], [10, 10, 0]) == pytest.approx(10.0)
    assert explicit_quantile(0.75, [10, 20], [10, 10, 0]) == pytest.approx(15.0)
    # The open last bucket ends at the recorded max, else at its lower bound.
    assert explicit_quantile(0.99, [10], [0, 4], high=30.0) == pytest.approx(29.8)
    assert explicit_quantile(0.99, [10], [0, 4]) == pytest.approx(10.0)
    assert explicit_quantile(0.5, [10], [0, 0]) is None
    assert explicit_quantile(0.5, [10], [1]) is None  # counts do not match the bounds


def test_exponential_quantiles() -> None:
    # scale 0: base 2, bucket i covers (2**i, 2**(i+1)]; offset 3: (8, 16] and (16, 32].
    assert exponential_quantile(0.5, 0, 0, 3, [5, 5]) == pytest.approx(16.0)
    assert exponential_quantile(0.5, 0, 6, 3, [2, 2]) == 0.0
    assert exponential_quantile(0.5, 0, 0, 3, []) is None


def test_summaries_become_p50_p99_and_count() -> None:
    metric = Metric(name="latency", unit="ms")
    point = metric.summary.data_points.add(time_unix_nano=2_000_000, count=7)
    point.quantile_values.add(quantile=0.5, value=3.0)
    point.quantile_values.add(quantile=0.99, value=9.0)
    point.quantile_values.add(quantile=0.9, value=8.0)
    found = {(p.name, p.time_ms, p.value) for p in metric_points("frontend", metric)}
    assert found == {
        ("latency.p50", 2.0, 3.0),
        ("latency.p99", 2.0, 9.0),
        ("latency.count", 2.0, 7.0),
    }


@pytest.mark.parametrize(
    ("number", "text", "level"),
    [
        (SeverityNumber.SEVERITY_NUMBER_INFO, "INFO", Level.INFO),
        (SeverityNumber.SEVERITY_NUMBER_WARN, "", Level.WARNING),
        (SeverityNumber.SEVERITY_NUMBER_ERROR, "whatever", Level.ERROR),
        (SeverityNumber.SEVERITY_NUMBER_FATAL, "", Level.CRITICAL),
        (SeverityNumber.SEVERITY_NUMBER_DEBUG, "", Level.DEBUG),
        (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "WARNING", Level.WARNING),
        (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "fatal", Level.CRITICAL),
        (SeverityNumber.SEVERITY_NUMBER_UNSPECIFIED, "", Level.INFO),
    ],
)
def test_levels_from_severity(number: SeverityNumber.ValueType, text: str, level: Level) -> None:
    assert level_of(LogRecord(severity_number=number, severity_text=text)) is level


def test_a_span_without_ids_is_undecodable() -> None:
    request = ExportTraceServiceRequest()
    request.resource_spans.add().scope_spans.add().spans.add(name="nameless", trace_id=bytes(16))
    with pytest.raises(Undecodable, match="'nameless' has no valid trace or span id"):
        decode_traces(request.SerializeToString())


def test_an_empty_request_is_no_error() -> None:
    assert len(decode_traces(b"")) == 0
