"""The dashboard as its tests and its screenshot see it: the page (Playwright, sync), the
event streams of its API, and a loop thread for servers run in the test's own process."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import threading
import urllib.request
from collections.abc import Coroutine, Iterable, Iterator
from typing import Any, TypeVar

from playwright.sync_api import Locator, Page, expect

from orchestrator.hub import EventHub

_MS = 1000
_CLOSE_TIMEOUT_S = 10.0
T = TypeVar("T")


class LoopThread:
    """An event loop on a thread of its own: the servers of a test whose own thread drives a
    sync Playwright browser (which owns that thread's loop)."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="loop", daemon=True)
        self._thread.start()
        # The loop holds its tasks weakly: a task nothing else holds would be collected.
        self._kept: set[asyncio.Future[Any]] = set()

    def submit(self, coroutine: Coroutine[Any, Any, T]) -> concurrent.futures.Future[T]:
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop)

    def run(self, coroutine: Coroutine[Any, Any, T], timeout_s: float = 60.0) -> T:
        return self.submit(coroutine).result(timeout_s)

    def start_hub(self) -> EventHub:
        """A hub running on this loop, usable from any thread."""

        async def start() -> tuple[EventHub, asyncio.Task[None]]:
            hub = EventHub()
            task = asyncio.create_task(hub.run(), name="hub")
            hub.bind()
            return hub, task

        hub, task = self.run(start())
        self._kept.add(task)
        return hub

    def close(self) -> None:
        """Cancels what still runs on the loop, then stops it."""

        async def cancel_all() -> None:
            tasks = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
            for task in tasks:
                task.cancel()
            if tasks:
                await asyncio.wait(tasks, timeout=_CLOSE_TIMEOUT_S)

        with contextlib.suppress(concurrent.futures.TimeoutError, RuntimeError):
            self.run(cancel_all(), _CLOSE_TIMEOUT_S * 2)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(_CLOSE_TIMEOUT_S)
        self.loop.close()


@contextlib.contextmanager
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


def row(page: Page, resource: str) -> Locator:
    return page.locator(f'tr[data-resource="{resource}"]')


def field(page: Page, resource: str, name: str) -> Locator:
    return row(page, resource).locator(f'[data-field="{name}"]')


def expect_healthy(page: Page, resources: Iterable[str], timeout_s: float = 60.0) -> None:
    """State and live health both say so (the health column follows a /health probe)."""
    for resource in resources:
        expect(field(page, resource, "state")).to_have_text("healthy", timeout=timeout_s * _MS)
        expect(field(page, resource, "health")).to_have_text("healthy", timeout=timeout_s * _MS)


def show_logs(page: Page, resource: str) -> None:
    page.select_option("#log-resource", resource)


def log_lines(page: Page) -> Locator:
    return page.locator("#log-lines .line")


def visible_log_texts(page: Page) -> list[str]:
    return [
        str(text)
        for text in page.locator("#log-lines .line:not([hidden]) .text").all_text_contents()
    ]


def stream_text(url: str, quiet_s: float = 1.5) -> str:
    """What an event stream sends until it is quiet for quiet_s. A plain socket read: a sync
    Playwright session owns the thread's event loop."""
    chunks: list[bytes] = []
    with urllib.request.urlopen(url, timeout=quiet_s) as answer, contextlib.suppress(TimeoutError):
        while chunk := answer.read1(65536):
            chunks.append(chunk)
    return b"".join(chunks).decode()
