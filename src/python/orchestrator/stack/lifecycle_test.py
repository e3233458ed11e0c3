from __future__ import annotations

import asyncio
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import pytest

from orchestrator.events import Event, Notice, ResourceState
from orchestrator.hub import EventHub, StackState
from orchestrator.processes.local_process import LocalLauncher, LocalProcess, ProcessSpec
from orchestrator.stack.lifecycle import Action, ActionRefused, Controls, Lifecycle

SLEEPER = [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(120)"]


@dataclass
class Sleeper:
    """A real child process as a resource: each start is a new process."""

    launcher: LocalLauncher
    processes: list[LocalProcess] = field(default_factory=list)
    fail_next_start: bool = False
    # When set, a start waits for it after launching: a health gate that has not opened yet.
    gate: asyncio.Event | None = None

    async def start(self) -> None:
        if self.fail_next_start:
            self.fail_next_start = False
            raise RuntimeError("refused to start")
        process = await self.launcher.start(ProcessSpec("svc", SLEEPER, env={}))
        self.processes.append(process)
        if self.gate is not None:
            await self.gate.wait()

    async def stop(self) -> None:
        if self.processes:
            await self.processes[-1].stop(5.0)

    async def exited(self) -> str | None:
        return await self.processes[-1].exit_description() if self.processes else "none"


class Recorder:
    def __init__(self) -> None:
        self.seen: list[Event] = []

    def on_event(self, event: Event, state: StackState) -> None:
        self.seen.append(event)


@pytest.fixture
async def hub() -> AsyncIterator[EventHub]:
    hub = EventHub()
    task = asyncio.create_task(hub.run())
    hub.bind()
    yield hub
    task.cancel()


@pytest.fixture
async def sleeper(hub: EventHub) -> AsyncIterator[Sleeper]:
    resource = Sleeper(LocalLauncher(hub))
    yield resource
    for process in resource.processes:
        await process.stop(5.0)


async def _started(hub: EventHub, sleeper: Sleeper) -> Lifecycle:
    await sleeper.start()
    return Lifecycle("svc", sleeper, hub, running=True)


async def test_restart_replaces_the_process_and_counts(hub: EventHub, sleeper: Sleeper) -> None:
    lifecycle = await _started(hub, sleeper)
    first = sleeper.processes[0]
    await asyncio.wait_for(lifecycle.request(Action.RESTART), 30)
    await hub.drain()
    assert len(sleeper.processes) == 2 and sleeper.processes[1].pid != first.pid
    assert await first.exit_description() is not None
    assert await sleeper.processes[1].exit_description() is None
    assert lifecycle.running and hub.state.view("svc").restarts == 1
    # The old process's end was asked for: it is no crash.
    assert await lifecycle.unexpected_exit() is None


async def test_stop_then_start(hub: EventHub, sleeper: Sleeper) -> None:
    lifecycle = await _started(hub, sleeper)
    await asyncio.wait_for(lifecycle.request(Action.STOP), 30)
    await hub.drain()
    assert not lifecycle.running and hub.state.view("svc").state is ResourceState.STOPPED
    assert await lifecycle.unexpected_exit() is None
    await asyncio.wait_for(lifecycle.request(Action.START), 30)
    assert lifecycle.running and await sleeper.processes[-1].exit_description() is None


async def test_one_action_at_a_time(hub: EventHub, sleeper: Sleeper) -> None:
    controls = Controls()
    controls.add(await _started(hub, sleeper))
    first = controls.request("svc", Action.RESTART)
    with pytest.raises(ActionRefused):
        controls.request("svc", Action.STOP)
    await asyncio.wait_for(first, 30)
    with pytest.raises(ActionRefused):
        controls.request("nothing", Action.STOP)


async def test_a_failed_restart_marks_the_resource_and_leaves_the_stack(
    hub: EventHub, sleeper: Sleeper
) -> None:
    recorder = Recorder()
    hub.subscribe(recorder)
    lifecycle = await _started(hub, sleeper)
    sleeper.fail_next_start = True
    await asyncio.wait_for(lifecycle.request(Action.RESTART), 30)
    await hub.drain()
    assert not lifecycle.running
    assert hub.state.view("svc").state is ResourceState.FAILED
    assert any(isinstance(e, Notice) and "refused to start" in e.text for e in recorder.seen)
    assert await lifecycle.unexpected_exit() is None


async def test_a_crash_is_reported_once_nobody_acts(hub: EventHub, sleeper: Sleeper) -> None:
    lifecycle = await _started(hub, sleeper)
    await sleeper.processes[0].stop(5.0)  # from outside, as a crash would
    assert await lifecycle.unexpected_exit() == "was killed by SIGTERM"


async def test_shutdown_cancels_an_action_in_flight(hub: EventHub, sleeper: Sleeper) -> None:
    lifecycle = await _started(hub, sleeper)
    sleeper.gate = asyncio.Event()  # never opens
    lifecycle.request(Action.RESTART)
    for _ in range(100):
        if len(sleeper.processes) == 2:
            break
        await asyncio.sleep(0.05)
    await asyncio.wait_for(lifecycle.shutdown(), 30)
    await hub.drain()
    assert all([await p.exit_description() is not None for p in sleeper.processes])
    assert hub.state.view("svc").state is ResourceState.STOPPED
