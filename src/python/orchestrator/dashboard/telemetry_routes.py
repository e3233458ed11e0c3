"""The dashboard's telemetry API (/api/telemetry/...): the receiver's status, the runs, and the
traces, metrics and logs of the current run or of a past one. Queries run on a thread: past runs
are read from SQLite."""

from __future__ import annotations

import asyncio
import math
import re
from collections.abc import Callable
from typing import Any, TypeVar

from aiohttp import web

from orchestrator.telemetry.queries import LogFilter, MetricFilter, TraceFilter
from orchestrator.telemetry.records import Level
from orchestrator.telemetry.session import Telemetry
from orchestrator.telemetry.store import UnknownRun

TELEMETRY = web.AppKey("telemetry", Telemetry)
_MAX_LIMIT = 1000
_HEX_TRACE_ID = re.compile(r"^[0-9a-f]{32}$")
_RUN_ID = re.compile(r"^[A-Za-z0-9_.:-]{1,64}$")
T = TypeVar("T")


def add_routes(app: web.Application, telemetry: Telemetry) -> None:
    app[TELEMETRY] = telemetry
    app.router.add_get("/api/telemetry/status", get_status)
    app.router.add_get("/api/telemetry/runs", get_runs)
    app.router.add_get("/api/telemetry/traces", get_traces)
    app.router.add_get("/api/telemetry/traces/{trace_id}", get_trace)
    app.router.add_get("/api/telemetry/metrics", get_metrics)
    app.router.add_get("/api/telemetry/logs", get_logs)


class _BadParameter(web.HTTPBadRequest):
    def __init__(self, name: str, why: str) -> None:
        super().__init__(text=f"bad parameter {name}: {why}")


def _text(request: web.Request, name: str) -> str | None:
    value = request.query.get(name)
    return value if value else None


def _parsed(request: web.Request, name: str, parse: Callable[[str], T], why: str) -> T | None:
    value = _text(request, name)
    if value is None:
        return None
    try:
        return parse(value)
    except ValueError:
        raise _BadParameter(name, f"{value[:40]!r} is not {why}") from None


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value) or value < 0:
        raise ValueError(text)
    return value


def _count(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError(text)
    return value


def _limit(request: web.Request, default: int) -> int:
    limit = _parsed(request, "limit", _count, "a whole number")
    if limit is None:
        return default
    if not 1 <= limit <= _MAX_LIMIT:
        raise _BadParameter("limit", f"{limit} is not between 1 and {_MAX_LIMIT}")
    return limit


def _trace_id(text: str) -> str:
    if not _HEX_TRACE_ID.match(text.lower()):
        raise ValueError(text)
    return text.lower()


def _run(request: web.Request) -> str | None:
    run = _text(request, "run")
    if run is not None and not _RUN_ID.match(run):
        raise _BadParameter("run", f"{run[:40]!r} is not a run id")
    return run


async def _query(call: Callable[[], T]) -> T:
    try:
        return await asyncio.to_thread(call)
    except UnknownRun as error:
        raise web.HTTPNotFound(text=str(error)) from None


async def get_status(request: web.Request) -> web.Response:
    return web.json_response(request.app[TELEMETRY].status())


async def get_runs(request: web.Request) -> web.Response:
    store = request.app[TELEMETRY].store
    return web.json_response({"runs": await _query(store.runs)})


async def get_traces(request: web.Request) -> web.Response:
    wanted = TraceFilter(
        resource=_text(request, "resource"),
        outcome=_text(request, "outcome"),
        min_ms=_parsed(request, "min_ms", _finite, "a duration in ms"),
        max_ms=_parsed(request, "max_ms", _finite, "a duration in ms"),
        limit=_limit(request, 100),
    )
    if wanted.min_ms is not None and wanted.max_ms is not None and wanted.min_ms > wanted.max_ms:
        raise _BadParameter("min_ms", f"{wanted.min_ms} is above max_ms {wanted.max_ms}")
    store, run = request.app[TELEMETRY].store, _run(request)
    return web.json_response({"traces": await _query(lambda: store.traces(run, wanted))})


async def get_trace(request: web.Request) -> web.Response:
    raw = request.match_info["trace_id"]
    try:
        trace_id = _trace_id(raw)
    except ValueError:
        raise _BadParameter("trace_id", f"{raw[:40]!r} is not 32 hex digits") from None
    store, run = request.app[TELEMETRY].store, _run(request)
    spans = await _query(lambda: store.trace(run, trace_id))
    if not spans:
        raise web.HTTPNotFound(text=f"no trace {trace_id} in this run")
    return web.json_response({"trace_id": trace_id, "spans": spans})


async def get_metrics(request: web.Request) -> web.Response:
    wanted = MetricFilter(
        resource=_text(request, "resource"),
        since_ms=_parsed(request, "since_ms", _finite, "a time in ms since the epoch"),
    )
    store, run = request.app[TELEMETRY].store, _run(request)
    return web.json_response({"series": await _query(lambda: store.metrics(run, wanted))})


def _level(text: str) -> Level:
    try:
        return Level[text.upper()]
    except KeyError:
        raise ValueError(text) from None


async def get_logs(request: web.Request) -> web.Response:
    levels = "/".join(level.label for level in Level)
    wanted = LogFilter(
        resource=_text(request, "resource"),
        level=_parsed(request, "level", _level, f"one of {levels}"),
        q=_text(request, "q"),
        trace_id=_parsed(request, "trace_id", _trace_id, "32 hex digits"),
        before_seq=_parsed(request, "before_seq", _count, "a whole number"),
        limit=_limit(request, 200),
    )
    store, run = request.app[TELEMETRY].store, _run(request)
    result: list[dict[str, Any]] = await _query(lambda: store.logs(run, wanted))
    return web.json_response({"logs": result})
