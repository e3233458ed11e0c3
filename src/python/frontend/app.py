"""The FastAPI application: created by create_app(settings), nothing happens at import time."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.types import Message, Receive, Scope, Send

from frontend.access_log import ACCESS_LOGGER, QuietPolls
from frontend.backend_client import BackendClient
from frontend.backend_pool import BackendPool, backends_of
from frontend.backend_watcher import watch_backend
from frontend.log_broadcast import LogBroadcast, LogBroadcastHandler
from frontend.relay_metrics import RelayMetrics
from frontend.routes import router
from frontend.routes.pages import STATIC_DIR
from frontend.settings import FrontendSettings
from frontend.state import AppState
from moshi_protocol.privacy import RedactChatQueries
from stack_telemetry.otel import setup_telemetry
from stack_telemetry.process_metrics import register_process_metrics
from stack_ui import THEME_DIR

# The orchestrator's name for this resource (orchestrator.events.FRONTEND): its dashboard files
# what this service exports under it.
FRONTEND_SERVICE_NAME = "frontend"


class RevalidatingStaticFiles(StaticFiles):
    """Assets keep their ETag/Last-Modified and are revalidated on every use (no stale UI)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def send_with_cache_header(message: Message) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", []).append((b"cache-control", b"no-cache"))
            await send(message)

        await super().__call__(scope, receive, send_with_cache_header)


def create_app(settings: FrontendSettings, logs: LogBroadcast | None = None) -> FastAPI:
    logs = logs or LogBroadcast(replay=settings.log_replay_events)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logs.bind(asyncio.get_running_loop())
        # Here, not in main(): with reload the app runs in a worker process of its own.
        quiet = QuietPolls()
        logging.getLogger(ACCESS_LOGGER).addFilter(quiet)
        handler = LogBroadcastHandler(logs)
        watched = [logging.getLogger(name) for name in ("frontend", "uvicorn.error")]
        for logger in watched:
            logger.addHandler(handler)
            if logger.level == logging.NOTSET:
                # /ws/logs shows INFO events whatever the process's root logging level is.
                logger.setLevel(logging.INFO)
        backend_ssl = settings.backend_ssl()
        # The collector probe blocks up to 2 s, the final export a few: both off the loop.
        telemetry = await asyncio.to_thread(
            setup_telemetry,
            FRONTEND_SERVICE_NAME,
            settings.otel_exporter_otlp_endpoint,
            metric_export_interval_ms=settings.otel_metric_export_interval,
            # Records that reach the root logger may carry a relay URL with the persona.
            log_filters=[RedactChatQueries()],
        )
        register_process_metrics(telemetry.meter)
        async with httpx.AsyncClient(
            verify=backend_ssl, headers=settings.backend_headers()
        ) as http:
            backend_client = BackendClient(settings.moshi_backend_url, http)
            pool = BackendPool(backends_of(settings), http)
            app.state.frontend = AppState(
                settings,
                logs,
                http,
                backend_client,
                pool,
                telemetry.tracer,
                backend_ssl,
                RelayMetrics(telemetry.meter),
            )
            watcher = asyncio.create_task(
                watch_backend(backend_client, settings.backend_poll_interval_s)
            )
            try:
                yield
            finally:
                watcher.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await watcher
                for logger in watched:
                    logger.removeHandler(handler)
                logging.getLogger(ACCESS_LOGGER).removeFilter(quiet)
                await asyncio.to_thread(telemetry.shutdown)

    app = FastAPI(title="PersonaPlex voice frontend", lifespan=lifespan)
    app.include_router(router)
    app.mount(
        "/static", RevalidatingStaticFiles(directory=STATIC_DIR, check_dir=False), name="static"
    )
    app.mount("/theme", RevalidatingStaticFiles(directory=THEME_DIR, check_dir=False), name="theme")
    return app
