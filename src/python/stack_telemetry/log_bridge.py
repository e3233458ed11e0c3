"""The process's Python log records as OTLP log records, while telemetry is on."""

from __future__ import annotations

import logging
import warnings
from collections.abc import Sequence

from opentelemetry.sdk._logs import LoggerProvider, LoggingHandler

# The exporters log their own failures: exported, each failure would queue another record for
# the export that just failed.
_OWN_LOGGERS = ("opentelemetry", "urllib3", "requests")


class _NotTheExportersOwn(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not record.name.startswith(_OWN_LOGGERS)


def attach_log_bridge(
    provider: LoggerProvider, filters: Sequence[logging.Filter] = (), level: int = logging.INFO
) -> logging.Handler:
    """A handler on the root logger that hands each record to provider's batch processor.

    filters: the service's own (what no exported record may carry), before the record is read.

    Emitting only queues the record (the current span's trace and span id with it); the export
    runs on the processor's thread. Remove it with detach_log_bridge before shutting provider
    down.
    """
    with warnings.catch_warnings():
        # 1.45 points at opentelemetry-instrumentation-logging, which this lockfile lacks; the
        # SDK's handler is the same class under another name there.
        warnings.simplefilter("ignore", DeprecationWarning)
        handler = LoggingHandler(level=level, logger_provider=provider)
    handler.addFilter(_NotTheExportersOwn())
    for log_filter in filters:
        handler.addFilter(log_filter)
    logging.getLogger().addHandler(handler)
    return handler


def detach_log_bridge(handler: logging.Handler) -> None:
    logging.getLogger().removeHandler(handler)
