"""The current run's records in memory, bounded per kind: the oldest go first. Not thread-safe
by itself: the store holds a lock around every call."""

from __future__ import annotations

from collections import OrderedDict, deque
from dataclasses import dataclass

from orchestrator.telemetry.records import LogEntry, MetricPoint, Span


@dataclass(frozen=True)
class MemoryLimits:
    spans: int = 20_000
    logs: int = 20_000
    points: int = 100_000


class RunMemory:
    def __init__(self, limits: MemoryLimits) -> None:
        self._limits = limits
        # Whole traces go when spans are over the limit, the first received first: a trace is
        # never shown with half of its spans evicted.
        self._traces: OrderedDict[str, list[Span]] = OrderedDict()
        self._span_count = 0
        self._logs: deque[LogEntry] = deque(maxlen=limits.logs)
        self._points: deque[MetricPoint] = deque(maxlen=limits.points)

    def add_spans(self, spans: list[Span]) -> None:
        for span in spans:
            self._traces.setdefault(span.trace_id, []).append(span)
        self._span_count += len(spans)
        while self._span_count > self._limits.spans and len(self._traces) > 1:
            _, evicted = self._traces.popitem(last=False)
            self._span_count -= len(evicted)

    def add_logs(self, entries: list[LogEntry]) -> None:
        self._logs.extend(entries)

    def add_points(self, points: list[MetricPoint]) -> None:
        self._points.extend(points)

    # Snapshots: lists the caller can filter outside the lock.
    def spans(self) -> list[Span]:
        return [span for members in self._traces.values() for span in members]

    def trace(self, trace_id: str) -> list[Span]:
        return list(self._traces.get(trace_id, ()))

    def logs_newest_first(self) -> list[LogEntry]:
        return list(reversed(self._logs))

    def points(self) -> list[MetricPoint]:
        return list(self._points)
