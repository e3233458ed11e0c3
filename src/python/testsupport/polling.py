"""The one polling loop of the tests: wait for a condition, with a deadline and a useful failure."""

from __future__ import annotations

import time
import urllib.error
import urllib.request
from collections.abc import Callable
from ssl import SSLContext
from typing import TypeVar

T = TypeVar("T")


class GaveUp(AssertionError):
    """Waiting failed: the deadline passed or the thing waited for died."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout_s: float,
    interval_s: float = 0.1,
    context: Callable[[], str] = lambda: "",
) -> T:
    """Call probe until it returns something other than None.

    probe may raise GaveUp to stop early (a process that exited); context() is appended to the
    failure, e.g. the last log lines.
    """
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            result = probe()
        except GaveUp as error:
            raise GaveUp(f"{what}: {error}\n{context()}") from None
        if result is not None:
            return result
        if time.monotonic() >= deadline:
            raise GaveUp(f"{what}: not within {timeout_s:.0f}s\n{context()}")
        time.sleep(interval_s)


def http_status(url: str, ssl_context: SSLContext | None = None) -> tuple[int, bytes] | None:
    """(status, body) of a GET, or None when nothing answers yet."""
    try:
        with urllib.request.urlopen(url, timeout=2, context=ssl_context) as response:
            return int(response.status), bytes(response.read())
    except urllib.error.HTTPError as error:
        return int(error.code), bytes(error.read())
    except (urllib.error.URLError, OSError):
        return None
