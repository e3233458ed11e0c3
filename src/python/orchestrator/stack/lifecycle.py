"""Restart, stop and start of one resource while the stack runs (the dashboard's buttons).

An action runs as a task the resource owns, one at a time: a request only asks, the hub reports
how it goes, and the end of `up` cancels an action still in flight before stopping what runs.
"""

from __future__ import annotations

import asyncio
from enum import Enum
from typing import Protocol

from orchestrator.errors import OrchestratorError, ServiceFailed
from orchestrator.events import Level, Notice, ResourceState, StateChanged
from orchestrator.hub import EventHub

_CANCEL_WAIT_S = 15.0


class Action(str, Enum):
    RESTART = "restart"
    STOP = "stop"
    START = "start"


class ActionRefused(OrchestratorError):
    """The resource is unknown, or busy with another action."""


class Runner(Protocol):
    """How one resource is brought up (health gate included), taken down, and found ended."""

    async def start(self) -> None:
        ...

    async def stop(self) -> None:
        """Safe to call when nothing runs."""

    async def exited(self) -> str | None:
        """None while it runs; otherwise how it ended ("exited with code 2")."""


class Lifecycle:
    def __init__(self, name: str, runner: Runner, hub: EventHub, *, running: bool) -> None:
        self.name = name
        self._runner = runner
        self._hub = hub
        self.running = running
        # Bumped by every action, so an exit seen across an action is not taken for a crash.
        self._generation = 0
        self._action: asyncio.Task[None] | None = None

    @property
    def busy(self) -> bool:
        return self._action is not None and not self._action.done()

    def request(self, action: Action) -> asyncio.Task[None]:
        if self.busy:
            raise ActionRefused(f"{self.name} is busy with another action; try again shortly")
        self._generation += 1
        self._action = asyncio.create_task(self._perform(action), name=f"{action}-{self.name}")
        return self._action

    async def _perform(self, action: Action) -> None:
        try:
            if action is Action.RESTART:
                await self._hub.publish(StateChanged(self.name, ResourceState.RESTARTING))
            if action is not Action.START and self.running:
                if action is Action.STOP:
                    await self._hub.publish(StateChanged(self.name, ResourceState.STOPPING))
                self.running = False
                await self._runner.stop()
            if action is Action.STOP:
                await self._hub.publish(StateChanged(self.name, ResourceState.STOPPED))
                return
            if not self.running:
                await self._runner.start()
                self.running = True
        except ServiceFailed as error:
            # The health gate has already marked the resource failed; the stack carries on.
            await self._hub.publish(Notice(f"{action.value} of {self.name}: {error}", Level.ERROR))
        except Exception as error:  # an action's failure belongs to the resource, not to `up`
            message = f"{action.value} of {self.name} failed: {error}"
            await self._hub.publish(StateChanged(self.name, ResourceState.FAILED, message))
            await self._hub.publish(Notice(message, Level.ERROR))

    async def cancel(self) -> None:
        """Abandon an action in flight (the end of `up`); what it started is stopped by shutdown."""
        if self._action is not None and not self._action.done():
            self._action.cancel()
            # Bounded: a step that swallowed the cancel (3.11's wait_for can) must not hold `up`.
            await asyncio.wait({self._action}, timeout=_CANCEL_WAIT_S)

    async def shutdown(self) -> None:
        await self.cancel()
        self.running = False
        await self._hub.publish(StateChanged(self.name, ResourceState.STOPPING))
        await self._runner.stop()
        await self._hub.publish(StateChanged(self.name, ResourceState.STOPPED))

    async def unexpected_exit(self) -> str | None:
        """How the resource ended when nobody asked it to; None while it runs or is at rest."""
        if self.busy or not self.running:
            return None
        generation = self._generation
        ending = await self._runner.exited()
        if ending is None or self.busy or not self.running or generation != self._generation:
            return None
        return ending


class Controls:
    """The resources that accept actions, by name; filled by the supervisor as they come up."""

    def __init__(self) -> None:
        self._lifecycles: dict[str, Lifecycle] = {}

    def add(self, lifecycle: Lifecycle) -> None:
        self._lifecycles[lifecycle.name] = lifecycle

    def get(self, name: str) -> Lifecycle | None:
        return self._lifecycles.get(name)

    def items(self) -> list[tuple[str, Lifecycle]]:
        return list(self._lifecycles.items())

    def request(self, name: str, action: Action) -> asyncio.Task[None]:
        lifecycle = self._lifecycles.get(name)
        if lifecycle is None:
            raise ActionRefused(f"{name} is not a resource that can be acted on (yet)")
        return lifecycle.request(action)
