"""`up`: starts the backend (container or process) and the frontend, gates each on /health,
then watches them until a signal or a failure, and stops what it owns on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Coroutine
from contextlib import AsyncExitStack
from typing import Any

from orchestrator import events
from orchestrator.errors import OrchestratorError
from orchestrator.events import Level, ResourceState, StateChanged
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import RunState, kill_group, pid_alive
from orchestrator.settings import StackSettings
from orchestrator.stack.backend import start_backend
from orchestrator.stack.context import Seams, StackContext
from orchestrator.stack.frontend import start_frontend
from orchestrator.stack.lifecycle import Controls, Lifecycle
from orchestrator.stack.tls import prepare_certificate
from orchestrator.telemetry.session import Telemetry

_WATCH_INTERVAL_S = 1.0


def refuse_if_running(run_state: RunState, project: str) -> None:
    """OrchestratorError when another `up` of the project runs."""
    previous = run_state.load()
    if (
        previous is not None
        and previous.orchestrator_pid != os.getpid()
        and pid_alive(previous.orchestrator_pid)
    ):
        raise OrchestratorError(
            f"`up` of project {project} is already running "
            f"(pid {previous.orchestrator_pid}); stop it first or run `orchestrator down`"
        )


class Supervisor:
    def __init__(
        self,
        settings: StackSettings,
        hub: EventHub,
        run_state: RunState,
        seams: Seams,
        telemetry: Telemetry | None = None,
    ) -> None:
        self._stack = StackContext(settings, hub, run_state, seams, telemetry)

    @property
    def controls(self) -> Controls:
        """The running resources, for the dashboard's actions."""
        return self._stack.controls

    async def up(self, stop: asyncio.Future[int]) -> int:
        """128+signal after a signal, 1 when a service fails; raises when the start fails."""
        stack = self._stack
        started = stack.seams.clock.monotonic()
        await self._announce()
        async with AsyncExitStack() as owned:
            await self._sweep_processes()
            stack.run_state.directory.mkdir(parents=True, exist_ok=True)
            stack.save_record()
            owned.callback(stack.run_state.clear)
            if await self._until_stopped(self._start(owned), stop):
                elapsed = stack.seams.clock.monotonic() - started
                frontend = stack.record.endpoints[events.FRONTEND]
                await stack.say(f"stack is up in {elapsed:.1f} s: open {frontend}")
                code = await self._watch(stop)
            else:
                await stack.say("interrupted while starting; stopping what was started")
                code = 128 + stop.result()
        return code

    async def _announce(self) -> None:
        """Every resource listed before anything happens, with what it waits for: the page and
        the terminal show the whole stack from the first second, as Aspire does."""
        for resource, waiting_for in (
            (events.BACKEND, "the stack's setup (leftovers, certificate, container engine)"),
            (events.FRONTEND, f"{events.BACKEND} to be healthy"),
        ):
            await self._stack.hub.publish(
                StateChanged(resource, ResourceState.WAITING, waiting_for=waiting_for)
            )

    async def _start(self, owned: AsyncExitStack) -> None:
        await asyncio.to_thread(prepare_certificate, self._stack)
        backend, engine = await start_backend(self._stack, owned)
        await start_frontend(self._stack, owned, backend, engine)

    async def _until_stopped(
        self, work: Coroutine[Any, Any, None], stop: asyncio.Future[int]
    ) -> bool:
        """Run work unless a signal comes first; False when it was interrupted."""
        task = asyncio.create_task(work)
        racing: set[asyncio.Future[Any]] = {task, stop}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # re-raises a failed start
            return True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OrchestratorError):
            await task
        return False

    async def _watch(self, stop: asyncio.Future[int]) -> int:
        stack = self._stack
        watchers = {
            asyncio.create_task(self._until_exit(lifecycle), name=f"watch-{name}")
            for name, lifecycle in stack.controls.items()
        }
        try:
            racing: set[asyncio.Future[Any]] = {stop, *watchers}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        if stop.done():
            signal_number = stop.result()
            await stack.say(f"received signal {signal_number}; stopping the stack")
            return 128 + signal_number
        name, ending = next(w.result() for w in watchers if w.done() and not w.cancelled())
        await stack.hub.publish(StateChanged(name, ResourceState.FAILED, ending))
        await stack.say(f"{name} {ending}; stopping the stack", Level.ERROR)
        return 1

    async def _until_exit(self, lifecycle: Lifecycle) -> tuple[str, str]:
        while True:
            ending = await lifecycle.unexpected_exit()
            if ending is not None:
                return lifecycle.name, ending
            await self._stack.seams.clock.sleep(_WATCH_INTERVAL_S)

    async def _sweep_processes(self) -> None:
        """What a crashed run of this project left: its processes go, its `up` must be gone."""
        stack = self._stack
        previous = stack.run_state.load()
        if previous is None:
            return
        refuse_if_running(stack.run_state, stack.settings.project)
        swept = [p for p in previous.processes if kill_group(p)]
        if swept:
            names = ", ".join(f"{p.service} (pid {p.pid})" for p in swept)
            await stack.say(f"stopped leftovers of a crashed run: {names}", Level.WARNING)
        stack.run_state.clear()
