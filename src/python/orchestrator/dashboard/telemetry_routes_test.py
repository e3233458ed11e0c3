"""The telemetry API on the dashboard's real server, over a real store."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from orchestrator.dashboard.server import Dashboard
from orchestrator.hub import EventHub
from orchestrator.masking import Masker
from orchestrator.stack.lifecycle import Controls
from orchestrator.telemetry.records import Batch, Level
from orchestrator.telemetry.session import Telemetry
from orchestrator.telemetry.store import TelemetryStore
from orchestrator.telemetry.testing import log, point, span, span_id, trace_id
from testsupport.processes import free_port

TRACE = trace_id()


def _batch() -> Batch:
    root = span_id()
    return Batch(
        spans=[
            span(TRACE, root, "moshi.conversation", duration_ms=50.0, outcome="completed"),
            span(TRACE, span_id(), "moshi.close", parent=root, start_ms=1_040.0, duration_ms=1.0),
        ],
        logs=[
            log("client connected", trace_id=TRACE),
            log("frame late", level=Level.WARNING, resource="frontend", logger="frontend.relay"),
        ],
        points=[point("moshi.conversations.active", 1_000.0, 1.0)],
    )


@pytest.fixture
async def api(tmp_path: Path) -> AsyncIterator[str]:
    """The dashboard's URL, its store holding one past run and the current one."""
    past = TelemetryStore(tmp_path)
    past.open(new_run=True)
    past.add(Batch(logs=[log("from the past run")]))
    past.close()
    store = TelemetryStore(tmp_path)
    telemetry = await Telemetry.start(tmp_path, {}, enabled=False, port=None, store=store)
    await asyncio.to_thread(store.open, new_run=True)
    store.add(_batch())
    hub = EventHub()
    task = asyncio.create_task(hub.run())
    hub.bind()
    dashboard = Dashboard(hub, Controls(), Masker(), port=free_port(), telemetry=telemetry)
    url = await dashboard.start()
    try:
        yield f"{url}/api/telemetry"
    finally:
        await dashboard.stop()
        await telemetry.stop()
        task.cancel()


async def _get(url: str) -> tuple[int, Any]:
    async with aiohttp.ClientSession() as session, session.get(url) as response:
        if response.content_type == "application/json":
            return response.status, await response.json()
        return response.status, await response.text()


async def test_status_and_runs(api: str) -> None:
    status, body = await _get(f"{api}/status")
    assert status == 200
    assert body["enabled"] is False and body["endpoint"] is None
    assert body["received"] == {"spans": 2, "logs": 2, "points": 1}
    assert body["dropped"] == 0
    status, body = await _get(f"{api}/runs")
    runs = body["runs"]
    assert [run["current"] for run in runs] == [True, False]
    assert runs[0]["spans"] == 2 and runs[1]["logs"] == 1
    assert set(runs[0]) == {"id", "started_ms", "current", "spans", "logs", "points"}


async def test_traces_and_one_trace(api: str) -> None:
    status, body = await _get(f"{api}/traces?resource=moshi-backend&outcome=completed&min_ms=10")
    assert status == 200
    [summary] = body["traces"]
    assert summary["trace_id"] == TRACE and summary["spans"] == 2
    assert summary["name"] == "moshi.conversation" and summary["duration_ms"] == 50.0
    assert (await _get(f"{api}/traces?resource=frontend"))[1] == {"traces": []}
    status, body = await _get(f"{api}/traces/{TRACE.upper()}")
    assert status == 200 and body["trace_id"] == TRACE
    assert [s["name"] for s in body["spans"]] == ["moshi.conversation", "moshi.close"]
    first = body["spans"][0]
    assert first["status"] == "unset" and first["parent_span_id"] is None
    assert first["attributes"] == {"outcome": "completed"} and first["events"] == []
    status, text = await _get(f"{api}/traces/{trace_id()}")
    assert status == 404 and "no trace" in text


async def test_logs_and_metrics(api: str) -> None:
    status, body = await _get(f"{api}/logs?level=warning")
    assert status == 200
    [entry] = body["logs"]
    assert entry == {
        "seq": 2,
        "time_ms": 1_000.0,
        "resource": "frontend",
        "level": "warning",
        "logger": "frontend.relay",
        "message": "frame late",
        "trace_id": None,
        "span_id": None,
    }
    body = (await _get(f"{api}/logs?q=CONNECTED&trace_id={TRACE}&limit=5&before_seq=2"))[1]
    assert [e["message"] for e in body["logs"]] == ["client connected"]
    body = (await _get(f"{api}/metrics?resource=moshi-backend&since_ms=999.5"))[1]
    assert body == {
        "series": [
            {
                "resource": "moshi-backend",
                "name": "moshi.conversations.active",
                "unit": "1",
                "points": [[1_000.0, 1.0]],
            }
        ]
    }


async def test_a_past_run(api: str) -> None:
    runs = (await _get(f"{api}/runs"))[1]["runs"]
    past = runs[1]["id"]
    body = (await _get(f"{api}/logs?run={past}"))[1]
    assert [e["message"] for e in body["logs"]] == ["from the past run"]
    assert (await _get(f"{api}/traces?run={past}"))[1] == {"traces": []}
    status, text = await _get(f"{api}/logs?run=20990101T000000Z-abcdef")
    assert status == 404 and "no telemetry run 20990101T000000Z-abcdef" in text


@pytest.mark.parametrize(
    ("query", "says"),
    [
        ("traces?limit=0", "bad parameter limit: 0 is not between 1 and 1000"),
        ("traces?limit=ten", "bad parameter limit: 'ten' is not a whole number"),
        ("traces?min_ms=-1", "bad parameter min_ms: '-1' is not a duration in ms"),
        ("traces?max_ms=nan", "bad parameter max_ms: 'nan' is not a duration in ms"),
        ("traces?min_ms=5&max_ms=1", "bad parameter min_ms: 5.0 is above max_ms 1.0"),
        ("traces/xyz", "bad parameter trace_id: 'xyz' is not 32 hex digits"),
        ("logs?level=loud", "bad parameter level: 'loud' is not one of debug/info/warning/"),
        ("logs?trace_id=123", "bad parameter trace_id: '123' is not 32 hex digits"),
        ("logs?before_seq=-3", "bad parameter before_seq: '-3' is not a whole number"),
        ("logs?limit=1001", "bad parameter limit: 1001 is not between 1 and 1000"),
        ("metrics?since_ms=yesterday", "bad parameter since_ms: 'yesterday' is not a time"),
        ("traces?run=../../etc", "bad parameter run: '../../etc' is not a run id"),
    ],
)
async def test_bad_parameters_are_400_with_a_reason(api: str, query: str, says: str) -> None:
    status, text = await _get(f"{api}/{query}")
    assert status == 400
    assert text.startswith(says) and "\n" not in text
