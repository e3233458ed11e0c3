"""The one event stream: a bounded queue, one loop that owns the stack's state, and subscribers.

Watchers (processes, containers, health gates, builds) publish; only `EventHub.run` changes
`StackState`, then hands each event with the new state to the subscribers in order, and to the
sinks (terminal, log files) on their own threads. A subscriber or sink that fails, or a sink that
stalls, is dropped with one notice: the hub and the services' output never wait for it.
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
    Level,
    LogLine,
    Notice,
    Progress,
    ResourceKind,
    ResourceState,
    StateChanged,
)
from orchestrator.sinks import EventSink, ThreadedSink

_RECENT_LINES = 60
_SINK_POLL_S = 0.01
_NOT_RUNNING = frozenset({ResourceState.FAILED, ResourceState.STOPPED, ResourceState.RESTARTING})


@dataclass
class ResourceView:
    name: str
    state: ResourceState = ResourceState.PENDING
    detail: str = ""
    waiting_for: str = ""
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
            view.waiting_for = event.waiting_for
            if event.endpoint is not None:
                view.endpoint = event.endpoint
            if event.kind is not None:
                view.kind = event.kind
            if event.image is not None:
                view.image = event.image
            # A state's progress (a pull's, a build's) comes after it: a new state starts none.
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
        """Called on the hub's loop for every event, in order; must not block (no I/O)."""


class EventHub:
    def __init__(
        self, maxsize: int = 1024, publish_timeout_s: float = 10.0, sink_capacity: int = 10_000
    ) -> None:
        self._queue: asyncio.Queue[Event] = asyncio.Queue(maxsize=maxsize)
        self._subscribers: list[Subscriber] = []
        self._sinks: list[ThreadedSink] = []
        self._sink_capacity = sink_capacity
        self._publish_timeout_s = publish_timeout_s
        self._loop: asyncio.AbstractEventLoop | None = None
        self.state = StackState()
        self.dropped = 0

    def subscribe(self, subscriber: Subscriber) -> None:
        """An in-memory subscriber, called on the hub's loop with the state."""
        self._subscribers.append(subscriber)

    def attach(self, sink: EventSink, name: str) -> ThreadedSink:
        """A sink that does I/O, called on a thread of its own; name says it in a notice."""

        def failed(reason: str) -> None:  # on the sink's thread
            loop = self._loop
            if loop is not None and not loop.is_closed():
                loop.call_soon_threadsafe(self._drop_sink, threaded, f"failed ({reason})")

        threaded = ThreadedSink(sink, name, self._sink_capacity, failed)
        self._sinks.append(threaded)
        return threaded

    async def publish(self, event: Event) -> None:
        # A full queue slows the publishers down (back-pressure on log readers); a consumer
        # that is gone for good must not hang them, so the wait is bounded.
        # asyncio.timeout, not wait_for: Python 3.11's wait_for loses a cancellation that lands
        # as the put completes, so a Ctrl-C arriving in a publish would be swallowed.
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._queue.put(event)
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
                self._deliver(event)
            finally:
                self._queue.task_done()

    def _deliver(self, event: Event) -> None:
        for subscriber in list(self._subscribers):
            try:
                subscriber.on_event(event, self.state)
            except Exception as error:  # its own defect: the stack and the others carry on
                self._subscribers.remove(subscriber)
                self._notice(
                    f"{type(subscriber).__name__} failed ({type(error).__name__}: {error}) "
                    "and gets no more events"
                )
        for sink in list(self._sinks):
            if not sink.offer(event):
                self._drop_sink(sink, f"stalled ({sink.capacity} events behind)")

    def _drop_sink(self, sink: ThreadedSink, why: str) -> None:
        if sink in self._sinks:
            self._sinks.remove(sink)
            self._notice(f"{sink.name} {why}; it gets no more events")

    def _notice(self, text: str) -> None:
        # From the hub's own loop, which must not wait on its own queue.
        try:
            self._queue.put_nowait(Notice(text, Level.WARNING))
        except asyncio.QueueFull:
            self.dropped += 1

    def bind(self) -> None:
        """Make publish_threadsafe usable before run() has been scheduled."""
        self._loop = asyncio.get_running_loop()

    async def drain(self, timeout_s: float = 5.0) -> None:
        """Wait (at most timeout_s) until every event published so far has been handled, by
        the sinks too."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(timeout_s):
                await self._queue.join()
                while not all(sink.idle for sink in self._sinks):
                    await asyncio.sleep(_SINK_POLL_S)

    async def detach(self, sink: ThreadedSink, timeout_s: float = 5.0) -> None:
        """No more events for sink; returns once its thread has handled what it was given."""
        if sink in self._sinks:
            self._sinks.remove(sink)
        await asyncio.to_thread(sink.close, timeout_s)

    async def close_sinks(self, timeout_s: float = 5.0) -> None:
        """Detach every sink (the end of a command)."""
        await asyncio.gather(*(self.detach(sink, timeout_s) for sink in list(self._sinks)))

    def recent_lines(self, resource: str, count: int = 30) -> list[str]:
        return list(self.state.view(resource).recent)[-count:]
