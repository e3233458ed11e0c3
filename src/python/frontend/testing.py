"""A real frontend on a free loopback port, in the test's own event loop."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn

from frontend.app import create_app
from frontend.log_broadcast import LogBroadcast
from frontend.settings import FrontendSettings
from testsupport.processes import free_port


@asynccontextmanager
async def frontend_in_loop(
    settings: FrontendSettings, logs: LogBroadcast | None = None
) -> AsyncIterator[str]:
    """Yields the base URL (http://127.0.0.1:PORT)."""
    port = free_port()
    config = uvicorn.Config(
        create_app(settings, logs), host="127.0.0.1", port=port, log_level="warning", lifespan="on"
    )
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve())
    try:
        async with asyncio.timeout(15):
            while not server.started:
                if task.done():
                    task.result()
                    raise RuntimeError("uvicorn stopped before it started")
                await asyncio.sleep(0.02)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 15)
