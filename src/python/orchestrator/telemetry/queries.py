"""The API's queries as pure functions over records, so the current run (memory) and past runs
(SQLite rows) are answered by the same code."""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from orchestrator.telemetry.records import Level, LogEntry, MetricPoint, Span


@dataclass(frozen=True)
class TraceFilter:
    resource: str | None = None
    outcome: str | None = None
    min_ms: float | None = None  # duration bounds, inclusive
    max_ms: float | None = None
    limit: int = 100

    def matches(self, summary: dict[str, Any]) -> bool:
        duration = summary["duration_ms"]
        return (
            (self.resource is None or self.resource in summary["resources"])
            and (self.outcome is None or summary["outcome"] == self.outcome)
            and (self.min_ms is None or duration >= self.min_ms)
            and (self.max_ms is None or duration <= self.max_ms)
        )


@dataclass(frozen=True)
class LogFilter:
    resource: str | None = None
    level: Level | None = None  # this level and above
    q: str | None = None  # case-insensitive, in the message or the logger
    trace_id: str | None = None
    before_seq: int | None = None
    limit: int = 200

    def matches(self, entry: LogEntry) -> bool:
        if self.q is not None:
            needle = self.q.lower()
            if needle not in entry.message.lower() and needle not in entry.logger.lower():
                return False
        return (
            (self.resource is None or entry.resource == self.resource)
            and (self.level is None or entry.level >= self.level)
            and (self.trace_id is None or entry.trace_id == self.trace_id)
            and (self.before_seq is None or entry.seq < self.before_seq)
        )


@dataclass(frozen=True)
class MetricFilter:
    resource: str | None = None
    since_ms: float | None = None  # points after this time (exclusive: polls do not repeat one)

    def matches(self, point: MetricPoint) -> bool:
        return (self.resource is None or point.resource == self.resource) and (
            self.since_ms is None or point.time_ms > self.since_ms
        )


def _depths(spans: list[Span]) -> dict[str, int]:
    """How far each span is from the root-most span of its trace that was received."""
    by_id = {span.span_id: span for span in spans}
    depths: dict[str, int] = {}
    for span in spans:
        depth, current, seen = 0, span, {span.span_id}
        while current.parent_span_id in by_id and current.parent_span_id not in seen:
            seen.add(current.parent_span_id)
            current = by_id[current.parent_span_id]
            depth += 1
        depths[span.span_id] = depth
    return depths


def summarise(trace_id: str, spans: list[Span]) -> dict[str, Any]:
    depths = _depths(spans)
    ranked = sorted(spans, key=lambda span: (depths[span.span_id], span.start_ms))
    start = min(span.start_ms for span in spans)
    outcome = next((s.attributes["outcome"] for s in ranked if "outcome" in s.attributes), None)
    return {
        "trace_id": trace_id,
        "name": ranked[0].name,
        "resources": sorted({span.resource for span in spans}),
        "start_ms": start,
        "duration_ms": max(span.end_ms for span in spans) - start,
        "outcome": None if outcome is None else str(outcome),
        "spans": len(spans),
        "error": any(span.status == "error" for span in spans),
    }


def trace_summaries(spans: Iterable[Span], wanted: TraceFilter) -> list[dict[str, Any]]:
    """Newest first."""
    traces: dict[str, list[Span]] = {}
    for span in spans:
        traces.setdefault(span.trace_id, []).append(span)
    summaries = (summarise(trace_id, members) for trace_id, members in traces.items())
    chosen = [summary for summary in summaries if wanted.matches(summary)]
    chosen.sort(key=lambda summary: summary["start_ms"], reverse=True)
    return chosen[: wanted.limit]


def trace_spans(spans: Iterable[Span]) -> list[dict[str, Any]]:
    """One trace's spans, ordered by start."""
    return [span.to_json() for span in sorted(spans, key=lambda span: span.start_ms)]


def select_logs(newest_first: Iterable[LogEntry], wanted: LogFilter) -> list[dict[str, Any]]:
    chosen = (entry for entry in newest_first if wanted.matches(entry))
    return [entry.to_json() for entry in itertools.islice(chosen, wanted.limit)]


def metric_series(points: Iterable[MetricPoint], wanted: MetricFilter) -> list[dict[str, Any]]:
    series: dict[tuple[str, str, str], list[list[float]]] = {}
    for point in points:
        if wanted.matches(point):
            key = (point.resource, point.name, point.unit)
            series.setdefault(key, []).append([point.time_ms, point.value])
    return [
        {"resource": resource, "name": name, "unit": unit, "points": sorted(values)}
        for (resource, name, unit), values in sorted(series.items())
    ]
