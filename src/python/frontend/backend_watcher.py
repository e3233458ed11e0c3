"""Polls the backend's health and turns every change into a /ws/logs event."""

from __future__ import annotations

import asyncio
import logging

from frontend.backend_client import BackendClient

log = logging.getLogger("frontend.backend")


async def watch_backend(backend: BackendClient, interval_s: float) -> None:
    previous: str | None = None
    while True:
        status = await backend.status()
        summary = status.summary()
        if summary != previous:
            level = logging.INFO if status.status == "ready" else logging.WARNING
            log.log(level, "backend %s: %s", backend.base_url, summary)
            previous = summary
        await asyncio.sleep(interval_s)
