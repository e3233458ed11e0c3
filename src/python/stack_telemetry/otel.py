"""OpenTelemetry tracing that is off unless a collector is configured and answers at startup.

The OTLP/HTTP exporter makes synchronous `requests` calls. A slow or unreachable collector must
never stall an asyncio event loop (WebSocket timeouts, audio gaps, dropped connections), so:

- no endpoint: tracing is off and nothing touches the network;
- an endpoint that does not answer a HEAD within `probe_timeout_s`: tracing is off, with one log
  line saying why;
- otherwise spans go through a BatchSpanProcessor, whose own thread does the exports, each given
  up after 2 s, so a collector that dies later costs dropped spans, not a blocked caller.

`setup_telemetry()` and `TelemetryHandle.shutdown()` block (up to a few seconds): call them before
the event loop starts or through `asyncio.to_thread`. Spans themselves are cheap to start and end
on the loop: ending one only queues it.
"""

from __future__ import annotations

import http.client
import logging
import ssl
import threading
import time
from dataclasses import dataclass
from urllib.parse import SplitResult, urlsplit

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor

log = logging.getLogger(__name__)

PROBE_TIMEOUT_S = 2.0
EXPORT_TIMEOUT_S = 2.0
SHUTDOWN_TIMEOUT_S = 5.0
_TRACES_PATH = "/v1/traces"


@dataclass(frozen=True)
class TelemetryHandle:
    """What setup decided. `tracer` works either way: a no-op tracer when tracing is off."""

    enabled: bool
    reason: str
    tracer: trace.Tracer
    # Not installed as the global provider: the services take `tracer` as an argument, and a
    # process-wide provider can be set only once, which would couple tests to each other.
    provider: TracerProvider | None = None

    @classmethod
    def disabled(cls, reason: str) -> TelemetryHandle:
        return cls(enabled=False, reason=reason, tracer=trace.NoOpTracer())

    def shutdown(self, timeout_s: float = SHUTDOWN_TIMEOUT_S) -> bool:
        """Export what is queued and stop the export thread; False if that took over timeout_s.

        Blocks up to timeout_s. The SDK's own shutdown waits up to 30 s for its thread, so it runs
        on a daemon thread that is abandoned, not waited for, past the deadline.
        """
        if self.provider is None:
            return True
        stopper = threading.Thread(
            target=self.provider.shutdown, name="telemetry-shutdown", daemon=True
        )
        stopper.start()
        stopper.join(timeout_s)
        if stopper.is_alive():
            log.warning(
                "telemetry: shutdown gave up after %.1f s; unexported spans are lost", timeout_s
            )
            return False
        return True


def traces_url(endpoint: str) -> str:
    """OTEL_EXPORTER_OTLP_ENDPOINT is the collector's base URL; traces go to /v1/traces on it."""
    return endpoint.rstrip("/") + _TRACES_PATH


def setup_telemetry(
    service_name: str, endpoint: str | None, *, probe_timeout_s: float = PROBE_TIMEOUT_S
) -> TelemetryHandle:
    """Tracing for one service, or a disabled handle. Blocks up to probe_timeout_s (the probe)."""
    if not endpoint:
        reason = "OTEL_EXPORTER_OTLP_ENDPOINT is not set"
        log.info("telemetry disabled: %s", reason)
        return TelemetryHandle.disabled(reason)
    url = traces_url(endpoint)
    problem = probe_collector(url, probe_timeout_s)
    if problem is not None:
        reason = f"OTLP collector at {endpoint} is unreachable: {problem}"
        log.warning(
            "telemetry disabled: %s; no spans will be exported "
            "(start the collector or unset OTEL_EXPORTER_OTLP_ENDPOINT, then restart)",
            reason,
        )
        return TelemetryHandle.disabled(reason)
    provider = TracerProvider(
        resource=Resource.create({"service.name": service_name}),
        # shutdown() is ours to call, bounded; the SDK's exit hook would wait up to 30 s.
        shutdown_on_exit=False,
    )
    provider.add_span_processor(
        BatchSpanProcessor(
            # The exporter's timeout is what bounds each export (its retries included): the
            # processor's export_timeout_millis is accepted but not used by SDK 1.45.
            OTLPSpanExporter(endpoint=url, timeout=EXPORT_TIMEOUT_S),
            export_timeout_millis=EXPORT_TIMEOUT_S * 1000,
        )
    )
    log.info("telemetry enabled: %s exports spans to %s", service_name, url)
    return TelemetryHandle(
        enabled=True,
        reason=f"OTLP collector at {endpoint} answered",
        tracer=provider.get_tracer(service_name),
        provider=provider,
    )


def probe_collector(url: str, timeout_s: float = PROBE_TIMEOUT_S) -> str | None:
    """None if an HTTP server answers a HEAD of url within timeout_s, else what went wrong.

    Any status counts as an answer (a collector says 405 to HEAD): the point is that it responds
    in time. Blocks the calling thread up to timeout_s, name resolution included, which socket
    timeouts alone do not bound: the request runs on a daemon thread that is waited for that long.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return f"not an http(s) URL: {url!r}"
    outcome: list[str | None] = []
    prober = threading.Thread(
        target=lambda: outcome.append(_head(parts, timeout_s)),
        name="telemetry-probe",
        daemon=True,
    )
    prober.start()
    prober.join(timeout_s)
    if not outcome:
        return f"no answer to HEAD {url} within {timeout_s:g} s"
    return outcome[0]


def _head(parts: SplitResult, timeout_s: float) -> str | None:
    deadline = time.monotonic() + timeout_s
    try:
        host, port = parts.hostname or "", parts.port
        if parts.scheme == "https":
            connection: http.client.HTTPConnection = http.client.HTTPSConnection(
                host, port, timeout=timeout_s, context=_reachability_only_tls()
            )
        else:
            connection = http.client.HTTPConnection(host, port, timeout=timeout_s)
        try:
            connection.request("HEAD", parts.path or "/")
            if connection.sock is not None:  # what is left of the deadline, not a fresh timeout
                connection.sock.settimeout(max(deadline - time.monotonic(), 0.001))
            connection.getresponse().close()
        finally:
            connection.close()
    except TimeoutError:
        return f"no answer to HEAD {parts.geturl()} within {timeout_s:g} s"
    # ValueError: a bad port or host name (IDNA) in the URL.
    except (OSError, http.client.HTTPException, ValueError) as error:
        return f"{type(error).__name__}: {error}"
    return None


def _reachability_only_tls() -> ssl.SSLContext:
    # The probe sends nothing and only asks whether the collector answers in time. Whether to
    # trust it is the exporter's decision, with the CA it is configured with (which may be a
    # private one this context would not know).
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context
