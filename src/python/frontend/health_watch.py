"""Polls the backend's health and turns every change into a /ws/logs event."""

from __future__ import annotations

import asyncio
import logging

from frontend.backend_probe import BackendProbe

log = logging.getLogger("frontend.backend")


async def watch_backend(probe: BackendProbe, interval_s: float) -> None:
    previous: str | None = None
    while True:
        status = await probe.status()
        summary = status.summary()
        if summary != previous:
            level = logging.INFO if status.status == "ready" else logging.WARNING
            log.log(level, "backend %s: %s", probe.base_url, summary)
            previous = summary
        await asyncio.sleep(interval_s)
