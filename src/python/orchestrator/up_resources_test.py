"""Resources from the start, in real Chromium: the supervisor of a local `up` (loopback engine,
real service processes) lists every resource with what it waits for before anything else
happens, and the page's table and graph show them so while the backend's health is held back;
then both turn healthy."""

from __future__ import annotations

import asyncio
import concurrent.futures
import os
import signal
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Locator, Page, expect

from orchestrator import events
from orchestrator.conftest import SetVariables
from orchestrator.dashboard import testing as dashboard
from orchestrator.dashboard.server import Dashboard
from orchestrator.dashboard.testing import loop_thread
from orchestrator.events import Event, ResourceState, StateChanged
from orchestrator.health.probe import HealthAnswer, HttpProbe
from orchestrator.hub import EventHub, StackState
from orchestrator.masking import Masker
from orchestrator.processes.run_state import RunState
from orchestrator.settings import load_settings
from orchestrator.stack.context import Seams
from orchestrator.stack.supervisor import Supervisor
from orchestrator.testing import project_processes, unique_project
from testsupport.processes import free_port

_MS = 1000
_START_TIMEOUT_S = 120.0


class HeldHealth:
    """The real probe, except that one URL goes unanswered until released: the window in
    which the backend is starting and the frontend waits for it, held open to be looked at."""

    def __init__(self, held_prefix: str) -> None:
        self._probe = HttpProbe()
        self._held_prefix = held_prefix
        self.released = threading.Event()

    async def __call__(self, url: str) -> HealthAnswer | None:
        if url.startswith(self._held_prefix) and not self.released.is_set():
            return None
        return await self._probe(url)


@dataclass
class Recorder:
    events: list[Event] = field(default_factory=list)

    def on_event(self, event: Event, state: StackState) -> None:
        self.events.append(event)


@dataclass
class HeldStack:
    """`up` as commands/up.py composes it (dashboard, then the supervisor), on a loop thread
    while the test's thread drives the browser."""

    url: str
    probe: HeldHealth
    recorder: Recorder
    up: concurrent.futures.Future[int]
    stop: asyncio.Future[int]


@pytest.fixture
def held_stack(stack_environment: SetVariables, tmp_path: Path) -> Iterator[HeldStack]:
    project, backend_port = unique_project(), free_port()
    stack_environment(
        PERSONAPLEX_PROJECT=project,
        MOSHI_BACKEND="local",
        MOSHI_ENGINE="loopback",
        MOSHI_GPU="off",
        MOSHI_PORT=str(backend_port),
        APP_PORT=str(free_port()),
        PERSONAPLEX_HEALTH_TIMEOUT_S=str(_START_TIMEOUT_S),
        DOCKER_HOST=f"unix://{tmp_path}/no-docker.sock",
    )
    probe = HeldHealth(f"http://127.0.0.1:{backend_port}/")
    recorder = Recorder()
    seams = Seams(environ=dict(os.environ), probe=probe, python=sys.executable)
    run_state = RunState(tmp_path / "state", project)

    async def start(hub: EventHub) -> tuple[Dashboard, HeldStack]:
        hub.subscribe(recorder)
        supervisor = Supervisor(load_settings(), hub, run_state, seams)
        board = Dashboard(hub, supervisor.controls, Masker(), port=free_port())
        url = await board.start()
        stop: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        up = asyncio.run_coroutine_threadsafe(supervisor.up(stop), asyncio.get_running_loop())
        return board, HeldStack(url, probe, recorder, up, stop)

    with loop_thread() as thread:
        board, held = thread.run(start(thread.start_hub()))
        try:
            yield held
        finally:
            probe.released.set()
            thread.loop.call_soon_threadsafe(held.stop.set_result, signal.SIGTERM)
            assert held.up.result(60) == 128 + signal.SIGTERM
            thread.run(board.stop())
    assert project_processes(project) == []


def _node(page: Page, resource: str) -> Locator:
    return page.locator(f'#graph .node[data-resource="{resource}"]')


def test_every_resource_is_listed_from_the_start_with_what_it_waits_for(
    browser: Browser, held_stack: HeldStack
) -> None:
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(held_stack.url)
        # Held: the backend is started but not yet healthy, the frontend waits for it.
        frontend_state = dashboard.field(page, events.FRONTEND, "state")
        expect(frontend_state).to_contain_text("waiting", timeout=30 * _MS)
        expect(frontend_state).to_contain_text(f"for {events.BACKEND} to be healthy")
        expect(dashboard.field(page, events.BACKEND, "state")).to_have_text(
            "starting", timeout=60 * _MS
        )
        # The graph: browser -> frontend -> backend, nodes coloured by their states.
        graph = page.locator("#graph")
        expect(graph.locator(".node")).to_have_count(3)
        expect(graph.locator('.node[data-resource="browser"]')).to_have_attribute(
            "data-state", "external"
        )
        expect(_node(page, events.FRONTEND)).to_have_attribute("data-state", "waiting")
        expect(_node(page, events.BACKEND)).to_have_attribute("data-state", "starting")
        edges = graph.locator(".edge")
        expect(edges).to_have_count(2)
        pairs = {(e.get_attribute("data-from"), e.get_attribute("data-to")) for e in edges.all()}
        assert pairs == {("browser", events.FRONTEND), (events.FRONTEND, events.BACKEND)}
        stroke = page.evaluate(
            "(name) => getComputedStyle(document.querySelector("
            '`#graph .node[data-resource="${name}"] rect`)).stroke',
            events.BACKEND,
        )
        waiting_stroke = page.evaluate(
            "() => getComputedStyle(document.querySelector("
            "'#graph .node[data-resource=\"frontend\"] rect')).stroke"
        )
        assert stroke != waiting_stroke

        held_stack.probe.released.set()
        dashboard.expect_healthy(page, (events.BACKEND, events.FRONTEND), _START_TIMEOUT_S)
        expect(_node(page, events.FRONTEND)).to_have_attribute("data-state", "healthy")
        expect(_node(page, events.BACKEND)).to_have_attribute("data-state", "healthy")
        expect(dashboard.field(page, events.FRONTEND, "state")).not_to_contain_text("waiting")
    finally:
        page.close()

    # Before anything else happened, both were listed, with what they wait for.
    changes = [event for event in held_stack.recorder.events if isinstance(event, StateChanged)]
    first = held_stack.recorder.events[:2]
    assert first == changes[:2]
    assert [(e.resource, e.state) for e in changes[:2]] == [
        (events.BACKEND, ResourceState.WAITING),
        (events.FRONTEND, ResourceState.WAITING),
    ]
    assert changes[1].waiting_for == f"{events.BACKEND} to be healthy"
    assert changes[0].waiting_for
    # The frontend waited until the backend was healthy, and only then started.
    order = [(e.resource, e.state) for e in changes]
    backend_healthy = order.index((events.BACKEND, ResourceState.HEALTHY))
    assert order.index((events.FRONTEND, ResourceState.STARTING)) > backend_healthy
