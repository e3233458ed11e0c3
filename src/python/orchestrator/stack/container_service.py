"""A service container under `up`: gated on health at each start, restarted in place from the
dashboard (same container, port, configuration and volume), and at the end of `up` removed, or
left running when it is persistent."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Literal

from orchestrator.containers.container_spec import ContainerSpec
from orchestrator.containers.engine import Action, DockerEngine, RunOutcome
from orchestrator.containers.service_container import ServiceContainer
from orchestrator.endpoints import Endpoint
from orchestrator.events import ResourceKind, ResourceState, StateChanged
from orchestrator.health.probe import HealthAnswer
from orchestrator.stack.context import StackContext
from orchestrator.stack.health_gating import gate_on_health
from orchestrator.stack.lifecycle import Lifecycle

# How long the end of an interrupted `up` waits for a container being made, to remove it.
_CREATION_WAIT_S = 60.0


class ContainerStart:
    """A service container being created and started, its removal registered before it exists:
    a start that is interrupted or fails before run_container_service has registered the
    container's own release leaves no container behind."""

    def __init__(self, engine: DockerEngine, spec: ContainerSpec, session: str) -> None:
        self._run = asyncio.ensure_future(engine.run(spec, session))
        self.handed_over = False

    async def outcome(self) -> RunOutcome:
        # Shielded: a cancelled `up` must still learn what the engine made, to remove it.
        return await asyncio.shield(self._run)

    async def remove_unless_handed_over(self) -> None:
        if self.handed_over:
            return
        try:
            outcome = await asyncio.wait_for(asyncio.shield(self._run), _CREATION_WAIT_S)
        except Exception:  # nothing was made, or it is lost to us either way
            return
        if outcome.action is not Action.REUSED:  # a reused one was running before this `up`
            await outcome.container.stop(remove=True)


async def start_container(
    stack: StackContext, owned: AsyncExitStack, engine: DockerEngine, spec: ContainerSpec
) -> tuple[ContainerStart, RunOutcome]:
    start = ContainerStart(engine, spec, stack.session)
    owned.push_async_callback(start.remove_unless_handed_over)
    return start, await start.outcome()


async def announce_build(stack: StackContext, resource: str, image: str) -> None:
    await stack.hub.publish(
        StateChanged(
            resource, ResourceState.BUILDING, "image", kind=ResourceKind.CONTAINER, image=image
        )
    )


class ContainerService:
    """The Runner of a service container."""

    def __init__(
        self,
        stack: StackContext,
        name: str,
        container: ServiceContainer,
        endpoint: Endpoint,
        ready: Callable[[HealthAnswer], bool] | None,
    ) -> None:
        self._stack = stack
        self.name = name
        self.container = container
        self._endpoint = endpoint
        self._ready = ready

    async def start(self) -> None:
        """The stopped container again; its new logs follow."""
        await self._stack.hub.publish(
            StateChanged(self.name, ResourceState.STARTING, f"container {self.container.short_id}")
        )
        started = time.time()
        await self.container.start()
        self.container.relay_logs(since=started)
        await self.gate()

    async def stop(self) -> None:
        await self.container.stop(remove=False)

    async def exited(self) -> str | None:
        return await self.container.exit_description()

    async def gate(self) -> None:
        await gate_on_health(self._stack, self.name, self._endpoint, self.container, self._ready)

    async def release(self, lifecycle: Lifecycle, persistent: bool) -> None:
        """The end of `up`: removed, unless persistent and still running (then left as is)."""
        await lifecycle.cancel()
        hub, container = self._stack.hub, self.container
        if persistent and lifecycle.running and await container.exit_description() is None:
            container.close_logs()
            await hub.publish(
                StateChanged(self.name, ResourceState.DETACHED, "persistent: `down` removes it")
            )
            return
        await hub.publish(StateChanged(self.name, ResourceState.STOPPING))
        await container.stop(remove=True)
        await hub.publish(StateChanged(self.name, ResourceState.STOPPED))


async def run_container_service(
    stack: StackContext,
    owned: AsyncExitStack,
    start: ContainerStart,
    container: ServiceContainer,
    *,
    name: str,
    image: str,
    image_id: str,
    port: int,
    ready: Callable[[HealthAnswer], bool] | None = None,
    persistent: bool = False,
    log_tail: int | Literal["all"] = "all",
) -> Endpoint:
    """Gate the started container on health; restartable from the dashboard; removed when owned
    closes, unless persistent and still running. Its endpoint on this host."""
    shown = f"{image} ({image_id.removeprefix('sha256:')[:12]})"
    await stack.hub.publish(
        StateChanged(name, ResourceState.STARTING, f"container {container.short_id}", image=shown)
    )
    host, host_port = await container.endpoint(port)
    endpoint = Endpoint(host, host_port, stack.scheme)
    service = ContainerService(stack, name, container, endpoint, ready)
    lifecycle = Lifecycle(name, service, stack.hub, running=False)
    owned.push_async_callback(service.release, lifecycle, persistent)
    start.handed_over = True
    container.relay_logs(tail=log_tail)
    await service.gate()
    lifecycle.running = True
    stack.controls.add(lifecycle)
    return endpoint
