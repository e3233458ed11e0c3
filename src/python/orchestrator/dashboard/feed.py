"""The dashboard's subscriber to the event hub: masked log history per resource, and the
bounded per-client queues that the streaming routes read.

on_event runs on the hub's loop for every event, so it only appends and puts without waiting:
a slow or stuck browser loses lines (counted, and told so), the hub never waits for it.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from orchestrator import events
from orchestrator.events import Event, LogLine, Notice, StateChanged
from orchestrator.hub import StackState
from orchestrator.masking import Masker

HISTORY_LINES = 2000
CLIENT_QUEUE_LINES = 1000


@dataclass(frozen=True, slots=True)
class Line:
    seq: int
    resource: str
    text: str  # masked
    at: float
    level: str = "info"


class LogClient:
    """One browser's live view of one resource's lines."""

    def __init__(self, resource: str, maxsize: int) -> None:
        self.resource = resource
        self.queue: asyncio.Queue[Line] = asyncio.Queue(maxsize=maxsize)
        self.dropped = 0

    def offer(self, line: Line) -> None:
        try:
            self.queue.put_nowait(line)
        except asyncio.QueueFull:
            self.dropped += 1

    def take_dropped(self) -> int:
        dropped, self.dropped = self.dropped, 0
        return dropped


class Feed:
    def __init__(
        self,
        masker: Masker,
        history_lines: int = HISTORY_LINES,
        client_queue_lines: int = CLIENT_QUEUE_LINES,
    ) -> None:
        self._mask = masker
        self._history_lines = history_lines
        self._client_queue_lines = client_queue_lines
        self._history: dict[str, deque[Line]] = {}
        self._seq = itertools.count(1)
        self._log_clients: set[LogClient] = set()
        # Resource views are sent whole and coalesced: a client only needs to know "changed".
        self._watchers: set[asyncio.Event] = set()

    def on_event(self, event: Event, state: StackState) -> None:
        if isinstance(event, LogLine):
            self._record(event.resource, event.text)
        elif isinstance(event, Notice):
            self._record(events.ORCHESTRATOR, event.text, event.level.value)
        elif isinstance(event, StateChanged):
            words = f"{event.resource}: {event.state.value}"
            if event.endpoint:
                words += f" at {event.endpoint}"
            if event.waiting_for:
                words += f" for {event.waiting_for}"
            if event.detail:
                words += f" ({event.detail})"
            self._record(events.ORCHESTRATOR, words)
            self.changed()
        else:
            self.changed()

    def changed(self) -> None:
        for flag in self._watchers:
            flag.set()

    def _record(self, resource: str, text: str, level: str = "info") -> None:
        line = Line(next(self._seq), resource, self._mask(text), time.time(), level)
        history = self._history.get(resource)
        if history is None:
            history = self._history[resource] = deque(maxlen=self._history_lines)
        history.append(line)
        for client in self._log_clients:
            if client.resource == resource:
                client.offer(line)

    def log_resources(self) -> list[str]:
        return sorted(self._history)

    def history(self, resource: str, after: int = 0) -> list[Line]:
        return [line for line in self._history.get(resource, ()) if line.seq > after]

    @contextmanager
    def follow_logs(self, resource: str) -> Iterator[LogClient]:
        client = LogClient(resource, self._client_queue_lines)
        self._log_clients.add(client)
        try:
            yield client
        finally:
            self._log_clients.discard(client)

    @contextmanager
    def watch_resources(self) -> Iterator[asyncio.Event]:
        flag = asyncio.Event()
        flag.set()  # the first view goes out at once
        self._watchers.add(flag)
        try:
            yield flag
        finally:
            self._watchers.discard(flag)
