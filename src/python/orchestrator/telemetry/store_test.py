"""The store on a real state directory: the current run in memory, past runs from SQLite."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

import pytest

from orchestrator.masking import MASK, Masker
from orchestrator.telemetry import history
from orchestrator.telemetry.memory import MemoryLimits
from orchestrator.telemetry.queries import LogFilter, MetricFilter, TraceFilter
from orchestrator.telemetry.records import Batch, Level
from orchestrator.telemetry.store import StoreLimits, TelemetryStore, UnknownRun
from orchestrator.telemetry.testing import log, point, span, span_id, trace_id


class _Clock:
    """Each run one minute after the last, so their order is known."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        self.now += 60.0
        return self.now


def _conversation(trace: str, *, start_ms: float = 1_000.0, outcome: str = "completed") -> Batch:
    relay, root = span_id(), span_id()
    return Batch(
        spans=[
            span(
                trace,
                relay,
                "frontend.proxy",
                resource="frontend",
                start_ms=start_ms,
                duration_ms=100.0,
                outcome=outcome,
            ),
            span(
                trace,
                root,
                "moshi.conversation",
                parent=relay,
                start_ms=start_ms + 1,
                duration_ms=90.0,
                outcome="backend says",
                frames=12,
            ),
            span(
                trace,
                span_id(),
                "moshi.frame_loop",
                parent=root,
                start_ms=start_ms + 5,
                duration_ms=80.0,
                status="error" if outcome == "error" else "unset",
            ),
        ],
        logs=[log("conversation started", trace_id=trace)],
        points=[point("moshi.conversations.active", start_ms, 1.0)],
    )


def _store(directory: Path, clock: _Clock | None = None, **limits: Any) -> TelemetryStore:
    store = TelemetryStore(directory, StoreLimits(**limits), clock=clock or _Clock())
    store.open(new_run=True)
    return store


def test_current_run_is_answered_from_memory(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        first, second = trace_id(), trace_id()
        store.add(_conversation(first, start_ms=1_000.0))
        store.add(_conversation(second, start_ms=2_000.0, outcome="error"))
        traces = store.traces(None, TraceFilter())
        assert [t["trace_id"] for t in traces] == [second, first]  # newest first
        assert traces[1] == {
            "trace_id": first,
            "name": "frontend.proxy",
            "resources": ["frontend", "moshi-backend"],
            "start_ms": 1_000.0,
            "duration_ms": 100.0,
            "outcome": "completed",  # the root-most span's, not the child's
            "spans": 3,
            "error": False,
        }
        assert traces[0]["error"] is True
        assert [t["trace_id"] for t in store.traces(None, TraceFilter(outcome="error"))] == [second]
        assert store.traces(None, TraceFilter(min_ms=101.0)) == []
        assert len(store.traces(store.run_id, TraceFilter(max_ms=100.0, limit=1))) == 1
        spans = store.trace(None, first)
        assert [s["name"] for s in spans] == [
            "frontend.proxy",
            "moshi.conversation",
            "moshi.frame_loop",
        ]
        assert spans[1]["parent_span_id"] == spans[0]["span_id"]
        assert spans[1]["attributes"] == {"outcome": "backend says", "frames": 12}
        assert store.trace(None, trace_id()) == []
        logs = store.logs(None, LogFilter())
        assert [entry["seq"] for entry in logs] == [2, 1]
        assert logs[0]["trace_id"] == second and logs[0]["level"] == "info"
        assert store.received == {"spans": 6, "logs": 2, "points": 2}
    finally:
        store.close()


def test_log_filters(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        the_trace = trace_id()
        store.add(
            Batch(
                logs=[
                    log("Loading model", level=Level.DEBUG),
                    log("client connected", trace_id=the_trace),
                    log(
                        "slow step",
                        level=Level.WARNING,
                        resource="frontend",
                        logger="frontend.relay",
                    ),
                    log("boom", level=Level.ERROR),
                ]
            )
        )

        def messages(**wanted: Any) -> list[str]:
            return [e["message"] for e in store.logs(None, LogFilter(**wanted))]

        assert messages() == ["boom", "slow step", "client connected", "Loading model"]
        assert messages(level=Level.WARNING) == ["boom", "slow step"]
        assert messages(resource="frontend") == ["slow step"]
        assert messages(q="LOADING") == ["Loading model"]
        assert messages(q="relay") == ["slow step"]  # the logger matches too
        assert messages(trace_id=the_trace) == ["client connected"]
        assert messages(before_seq=3, limit=1) == ["client connected"]
    finally:
        store.close()


def test_metrics_series(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        store.add(
            Batch(
                points=[
                    point("a", 2.0, 5.0),
                    point("a", 1.0, 4.0),
                    point("b", 1.0, 1.0, "frontend"),
                ]
            )
        )
        assert store.metrics(None, MetricFilter()) == [
            {"resource": "frontend", "name": "b", "unit": "1", "points": [[1.0, 1.0]]},
            {
                "resource": "moshi-backend",
                "name": "a",
                "unit": "1",
                "points": [[1.0, 4.0], [2.0, 5.0]],
            },
        ]
        since = store.metrics(None, MetricFilter(resource="moshi-backend", since_ms=1.0))
        assert since == [
            {"resource": "moshi-backend", "name": "a", "unit": "1", "points": [[2.0, 5.0]]}
        ]
    finally:
        store.close()


def test_history_survives_a_restart_of_the_store(tmp_path: Path) -> None:
    clock = _Clock()
    first = _store(tmp_path, clock)
    conversation = trace_id()
    first.add(_conversation(conversation))
    first.add(Batch(points=[point("moshi.step.duration.p99", 5.0, 42.0)]))
    first.close()
    old_run = first.run_id
    assert old_run is not None

    second = _store(tmp_path, clock)
    try:
        runs = second.runs()
        assert [(r["id"], r["current"]) for r in runs] == [(second.run_id, True), (old_run, False)]
        assert runs[1]["spans"] == 3 and runs[1]["logs"] == 1 and runs[1]["points"] == 2
        assert [t["trace_id"] for t in second.traces(old_run, TraceFilter())] == [conversation]
        assert second.traces(None, TraceFilter()) == []  # the new run has nothing yet
        spans = second.trace(old_run, conversation)
        assert [s["name"] for s in spans][0] == "frontend.proxy"
        assert spans[1]["attributes"]["frames"] == 12
        assert [e["message"] for e in second.logs(old_run, LogFilter())] == ["conversation started"]
        since = second.metrics(old_run, MetricFilter(since_ms=500.0))
        assert since == [
            {
                "resource": "moshi-backend",
                "name": "moshi.conversations.active",
                "unit": "1",
                "points": [[1_000.0, 1.0]],
            }
        ]
        assert len(second.metrics(old_run, MetricFilter())) == 2
        with pytest.raises(UnknownRun):
            second.traces("no-such-run", TraceFilter())
    finally:
        second.close()


def test_the_eleventh_run_prunes_the_oldest(tmp_path: Path) -> None:
    clock = _Clock()
    ids = []
    for index in range(11):
        store = _store(tmp_path, clock)
        store.add(Batch(logs=[log(f"run {index}")]))
        store.close()
        ids.append(store.run_id)
    reader = TelemetryStore(tmp_path)
    reader.open(new_run=False)
    listed = [run["id"] for run in reader.runs()]
    assert listed == list(reversed(ids[1:]))
    with pytest.raises(UnknownRun):
        reader.logs(ids[0], LogFilter())
    with history.reading(history.history_dir(tmp_path)) as connection:
        assert connection.execute(
            "SELECT COUNT(*) FROM logs WHERE run = ?", (ids[0],)
        ).fetchone() == (0,)
        assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)


def test_entries_over_the_run_cap_are_dropped_and_counted(tmp_path: Path) -> None:
    store = _store(tmp_path, run_entries=5)
    try:
        store.add(_conversation(trace_id()))  # 5 entries
        store.add(Batch(logs=[log("one too many"), log("two too many")]))
        assert store.received == {"spans": 3, "logs": 1, "points": 1}
        assert store.dropped == 2
    finally:
        store.close()
    with history.reading(history.history_dir(tmp_path)) as connection:
        assert connection.execute("SELECT spans, logs, points FROM runs").fetchone() == (3, 1, 1)


def test_memory_drops_whole_traces_oldest_first(tmp_path: Path) -> None:
    store = _store(tmp_path, memory=MemoryLimits(spans=6, logs=2, points=2))
    try:
        traces = [trace_id() for _ in range(3)]
        for index, trace in enumerate(traces):
            store.add(_conversation(trace, start_ms=1_000.0 * index))
        assert [t["trace_id"] for t in store.traces(None, TraceFilter())] == traces[:0:-1]
        assert len(store.logs(None, LogFilter())) == 2
        assert sum(len(s["points"]) for s in store.metrics(None, MetricFilter())) == 2
    finally:
        store.close()
    # The history keeps what memory let go.
    with history.reading(history.history_dir(tmp_path)) as connection:
        assert connection.execute("SELECT COUNT(DISTINCT trace_id) FROM spans").fetchone() == (3,)


def test_without_a_new_run_nothing_is_recorded(tmp_path: Path) -> None:
    store = TelemetryStore(tmp_path)
    store.open(new_run=False)
    store.add(_conversation(trace_id()))
    assert store.run_id is None and store.received == {"spans": 0, "logs": 0, "points": 0}
    assert store.runs() == []
    store.close()


def test_a_history_that_cannot_be_written_is_reported(tmp_path: Path) -> None:
    store = _store(tmp_path)
    try:
        with sqlite3.connect(history.history_dir(tmp_path) / "history.sqlite3") as connection:
            connection.execute("DROP TABLE spans")
        store.add(_conversation(trace_id()))
        deadline = time.monotonic() + 5
        while store.history_failure is None and time.monotonic() < deadline:
            time.sleep(0.05)
        assert "spans" in (store.history_failure or "")
        store.add(_conversation(trace_id()))
        assert store.dropped == 10  # both batches: the failed write's and the refused one
    finally:
        store.close()


def test_reading_makes_no_files(tmp_path: Path) -> None:
    reader = TelemetryStore(tmp_path)
    reader.open(new_run=False)
    assert reader.runs() == []
    with pytest.raises(UnknownRun):
        reader.logs("20260101T000000Z-abcdef", LogFilter())
    assert list(tmp_path.iterdir()) == []


def test_secrets_are_masked_before_they_are_kept(tmp_path: Path) -> None:
    secret = "hf_secret_value_123"
    store = TelemetryStore(tmp_path, mask=Masker([secret]))
    store.open(new_run=True)
    the_trace = trace_id()
    store.add(
        Batch(
            spans=[
                span(the_trace, span_id(), f"GET {secret}", url=f"/x?t={secret}", nested=[secret])
            ],
            logs=[log(f"token is {secret}", logger=f"logger.{secret}")],
        )
    )
    store.close()
    [kept] = store.trace(None, the_trace)
    assert kept["name"] == f"GET {MASK}" and kept["attributes"] == {
        "url": f"/x?t={MASK}",
        "nested": [MASK],
    }
    [entry] = store.logs(None, LogFilter())
    assert entry["message"] == f"token is {MASK}" and entry["logger"] == f"logger.{MASK}"
    with history.reading(history.history_dir(tmp_path)) as connection:
        rows = connection.execute("SELECT * FROM spans").fetchall()
        rows += connection.execute("SELECT * FROM logs").fetchall()
    assert secret not in repr(rows)
