"""The telemetry of the current run (bounded, in memory) and of the last runs (SQLite).

`add` may be called from any thread; the queries block (they read SQLite for past runs) and are
run on a thread by the API."""

from __future__ import annotations

import dataclasses
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from orchestrator.telemetry import history
from orchestrator.telemetry.history_writer import HistoryWriter
from orchestrator.telemetry.memory import MemoryLimits, RunMemory
from orchestrator.telemetry.queries import (
    LogFilter,
    MetricFilter,
    TraceFilter,
    metric_series,
    select_logs,
    trace_spans,
    trace_summaries,
)
from orchestrator.telemetry.records import Batch
from orchestrator.telemetry.redaction import Mask, redact


@dataclass(frozen=True)
class StoreLimits:
    memory: MemoryLimits = field(default_factory=MemoryLimits)
    run_entries: int = 100_000  # spans + logs + points of one run; beyond: dropped, counted
    runs_kept: int = 10
    writer_capacity: int = 512  # batches waiting for the history writer


class UnknownRun(LookupError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"no telemetry run {run_id}")
        self.run_id = run_id


def new_run_id(now_s: float) -> str:
    """Sortable by time, unique across two `up` in the same second."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now_s)) + "-" + uuid.uuid4().hex[:6]


class TelemetryStore:
    def __init__(
        self,
        state_dir: Path,
        limits: StoreLimits | None = None,
        clock: Callable[[], float] = time.time,
        mask: Mask | None = None,
    ) -> None:
        """mask: applied to every text received (the secrets the orchestrator knows)."""
        self.directory = history.history_dir(state_dir)
        self._mask = mask
        self._limits = limits or StoreLimits()
        self._clock = clock
        self._lock = threading.Lock()
        self._memory = RunMemory(self._limits.memory)
        self._writer: HistoryWriter | None = None
        self.run_id: str | None = None
        self.started_ms = 0.0
        self.received = {"spans": 0, "logs": 0, "points": 0}
        # Entries lost after decoding: over the run's cap, or not written to the history.
        self._dropped = 0
        self._next_seq = 1

    def open(self, *, new_run: bool) -> None:
        """Blocks. new_run: this is an `up` that records; otherwise only past runs are read."""
        if new_run:
            now = self._clock()
            run_id, self.started_ms = new_run_id(now), now * 1000.0
            with closing(history.connect(self.directory)) as connection:
                history.begin_run(connection, run_id, self.started_ms, self._limits.runs_kept)
            self.run_id = run_id
        if self.run_id is not None:
            self._writer = HistoryWriter(
                self.directory, self.run_id, capacity=self._limits.writer_capacity
            )
            self._writer.start()

    def close(self, timeout_s: float = 10.0) -> None:
        """Blocks until the history has what was received (at most timeout_s)."""
        if self._writer is not None:
            self._writer.close(timeout_s)

    @property
    def dropped(self) -> int:
        """Entries received and not kept: over the run's cap, or lost to the history."""
        return self._dropped + (self._writer.lost if self._writer is not None else 0)

    @property
    def history_failure(self) -> str | None:
        return self._writer.failure if self._writer is not None else None

    def add(self, batch: Batch) -> None:
        if self.run_id is None:
            return
        if self._mask is not None:
            batch = redact(batch, self._mask)
        with self._lock:
            room = max(self._limits.run_entries - sum(self.received.values()), 0)
            if len(batch) > room:
                self._dropped += len(batch) - room
                batch = _first(batch, room)
            numbered = [
                dataclasses.replace(entry, seq=self._next_seq + index)
                for index, entry in enumerate(batch.logs)
            ]
            self._next_seq += len(numbered)
            batch = Batch(batch.spans, numbered, batch.points)
            self._memory.add_spans(batch.spans)
            self._memory.add_logs(batch.logs)
            self._memory.add_points(batch.points)
            self.received["spans"] += len(batch.spans)
            self.received["logs"] += len(batch.logs)
            self.received["points"] += len(batch.points)
            if len(batch) and (self._writer is None or not self._writer.offer(batch)):
                self._dropped += len(batch)

    def _current(self, run_id: str | None) -> bool:
        return run_id is None or run_id == self.run_id

    def runs(self) -> list[dict[str, Any]]:
        with history.reading(self.directory) as connection:
            rows = history.list_runs(connection, self._limits.runs_kept)
        listed = []
        for row in rows:
            counts = dict(self.received) if row.id == self.run_id else dataclasses.asdict(row)
            listed.append(
                {
                    "id": row.id,
                    "started_ms": row.started_ms,
                    "current": row.id == self.run_id,
                    "spans": counts["spans"],
                    "logs": counts["logs"],
                    "points": counts["points"],
                }
            )
        return listed

    def traces(self, run_id: str | None, wanted: TraceFilter) -> list[dict[str, Any]]:
        if self._current(run_id):
            with self._lock:
                spans = self._memory.spans()
            return trace_summaries(spans, wanted)
        with _past(self.directory, run_id) as connection:
            return trace_summaries(history.spans_of(connection, str(run_id)), wanted)

    def trace(self, run_id: str | None, trace_id: str) -> list[dict[str, Any]]:
        """The trace's spans by start; [] when the run has no such trace."""
        if self._current(run_id):
            with self._lock:
                spans = self._memory.trace(trace_id)
            return trace_spans(spans)
        with _past(self.directory, run_id) as connection:
            return trace_spans(history.spans_of(connection, str(run_id), trace_id))

    def logs(self, run_id: str | None, wanted: LogFilter) -> list[dict[str, Any]]:
        if self._current(run_id):
            with self._lock:
                entries = self._memory.logs_newest_first()
            return select_logs(entries, wanted)
        with _past(self.directory, run_id) as connection:
            rows = history.logs_newest_first(connection, str(run_id), wanted.before_seq)
            return select_logs(rows, wanted)

    def metrics(self, run_id: str | None, wanted: MetricFilter) -> list[dict[str, Any]]:
        if self._current(run_id):
            with self._lock:
                points = self._memory.points()
            return metric_series(points, wanted)
        with _past(self.directory, run_id) as connection:
            return metric_series(
                history.points_of(connection, str(run_id), wanted.since_ms), wanted
            )


@contextmanager
def _past(directory: Path, run_id: str | None) -> Iterator[sqlite3.Connection]:
    """A reading connection to the history, for a run it holds (UnknownRun otherwise)."""
    with history.reading(directory) as connection:
        if not history.has_run(connection, str(run_id)):
            raise UnknownRun(str(run_id))
        yield connection


def _first(batch: Batch, count: int) -> Batch:
    """The first count entries of batch: spans, then logs, then points."""
    spans = batch.spans[:count]
    logs = batch.logs[: count - len(spans)]
    return Batch(spans, logs, batch.points[: count - len(spans) - len(logs)])
