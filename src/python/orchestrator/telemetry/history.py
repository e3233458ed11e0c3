"""The SQLite history of the last runs' telemetry, one database under the project's state
directory. Every function here blocks: callers run it on a thread."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing, contextmanager
from dataclasses import dataclass
from pathlib import Path

from orchestrator.telemetry.records import Level, LogEntry, MetricPoint, Span

DIRECTORY = "telemetry"
_FILE = "history.sqlite3"
_SCHEMA_VERSION = 1
_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, started_ms REAL NOT NULL,
    spans INTEGER NOT NULL DEFAULT 0, logs INTEGER NOT NULL DEFAULT 0,
    points INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS spans (
    run TEXT NOT NULL, trace_id TEXT NOT NULL, span_id TEXT NOT NULL, parent_span_id TEXT,
    name TEXT NOT NULL, resource TEXT NOT NULL, kind TEXT NOT NULL,
    start_ms REAL NOT NULL, end_ms REAL NOT NULL, status TEXT NOT NULL,
    status_message TEXT NOT NULL, attributes TEXT NOT NULL, events TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS spans_by_trace ON spans (run, trace_id);
CREATE TABLE IF NOT EXISTS logs (
    run TEXT NOT NULL, seq INTEGER NOT NULL, time_ms REAL NOT NULL, resource TEXT NOT NULL,
    level INTEGER NOT NULL, logger TEXT NOT NULL, message TEXT NOT NULL,
    trace_id TEXT, span_id TEXT, PRIMARY KEY (run, seq)
);
CREATE TABLE IF NOT EXISTS points (
    run TEXT NOT NULL, resource TEXT NOT NULL, name TEXT NOT NULL, unit TEXT NOT NULL,
    time_ms REAL NOT NULL, value REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS points_by_time ON points (run, time_ms);
"""
_TABLES = ("spans", "logs", "points")
_SPAN_FIELDS = (
    "trace_id",
    "span_id",
    "parent_span_id",
    "name",
    "resource",
    "kind",
    "start_ms",
    "end_ms",
    "status",
    "status_message",
)
_SPAN_COLUMNS = ", ".join([*_SPAN_FIELDS, "attributes", "events"])


@dataclass(frozen=True)
class RunRow:
    id: str
    started_ms: float
    spans: int
    logs: int
    points: int


def history_dir(state_dir: Path) -> Path:
    """Where a project's history lives, under its run-state directory."""
    return state_dir / DIRECTORY


def clear_history(state_dir: Path) -> bool:
    """Remove the history (database, WAL and all); False when there was none."""
    directory = history_dir(state_dir)
    if not directory.exists():
        return False
    shutil.rmtree(directory)
    return True


def connect(directory: Path, *, create: bool = True) -> sqlite3.Connection:
    """A connection to the history, made (schema, WAL) if it is not there yet; without create,
    an empty one in memory stands for a history that is not there (reading makes no files)."""
    if create:
        directory.mkdir(parents=True, exist_ok=True)
    path = directory / _FILE
    target = str(path) if create or path.exists() else ":memory:"
    connection = sqlite3.connect(target, timeout=10.0, check_same_thread=False)
    # WAL: the API's readers never wait for the writer, nor it for them.
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("PRAGMA synchronous=NORMAL")
    if connection.execute("PRAGMA user_version").fetchone()[0] != _SCHEMA_VERSION:
        connection.executescript(_SCHEMA)
        connection.execute(f"PRAGMA user_version={_SCHEMA_VERSION}")
    return connection


@contextmanager
def reading(directory: Path) -> Iterator[sqlite3.Connection]:
    with closing(connect(directory, create=False)) as connection:
        yield connection


def begin_run(connection: sqlite3.Connection, run_id: str, started_ms: float, keep: int) -> None:
    """Record a new run, first removing all but the newest keep-1 runs before it."""
    with connection:
        old = [
            row[0]
            for row in connection.execute(
                "SELECT id FROM runs ORDER BY started_ms DESC LIMIT -1 OFFSET ?", (keep - 1,)
            )
        ]
        for table in ("runs", *_TABLES):
            column = "id" if table == "runs" else "run"
            connection.executemany(f"DELETE FROM {table} WHERE {column} = ?", [(r,) for r in old])
        connection.execute("INSERT INTO runs (id, started_ms) VALUES (?, ?)", (run_id, started_ms))


def list_runs(connection: sqlite3.Connection, limit: int) -> list[RunRow]:
    rows = connection.execute(
        "SELECT id, started_ms, spans, logs, points FROM runs ORDER BY started_ms DESC LIMIT ?",
        (limit,),
    )
    return [RunRow(*row) for row in rows]


def has_run(connection: sqlite3.Connection, run_id: str) -> bool:
    return connection.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is not None


def insert(
    connection: sqlite3.Connection,
    run_id: str,
    spans: list[Span],
    logs: list[LogEntry],
    points: list[MetricPoint],
) -> None:
    """One transaction: the rows and the run's counts."""
    with connection:
        connection.executemany(
            "INSERT INTO spans VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
            [
                (
                    run_id,
                    s.trace_id,
                    s.span_id,
                    s.parent_span_id,
                    s.name,
                    s.resource,
                    s.kind,
                    s.start_ms,
                    s.end_ms,
                    s.status,
                    s.status_message,
                    json.dumps(s.attributes),
                    json.dumps(s.events),
                )
                for s in spans
            ],
        )
        connection.executemany(
            "INSERT OR REPLACE INTO logs VALUES (?,?,?,?,?,?,?,?,?)",
            [
                (
                    run_id,
                    e.seq,
                    e.time_ms,
                    e.resource,
                    int(e.level),
                    e.logger,
                    e.message,
                    e.trace_id,
                    e.span_id,
                )
                for e in logs
            ],
        )
        connection.executemany(
            "INSERT INTO points VALUES (?,?,?,?,?,?)",
            [(run_id, p.resource, p.name, p.unit, p.time_ms, p.value) for p in points],
        )
        connection.execute(
            "UPDATE runs SET spans = spans + ?, logs = logs + ?, points = points + ? WHERE id = ?",
            (len(spans), len(logs), len(points), run_id),
        )


def spans_of(
    connection: sqlite3.Connection, run_id: str, trace_id: str | None = None
) -> Iterator[Span]:
    query = f"SELECT {_SPAN_COLUMNS} FROM spans WHERE run = ?"
    parameters: tuple[str, ...] = (run_id,)
    if trace_id is not None:
        query, parameters = query + " AND trace_id = ?", (run_id, trace_id)
    for row in connection.execute(query, parameters):
        fields = dict(zip(_SPAN_FIELDS, row, strict=False))
        yield Span(**fields, attributes=json.loads(row[10]), events=json.loads(row[11]))


def logs_newest_first(
    connection: sqlite3.Connection, run_id: str, before_seq: int | None
) -> Iterator[LogEntry]:
    rows = connection.execute(
        "SELECT time_ms, resource, level, logger, message, trace_id, span_id, seq FROM logs "
        "WHERE run = ? AND seq < ? ORDER BY seq DESC",
        (run_id, before_seq if before_seq is not None else 2**62),
    )
    for time_ms, resource, level, logger, message, trace_id, span_id, seq in rows:
        yield LogEntry(time_ms, resource, Level(level), logger, message, trace_id, span_id, seq)


def points_of(
    connection: sqlite3.Connection, run_id: str, since_ms: float | None
) -> Iterator[MetricPoint]:
    rows = connection.execute(
        "SELECT resource, name, unit, time_ms, value FROM points WHERE run = ? AND time_ms > ?",
        (run_id, since_ms if since_ms is not None else float("-inf")),
    )
    for row in rows:
        yield MetricPoint(*row)
