"""Resources from the start, in real Chromium: the supervisor of a local `up` (loopback engine,
real service processes) lists every resource with what it waits for before anything else
happens, and the page's table and graph show them so while the backend's health is held back;
then both turn healthy."""

from __future__ import annotations

import asyncio
import os
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


class StackThread(threading.Thread):
    """`up` as commands/up.py composes it (dashboard, then the supervisor), on a loop of its own
    while the test thread drives the browser."""

    def __init__(self, probe: HeldHealth, run_state: RunState, dashboard_port: int) -> None:
        super().__init__(name="up", daemon=True)
        self.probe, self._run_state, self._port = probe, run_state, dashboard_port
        self.recorder = Recorder()
        self.ready = threading.Event()
        self.url = ""
        self.code: int | None = None
        self.error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Future[int] | None = None

    def run(self) -> None:
        try:
            self.code = asyncio.run(self._up())
        except BaseException as error:  # reported by the test thread
            self.error = error
        finally:
            self.ready.set()

    async def _up(self) -> int:
        self._loop = asyncio.get_running_loop()
        self._stopping = self._loop.create_future()
        hub = EventHub()
        hub.subscribe(self.recorder)
        hub_task = asyncio.create_task(hub.run())
        hub.bind()
        seams = Seams(environ=dict(os.environ), probe=self.probe, python=sys.executable)
        supervisor = Supervisor(load_settings(), hub, self._run_state, seams)
        board = Dashboard(hub, supervisor.controls, Masker(), port=self._port, health_interval_s=1)
        self.url = await board.start()
        self.ready.set()
        try:
            return await supervisor.up(self._stopping)
        finally:
            await board.stop()
            await hub.drain()
            hub_task.cancel()

    @staticmethod
    def _signal(stop: asyncio.Future[int], signal_number: int) -> None:
        if not stop.done():
            stop.set_result(signal_number)

    def stop(self, signal_number: int = 15) -> None:
        loop, stop = self._loop, self._stopping
        if loop is not None and stop is not None and not loop.is_closed():
            loop.call_soon_threadsafe(self._signal, stop, signal_number)
        self.join(timeout=60)


@pytest.fixture
def held_stack(stack_environment: SetVariables, tmp_path: Path) -> Iterator[StackThread]:
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
    stack = StackThread(probe, RunState(tmp_path / "state", project), free_port())
    stack.start()
    try:
        assert stack.ready.wait(30) and stack.error is None, stack.error
        yield stack
    finally:
        probe.released.set()
        stack.stop()
        assert project_processes(project) == []


def _node(page: Page, resource: str) -> Locator:
    return page.locator(f'#graph .node[data-resource="{resource}"]')


def test_every_resource_is_listed_from_the_start_with_what_it_waits_for(
    browser: Browser, held_stack: StackThread
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
