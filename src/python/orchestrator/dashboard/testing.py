"""The dashboard as its tests and its screenshot see it: the page (Playwright, sync) and the
event streams of its API."""

from __future__ import annotations

import contextlib
import urllib.request
from collections.abc import Iterable

from playwright.sync_api import Locator, Page, expect

_MS = 1000


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
