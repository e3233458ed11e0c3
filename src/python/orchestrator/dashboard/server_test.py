"""The dashboard's server on a real port, fed by a real event hub."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import aiohttp
import pytest

from orchestrator import events
from orchestrator.dashboard.routes import ACTION_HEADER
from orchestrator.dashboard.server import Dashboard
from orchestrator.events import LogLine, Notice, ResourceKind, ResourceState, StateChanged
from orchestrator.hub import EventHub
from orchestrator.masking import MASK, Masker
from orchestrator.stack.lifecycle import Controls
from orchestrator.testing import CANARY_TOKEN
from testsupport.processes import free_port


@dataclass
class Served:
    hub: EventHub
    dashboard: Dashboard
    url: str


@pytest.fixture
async def served() -> AsyncIterator[Served]:
    hub = EventHub()
    task = asyncio.create_task(hub.run())
    hub.bind()
    dashboard = Dashboard(hub, Controls(), Masker([CANARY_TOKEN]), port=free_port())
    url = await dashboard.start()
    try:
        yield Served(hub, dashboard, url)
    finally:
        await dashboard.stop()
        task.cancel()


async def _sse_events(
    url: str, *, headers: dict[str, str] | None = None, quiet_s: float = 1.0
) -> list[tuple[str, str, str]]:
    """(id, event, data) of what the stream sends until it is quiet for quiet_s."""
    found: list[tuple[str, str, str]] = []
    fields: dict[str, str] = {}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as response:
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        while True:
            try:
                raw = await asyncio.wait_for(response.content.readline(), quiet_s)
            except TimeoutError:
                return found
            line = raw.decode().rstrip("\n")
            if not line:
                if "event" in fields:
                    found.append((fields.get("id", ""), fields["event"], fields.get("data", "")))
                fields = {}
            elif not line.startswith(":"):
                key, _, value = line.partition(": ")
                fields[key] = value


async def test_pages_and_api_never_show_the_secret(served: Served) -> None:
    hub = served.hub
    await hub.publish(
        StateChanged(
            events.BACKEND,
            ResourceState.STARTING,
            f"token {CANARY_TOKEN}",
            kind=ResourceKind.PROCESS,
        )
    )
    await hub.publish(LogLine(events.BACKEND, f"loading with HF_TOKEN={CANARY_TOKEN}"))
    await hub.publish(Notice(f"the orchestrator says {CANARY_TOKEN}"))
    await hub.drain()
    seen: list[str] = []
    async with aiohttp.ClientSession() as session:
        pages = ("/", "/static/dashboard.js", "/static/dashboard.css", "/theme/theme.css")
        for path in (*pages, "/api/resources"):
            async with session.get(served.url + path) as response:
                assert response.status == 200, path
                seen.append(await response.text())
    resources = json.loads(seen[-1])
    backend = resources["resources"][0]
    assert backend["name"] == events.BACKEND and backend["kind"] == "process"
    assert backend["detail"] == f"token {MASK}"
    for name in (events.BACKEND, events.ORCHESTRATOR):
        lines = await _sse_events(f"{served.url}/api/logs/{name}")
        assert lines, name
        seen.extend(data for _, _, data in lines)
    stream = await _sse_events(f"{served.url}/api/resources/stream")
    seen.extend(data for _, _, data in stream)
    everything = "\n".join(seen)
    assert CANARY_TOKEN not in everything
    assert f"HF_TOKEN={MASK}" in everything and f"says {MASK}" in everything


async def test_log_stream_replays_then_follows_and_resumes(served: Served) -> None:
    hub = served.hub
    for n in range(3):
        await hub.publish(LogLine(events.FRONTEND, f"early {n}"))
    await hub.drain()
    url = f"{served.url}/api/logs/{events.FRONTEND}"

    async def publish_later() -> None:
        await asyncio.sleep(0.3)
        await hub.publish(LogLine(events.FRONTEND, "late"))

    later = asyncio.create_task(publish_later())
    found = await _sse_events(url)
    await later
    texts = [json.loads(data)["text"] for _, event, data in found if event == "line"]
    assert texts == ["early 0", "early 1", "early 2", "late"]
    # A reconnecting EventSource sends the last id it saw and gets only what came after.
    resumed = await _sse_events(url, headers={"Last-Event-ID": found[1][0]})
    assert [json.loads(data)["text"] for _, _, data in resumed] == ["early 2", "late"]


async def test_resource_stream_sends_a_view_on_each_change(served: Served) -> None:
    async def change_later() -> None:
        await asyncio.sleep(0.3)
        await served.hub.publish(
            StateChanged(events.FRONTEND, ResourceState.HEALTHY, endpoint="http://127.0.0.1:1")
        )

    later = asyncio.create_task(change_later())
    found = await _sse_events(f"{served.url}/api/resources/stream")
    await later
    views = [json.loads(data) for _, event, data in found if event == "resources"]
    assert views[0]["resources"] == []
    frontend = views[-1]["resources"][0]
    assert frontend["state"] == "healthy" and frontend["endpoints"] == ["http://127.0.0.1:1"]
    assert [link["label"] for link in frontend["links"]] == ["UI", "/health"]
    assert frontend["uptime_s"] is not None and frontend["restarts"] == 0


async def test_actions_need_the_header_a_known_resource_and_a_loopback_host(
    served: Served,
) -> None:
    action = f"{served.url}/api/resources/{events.FRONTEND}/restart"
    async with aiohttp.ClientSession() as session:
        async with session.post(action) as response:
            assert response.status == 403
        async with session.post(action, headers={ACTION_HEADER: "1"}) as response:
            assert response.status == 404  # nothing runs under `up` here
        async with session.post(
            f"{served.url}/api/resources/{events.FRONTEND}/explode", headers={ACTION_HEADER: "1"}
        ) as response:
            assert response.status == 404
        async with session.get(
            f"{served.url}/api/resources", headers={"Host": "attacker.example"}
        ) as response:
            assert response.status == 421
        async with session.get(
            f"{served.url}/api/resources", headers={"Host": "localhost:1234"}
        ) as response:
            assert response.status == 200


async def test_a_second_dashboard_on_the_same_port_says_which_option_to_change(
    served: Served,
) -> None:
    port = int(served.url.rsplit(":", 1)[1])
    other = Dashboard(served.hub, Controls(), Masker(), port=port)
    with pytest.raises(Exception, match="--dashboard-port"):
        await other.start()
    await other.stop()
