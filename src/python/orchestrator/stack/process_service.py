"""A service as a local process that can be restarted: each start is a new process with the
same environment, gated on health like the first."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AsyncExitStack

from orchestrator.endpoints import Endpoint
from orchestrator.events import ResourceKind, ResourceState, StateChanged
from orchestrator.health.probe import HealthAnswer
from orchestrator.processes.local_process import ProcessSpec, RunningProcess
from orchestrator.processes.run_state import ProcessRecord
from orchestrator.stack.context import StackContext
from orchestrator.stack.health_gating import gate_on_health
from orchestrator.stack.lifecycle import Lifecycle

# SIGTERM first, SIGKILL after this long (uvicorn's reloader and the backend stop in ~1 s).
STOP_GRACE_S = 10.0


class ProcessService:
    """The Runner of a local service process."""

    def __init__(
        self,
        stack: StackContext,
        service: str,
        arguments: Sequence[str],
        env: Mapping[str, str],
        endpoint: Endpoint,
        ready: Callable[[HealthAnswer], bool] | None = None,
        recorded: Sequence[str] | None = None,
    ) -> None:
        self._stack = stack
        self.name = service
        # The interpreter's: `-m SERVICE`, or a PEX directory and its flags.
        self._arguments = list(arguments)
        # What of the command line the run record recognises the process by: the part that a
        # process re-executing itself (a venv PEX) keeps. Default: all of it.
        self._recorded = " ".join(self._arguments if recorded is None else recorded)
        self._env = env
        self._endpoint = endpoint
        self._ready = ready
        self._current: RunningProcess | None = None

    async def start(self) -> None:
        await self._stack.hub.publish(
            StateChanged(
                self.name, ResourceState.STARTING, "local process", kind=ResourceKind.PROCESS
            )
        )
        self._current = await self._spawn()
        await gate_on_health(self._stack, self.name, self._endpoint, self._current, self._ready)

    async def stop(self) -> None:
        if self._current is not None:
            await self._current.stop(STOP_GRACE_S)

    async def exited(self) -> str | None:
        if self._current is None:
            return "never started"
        return await self._current.exit_description()

    async def _spawn(self) -> RunningProcess:
        stack = self._stack
        argv = [stack.seams.python, *self._arguments]
        spec = ProcessSpec(self.name, argv, self._env, cwd=stack.run_state.directory)
        process = await stack.launcher.start(spec)
        # A restart replaces the service's process: `down` and the next `up` find the new one.
        stack.record.processes = [p for p in stack.record.processes if p.service != self.name]
        stack.record.processes.append(
            ProcessRecord.of(self.name, process.pid, process.pgid, self._recorded)
        )
        stack.save_record()
        return process


async def run_process_service(
    stack: StackContext, owned: AsyncExitStack, service: ProcessService
) -> None:
    """Start the service, stopped when owned closes, restartable from the dashboard."""
    lifecycle = Lifecycle(service.name, service, stack.hub, running=False)
    owned.push_async_callback(lifecycle.shutdown)
    await service.start()
    lifecycle.running = True
    stack.controls.add(lifecycle)
