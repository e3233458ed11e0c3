"""The three OTLP/HTTP pipelines (traces, metrics, logs) of one service, each on its own thread.

Every exporter makes synchronous `requests` calls, so none of them may run on an event loop:
spans and log records wait in the batch processors' bounded queues (a full queue drops, it does
not block) and go out from their worker threads; metrics are collected and exported by the
periodic reader's thread. Each export is given up after EXPORT_TIMEOUT_S.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

from opentelemetry.exporter.otlp.proto.http._log_exporter import OTLPLogExporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk._logs import LoggerProvider
from opentelemetry.sdk._logs.export import BatchLogRecordProcessor
from opentelemetry.sdk.metrics import AlwaysOffExemplarFilter, MeterProvider
from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

EXPORT_TIMEOUT_S = 2.0
# The SDK's own default is 60 s; a dashboard chart wants points every few seconds.
DEFAULT_METRIC_EXPORT_INTERVAL_MS = 2000


@dataclass(frozen=True)
class Pipelines:
    tracer_provider: TracerProvider
    meter_provider: MeterProvider
    logger_provider: LoggerProvider


def signal_url(endpoint: str, signal: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; each signal has its path on it."""
    return f"{endpoint.rstrip('/')}/v1/{signal}"


def service_resource(service_name: str) -> Resource:
    return Resource.create(
        {
            "service.name": service_name,
            # Two replicas of a service (or a restart) are told apart by this.
            "service.instance.id": f"{socket.gethostname()}-{os.getpid()}",
        }
    )


def build_pipelines(
    service_name: str, endpoint: str, metric_export_interval_ms: int | None
) -> Pipelines:
    """Providers exporting to endpoint. Not installed as the process-wide ones: the services pass
    tracer and meter as arguments, and a global provider can be set only once per process, which
    would couple tests to each other."""
    resource = service_resource(service_name)
    timeout_ms = EXPORT_TIMEOUT_S * 1000
    # shutdown_on_exit=False everywhere: the handle's shutdown is bounded, the SDK's exit hooks
    # would wait up to 30 s each.
    tracer_provider = TracerProvider(resource=resource, shutdown_on_exit=False)
    tracer_provider.add_span_processor(
        BatchSpanProcessor(
            # The exporter's timeout is what bounds each export (its retries included): the
            # processor's export_timeout_millis is accepted but not used by SDK 1.45.
            OTLPSpanExporter(endpoint=signal_url(endpoint, "traces"), timeout=EXPORT_TIMEOUT_S),
            export_timeout_millis=timeout_ms,
        )
    )
    reader = PeriodicExportingMetricReader(
        OTLPMetricExporter(endpoint=signal_url(endpoint, "metrics"), timeout=EXPORT_TIMEOUT_S),
        export_interval_millis=metric_export_interval_ms or DEFAULT_METRIC_EXPORT_INTERVAL_MS,
        export_timeout_millis=timeout_ms,
    )
    meter_provider = MeterProvider(
        resource=resource,
        metric_readers=[reader],
        shutdown_on_exit=False,
        # The SDK's default keeps sampled spans' measurements as exemplars: work on every
        # record made inside a span (a step of the frame loop) for data no reader here uses.
        exemplar_filter=AlwaysOffExemplarFilter(),
    )
    logger_provider = LoggerProvider(resource=resource, shutdown_on_exit=False)
    logger_provider.add_log_record_processor(
        BatchLogRecordProcessor(
            OTLPLogExporter(endpoint=signal_url(endpoint, "logs"), timeout=EXPORT_TIMEOUT_S),
            export_timeout_millis=timeout_ms,
        )
    )
    return Pipelines(tracer_provider, meter_provider, logger_provider)
