"""The one event stream: a bounded queue, one loop that owns the stack's state, and subscribers.

Watchers (processes, containers, health gates, builds) publish; only `EventHub.run` changes
`StackState`, then hands each event with the new state to the subscribers in order.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
from collections import deque
from dataclasses import dataclass, field
from typing import Protocol

from orchestrator.events import (
    Event,
    LogLine,
    Progress,
    ResourceKind,
    ResourceState,
    StateChanged,
)

_RECENT_LINES = 60
_NOT_RUNNING = frozenset({ResourceState.FAILED, ResourceState.STOPPED, ResourceState.RESTARTING})


@dataclass
class ResourceView:
    name: str
    state: ResourceState = ResourceState.PENDING
    detail: str = ""
    endpoint: str | None = None
    progress: Progress | None = None
    recent: deque[str] = field(default_factory=lambda: deque(maxlen=_RECENT_LINES))
    kind: ResourceKind | None = None
    image: str | None = None
    # When the current run started (wall clock); None while it does not run.
    started_at: float | None = None
    restarts: int = 0


@dataclass
class StackState:
    resources: dict[str, ResourceView] = field(default_factory=dict)

    def view(self, name: str) -> ResourceView:
        if name not in self.resources:
            self.resources[name] = ResourceView(name)
        return self.resources[name]

    def apply(self, event: Event) -> None:
        if isinstance(event, StateChanged):
            view = self.view(event.resource)
            view.state, view.detail = event.state, event.detail
            if event.endpoint is not None:
                view.endpoint = event.endpoint
            if event.kind is not None:
                view.kind = event.kind
            if event.image is not None:
                view.image = event.image
            if event.state is not ResourceState.BUILDING:
                view.progress = None
            if event.state is ResourceState.RESTARTING:
                view.restarts += 1
            if event.state is ResourceState.STARTING or (
                event.state is ResourceState.HEALTHY and view.started_at is None
            ):
                view.started_at = event.at
            elif event.state in _NOT_RUNNING:
                view.started_at = None
        elif isinstance(event, LogLine):
            self.view(event.resource).recent.append(event.text)
        elif isinstance(event, Progress):
            self.view(event.resource).progress = event


class Subscriber(Protocol):
    def on_event(self, event: Event, state: StackState) -> None:
        """Called on the hub's loop for every event, in order; must not block for long."""


class EventHub:
    def __init__(self, maxsize: int = 1024, publish_timeout_s: float = 10.0) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._subscribers: list[Subscriber] = []
        self._publish_timeout_s = publish_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self.state = StackState()
        self.dropped = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        self._subscribers.append(subscriber)

    async def publish(self, event: Event) -> None:
        # A full queue slows the publishers down (back-pressure on log readers); a consumer
        # that is gone for good must not hang them, so the wait is bounded.
        try:
            await asyncio.wait_for(self._queue.put(event), self._publish_timeout_s)
        except TimeoutError:
            self.dropped += 1

    def publish_threadsafe(self, event: Event) -> bool:
        """From a worker thread; False once the loop is gone (the thread should stop)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(self.publish(event), loop)
            future.result(timeout=self._publish_timeout_s + 1)
        except (RuntimeError, concurrent.futures.TimeoutError, concurrent.futures.CancelledError):
            return False
        return True

    async def run(self) -> None:
        """The state loop; runs until cancelled."""
        self._loop = asyncio.get_running_loop()
        while True:
            event = await self._queue.get()
            try:
                self.state.apply(event)
                for subscriber in self._subscribers:
                    subscriber.on_event(event, self.state)
            finally:
                self._queue.task_done()

    def bind(self) -> None:
        """Make publish_threadsafe usable before run() has been scheduled."""
        self._loop = asyncio.get_running_loop()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait until every event published so far has been handled."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._queue.join(), timeout_s)

    def recent_lines(self, resource: str, count: int = 30) -> list[str]:
        return list(self.state.view(resource).recent)[-count:]
