"""What the store keeps of the OTLP it receives: spans, log records and metric points, with the
field names of the dashboard's JSON API."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Level(IntEnum):
    """Log levels of the API (lower-case names); `level=` filters mean this one and above."""

    DEBUG = 10
    INFO = 20
    WARNING = 30
    ERROR = 40
    CRITICAL = 50

    @property
    def label(self) -> str:
        return self.name.lower()


@dataclass(frozen=True, slots=True)
class Span:
    trace_id: str
    span_id: str
    parent_span_id: str | None
    name: str
    resource: str
    kind: str
    start_ms: float
    end_ms: float
    status: str  # unset | ok | error
    status_message: str
    attributes: dict[str, Any] = field(default_factory=dict)
    events: list[dict[str, Any]] = field(default_factory=list)

    @property
    def duration_ms(self) -> float:
        return self.end_ms - self.start_ms

    def to_json(self) -> dict[str, Any]:
        return {
            "span_id": self.span_id,
            "parent_span_id": self.parent_span_id,
            "name": self.name,
            "resource": self.resource,
            "kind": self.kind,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "duration_ms": self.duration_ms,
            "status": self.status,
            "status_message": self.status_message,
            "attributes": self.attributes,
            "events": self.events,
        }


@dataclass(frozen=True, slots=True)
class LogEntry:
    time_ms: float
    resource: str
    level: Level
    logger: str
    message: str
    trace_id: str | None
    span_id: str | None
    # Numbered by the store, per run, in the order received (0 until then).
    seq: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time_ms": self.time_ms,
            "resource": self.resource,
            "level": self.level.label,
            "logger": self.logger,
            "message": self.message,
            "trace_id": self.trace_id,
            "span_id": self.span_id,
        }


@dataclass(frozen=True, slots=True)
class MetricPoint:
    resource: str
    name: str
    unit: str
    time_ms: float
    value: float


@dataclass(slots=True)
class Batch:
    """What one OTLP request decodes to."""

    spans: list[Span] = field(default_factory=list)
    logs: list[LogEntry] = field(default_factory=list)
    points: list[MetricPoint] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.spans) + len(self.logs) + len(self.points)
