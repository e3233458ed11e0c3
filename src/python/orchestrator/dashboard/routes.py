"""The dashboard's HTTP API: resources (JSON and a live stream), logs per resource (a live
stream with history), and actions. Streams are Server-Sent Events, which browsers reconnect by
themselves, resuming after the last line they saw (Last-Event-ID)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from aiohttp import web

from orchestrator.dashboard.feed import Feed, Line
from orchestrator.dashboard.health_monitor import HealthMonitor
from orchestrator.dashboard.views import resource_rows
from orchestrator.hub import StackState
from orchestrator.masking import Masker
from orchestrator.stack.lifecycle import Action, ActionRefused, Controls

STATIC_DIR = Path(__file__).resolve().parent / "static"
# A header no page of another origin can send without a CORS preflight, which this server never
# answers: a web page the user visits cannot press the dashboard's buttons.
ACTION_HEADER = "X-Dashboard-Action"
_HEARTBEAT_S = 15.0
# A browser that stops reading (a full TCP buffer) must not hold a handler for ever.
_WRITE_TIMEOUT_S = 10.0


@dataclass
class Context:
    state: StackState
    feed: Feed
    monitor: HealthMonitor
    controls: Controls
    mask: Masker
    closing: asyncio.Event


CONTEXT = web.AppKey("dashboard", Context)


def _rows(context: Context) -> dict[str, Any]:
    return {
        "resources": resource_rows(
            context.state, context.monitor.health, context.controls, context.mask, time.time()
        ),
        "logs": context.feed.log_resources(),
    }


async def index(request: web.Request) -> web.FileResponse:
    return web.FileResponse(STATIC_DIR / "index.html", headers={"Cache-Control": "no-cache"})


async def get_resources(request: web.Request) -> web.Response:
    return web.json_response(_rows(request.app[CONTEXT]))


async def _event_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(
        headers={
            "Content-Type": "text/event-stream",
            "Cache-Control": "no-cache",
            "X-Accel-Buffering": "no",
        }
    )
    await response.prepare(request)
    return response


async def _send(
    response: web.StreamResponse, event: str, data: object, event_id: int | None = None
) -> None:
    head = f"id: {event_id}\n" if event_id is not None else ""
    payload = f"{head}event: {event}\ndata: {json.dumps(data)}\n\n"
    await asyncio.wait_for(response.write(payload.encode()), _WRITE_TIMEOUT_S)


async def _until(waited: asyncio.Future[Any], closing: asyncio.Event, timeout_s: float) -> bool:
    """Wait for waited, the server's end or the timeout; True only when waited finished."""
    closed = asyncio.ensure_future(closing.wait())
    try:
        done, _ = await asyncio.wait(
            {waited, closed}, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
    finally:
        closed.cancel()
    if waited not in done:
        waited.cancel()
        return False
    return True


async def stream_resources(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    response = await _event_stream(request)
    with context.feed.watch_resources() as changed, _disconnect_ends_stream():
        while not context.closing.is_set():
            if await _until(asyncio.ensure_future(changed.wait()), context.closing, _HEARTBEAT_S):
                changed.clear()
                await _send(response, "resources", _rows(context))
            else:
                await asyncio.wait_for(response.write(b": keep-alive\n\n"), _WRITE_TIMEOUT_S)
    return response


def _known(context: Context, name: str) -> bool:
    return name in context.state.resources or name in context.feed.log_resources()


def _line_data(line: Line) -> dict[str, Any]:
    data = asdict(line)
    del data["resource"]
    return data


async def stream_logs(request: web.Request) -> web.StreamResponse:
    context = request.app[CONTEXT]
    name = request.match_info["resource"]
    if not _known(context, name):
        raise web.HTTPNotFound(text=f"no resource {name}")
    after = _int(request.headers.get("Last-Event-ID") or request.query.get("after"))
    response = await _event_stream(request)
    # Following starts before the history is sent, so no line falls between the two.
    with context.feed.follow_logs(name) as client, _disconnect_ends_stream():
        for line in context.feed.history(name, after):
            after = line.seq
            await _send(response, "line", _line_data(line), line.seq)
        while not context.closing.is_set():
            got = asyncio.ensure_future(client.queue.get())
            if not await _until(got, context.closing, _HEARTBEAT_S):
                await asyncio.wait_for(response.write(b": keep-alive\n\n"), _WRITE_TIMEOUT_S)
                continue
            lines = [got.result()]
            while not client.queue.empty():
                lines.append(client.queue.get_nowait())
            for line in lines:
                if line.seq > after:  # already sent as history
                    after = line.seq
                    await _send(response, "line", _line_data(line), line.seq)
            dropped = client.take_dropped()
            if dropped:
                await _send(response, "dropped", {"count": dropped})
    return response


async def act(request: web.Request) -> web.Response:
    context = request.app[CONTEXT]
    if request.headers.get(ACTION_HEADER) != "1":
        raise web.HTTPForbidden(text=f"actions need the {ACTION_HEADER}: 1 header")
    name, verb = request.match_info["resource"], request.match_info["action"]
    try:
        action = Action(verb)
    except ValueError:
        raise web.HTTPNotFound(text=f"no action {verb}") from None
    if context.controls.get(name) is None:
        raise web.HTTPNotFound(text=f"{name} does not accept actions (not running under `up`)")
    try:
        context.controls.request(name, action)
    except ActionRefused as error:
        raise web.HTTPConflict(text=error.message) from None
    return web.json_response({"resource": name, "action": action.value}, status=202)


@contextmanager
def _disconnect_ends_stream() -> Iterator[None]:
    """A browser that went away, or stopped reading, ends its stream; that is no error."""
    with contextlib.suppress(ConnectionResetError, TimeoutError):
        yield


def _int(text: str | None) -> int:
    try:
        return max(0, int(text or 0))
    except ValueError:
        return 0
