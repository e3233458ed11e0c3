"""OpenTelemetry traces, metrics and logs that are off unless a collector answers at startup.

The OTLP/HTTP exporters make synchronous `requests` calls. A slow or unreachable collector must
never stall an asyncio event loop (WebSocket timeouts, audio gaps, dropped connections), so:

- no endpoint: telemetry is off and nothing touches the network;
- an endpoint that does not answer a HEAD within `probe_timeout_s`: telemetry is off, with one
  log line saying why;
- otherwise spans, metrics and log records go out from the SDK's own threads (pipelines.py),
  each export given up after 2 s, so a collector that dies later costs dropped data, not a
  blocked caller.

`setup_telemetry()` and `TelemetryHandle.shutdown()` block (up to a few seconds): call them before
the event loop starts or through `asyncio.to_thread`. Spans, instruments and log calls are cheap
on the loop: they only record in memory or queue.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

from opentelemetry import metrics, trace

from stack_telemetry.log_bridge import attach_log_bridge, detach_log_bridge
from stack_telemetry.pipelines import Pipelines, build_pipelines, signal_url
from stack_telemetry.probe import PROBE_TIMEOUT_S, probe_collector

log = logging.getLogger(__name__)

SHUTDOWN_TIMEOUT_S = 5.0


@dataclass(frozen=True)
class TelemetryHandle:
    """What setup decided. `tracer` and `meter` work either way: no-ops when telemetry is off."""

    enabled: bool
    reason: str
    tracer: trace.Tracer
    meter: metrics.Meter
    pipelines: Pipelines | None = None
    log_handler: logging.Handler | None = None

    @classmethod
    def disabled(cls, reason: str) -> TelemetryHandle:
        return cls(
            enabled=False, reason=reason, tracer=trace.NoOpTracer(), meter=metrics.NoOpMeter("off")
        )

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Export what is queued (spans, a last metric collection, log records) and stop the
        export threads; False if that took over timeout_s.

        Blocks up to timeout_s in all. The SDK's shutdowns wait up to 30 s each, so the three
        run at once on daemon threads that are abandoned, not waited for, past the deadline.
        """
        if self.log_handler is not None:
            detach_log_bridge(self.log_handler)  # records logged from now on are not queued
        if self.pipelines is None:
            return True
        pipelines = self.pipelines
        deadline = time.monotonic() + timeout_s
        stoppers = [
            threading.Thread(target=stop, name="telemetry-shutdown", daemon=True)
            for stop in (
                pipelines.tracer_provider.shutdown,
                lambda: pipelines.meter_provider.shutdown(timeout_millis=timeout_s * 1000),
                pipelines.logger_provider.shutdown,
            )
        ]
        for stopper in stoppers:
            stopper.start()
        for stopper in stoppers:
            stopper.join(max(deadline - time.monotonic(), 0.0))
        if any(stopper.is_alive() for stopper in stoppers):
            log.warning(
                "telemetry: shutdown gave up after %.1f s; unexported data is lost", timeout_s
            )
            return False
        return True


def setup_telemetry(
    service_name: str,
    endpoint: str | None,
    *,
    metric_export_interval_ms: int | None = None,
    log_filters: Sequence[logging.Filter] = (),
    probe_timeout_s: float = PROBE_TIMEOUT_S,
) -> TelemetryHandle:
    """Traces, metrics and logs for one service, or a disabled handle.

    One probe decides for all three. Blocks up to probe_timeout_s (the probe). While enabled, a
    handler on the root logger exports INFO records and above that pass log_filters;
    shutdown() removes it.
    """
    if not endpoint:
        reason = "OTEL_EXPORTER_OTLP_ENDPOINT is not set"
        log.info("telemetry disabled: %s", reason)
        return TelemetryHandle.disabled(reason)
    problem = probe_collector(signal_url(endpoint, "traces"), probe_timeout_s)
    if problem is not None:
        reason = f"OTLP collector at {endpoint} is unreachable: {problem}"
        log.warning(
            "telemetry disabled: %s; no traces, metrics or logs will be exported "
            "(start the collector or unset OTEL_EXPORTER_OTLP_ENDPOINT, then restart)",
            reason,
        )
        return TelemetryHandle.disabled(reason)
    pipelines = build_pipelines(service_name, endpoint, metric_export_interval_ms)
    handler = attach_log_bridge(pipelines.logger_provider, log_filters)
    log.info("telemetry enabled: %s exports traces, metrics and logs to %s", service_name, endpoint)
    return TelemetryHandle(
        enabled=True,
        reason=f"OTLP collector at {endpoint} answered",
        tracer=pipelines.tracer_provider.get_tracer(service_name),
        meter=pipelines.meter_provider.get_meter(service_name),
        pipelines=pipelines,
        log_handler=handler,
    )
