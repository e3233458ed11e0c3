"""Blocking work off the event loop, in threads that never delay exit (Docker SDK streams,
a model download)."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


async def in_daemon_thread(work: Callable[[], T], name: str) -> T:
    """Run work in a daemon thread and await its result.

    For calls that may block for minutes (a build step, a followed log): asyncio.to_thread's
    executor is joined at interpreter exit, a daemon thread is not. Cancelling the await
    abandons the thread, which must notice on its own (a closed stream, a cancel flag).
    """
    loop = asyncio.get_running_loop()
    future: asyncio.Future[T] = loop.create_future()

    def settle(outcome: Callable[[], None]) -> None:
        if not future.done():
            outcome()

    def target() -> None:
        try:
            result = work()
        except BaseException as error:  # handed to the awaiting coroutine, whatever it is
            failure = error
            with contextlib.suppress(RuntimeError):  # the loop is already closed
                loop.call_soon_threadsafe(settle, lambda: future.set_exception(failure))
        else:
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(settle, lambda: future.set_result(result))

    threading.Thread(target=target, name=name, daemon=True).start()
    return await future
