"""Subscribers that write somewhere (a terminal, a file), each on a thread of its own behind a
bounded queue: one that stalls or fails costs its own output only, never the hub's loop, the
other subscribers or the services' output pipes."""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Protocol

from orchestrator.events import Event

_STOP = object()


class EventSink(Protocol):
    def on_event(self, event: Event) -> None:
        """Called on the sink's own thread for every event, in order; may block or raise."""


class ThreadedSink:
    def __init__(
        self, sink: EventSink, name: str, capacity: int, on_failure: Callable[[str], None]
    ) -> None:
        self.name = name
        self.capacity = capacity
        self._sink = sink
        # on_failure runs on the sink's thread, once, with the reason.
        self._on_failure = on_failure
        self._queue: queue.Queue[object] = queue.Queue(maxsize=capacity)
        self._failed = threading.Event()
        # A daemon: a write that never returns (a stalled terminal) must not hold the exit.
        self._thread = threading.Thread(target=self._run, name=f"sink-{name}", daemon=True)
        self._thread.start()

    def offer(self, event: Event) -> bool:
        """False when the sink is a whole queue behind: it is stalled, and should be dropped."""
        try:
            self._queue.put_nowait(event)
        except queue.Full:
            return False
        return True

    @property
    def idle(self) -> bool:
        """Everything offered so far has been handled (or the sink has failed)."""
        return self._failed.is_set() or self._queue.unfinished_tasks == 0

    def close(self, timeout_s: float) -> None:
        """Stop the thread once it has handled what it was given, waiting at most timeout_s."""
        try:
            self._queue.put(_STOP, timeout=timeout_s)
        except queue.Full:
            return  # stalled: abandoned, it is a daemon
        self._thread.join(timeout_s)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is _STOP:
                    return
                if not self._failed.is_set():
                    self._sink.on_event(item)  # type: ignore[arg-type]
            except Exception as error:  # disk full, a closed stream: this sink's end only
                self._failed.set()
                self._on_failure(f"{type(error).__name__}: {error}")
            finally:
                self._queue.task_done()
