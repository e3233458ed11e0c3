"""Server events for /ws/logs: a replay buffer and one bounded queue per subscriber."""

from __future__ import annotations

import asyncio
import datetime
import logging
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass

from moshi_protocol.privacy import RedactChatQueries


@dataclass(frozen=True)
class LogEvent:
    timestamp: str
    level: str
    source: str
    message: str

    @classmethod
    def now(cls, level: str, source: str, message: str) -> LogEvent:
        stamp = datetime.datetime.now(datetime.UTC).isoformat(timespec="milliseconds")
        return cls(stamp, level, source, message)

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


class LogSubscriber:
    """A slow reader loses its oldest events, never anybody else's and never memory."""

    def __init__(self, size: int) -> None:
        self.queue: asyncio.Queue[LogEvent] = asyncio.Queue(maxsize=size)
        self.dropped = 0

    def offer(self, event: LogEvent) -> None:
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(event)


class LogBroadcast:
    """Lives on the event loop's thread; other threads publish through publish_threadsafe."""

    def __init__(self, replay: int = 200, queue_size: int = 256) -> None:
        self._history: deque[LogEvent] = deque(maxlen=replay)
        self._subscribers: set[LogSubscriber] = set()
        self._queue_size = queue_size
        self._loop: asyncio.AbstractEventLoop | None = None

    def bind(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop

    def publish(self, event: LogEvent) -> None:
        self._history.append(event)
        for subscriber in self._subscribers:
            subscriber.offer(event)

    def publish_threadsafe(self, event: LogEvent) -> None:
        if self._loop is not None and not self._loop.is_closed():
            self._loop.call_soon_threadsafe(self.publish, event)

    def history(self) -> list[LogEvent]:
        return list(self._history)

    @property
    def subscriber_count(self) -> int:
        return len(self._subscribers)

    @contextmanager
    def subscribe(self) -> Iterator[LogSubscriber]:
        subscriber = LogSubscriber(self._queue_size)
        self._subscribers.add(subscriber)
        try:
            yield subscriber
        finally:
            self._subscribers.discard(subscriber)


# uvicorn's lines about one WebSocket (accepted, open, closed), each with the client's address:
# the operator's own output may keep them; a stream that browsers read must not.
_CONNECTION_LINES = frozenset({"connection open", "connection closed"})


def _service_event(record: logging.LogRecord) -> bool:
    if not record.name.startswith("uvicorn") or not isinstance(record.msg, str):
        return True
    return not (record.msg.startswith('%s - "WebSocket') or record.msg in _CONNECTION_LINES)


class LogBroadcastHandler(logging.Handler):
    """Python logging records become /ws/logs events (from any thread): the service's own
    events only, chat queries cut."""

    def __init__(self, broadcast: LogBroadcast, source: str = "frontend") -> None:
        super().__init__(level=logging.INFO)
        self._broadcast = broadcast
        self._source = source
        self.addFilter(_service_event)
        self.addFilter(RedactChatQueries())

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event = LogEvent.now(record.levelname, self._source, record.getMessage())
            self._broadcast.publish_threadsafe(event)
        except Exception:  # a logging handler must never raise into the caller
            self.handleError(record)
