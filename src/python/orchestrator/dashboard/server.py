"""The dashboard server, in the orchestrator's own event loop (aiohttp installs no signal
handlers there), listening on loopback only: its buttons stop and restart the stack's services."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from orchestrator.dashboard import routes, telemetry_routes
from orchestrator.dashboard.feed import Feed
from orchestrator.dashboard.health_monitor import HealthMonitor
from orchestrator.errors import OrchestratorError
from orchestrator.health.probe import HealthProbe, HttpProbe
from orchestrator.hub import EventHub
from orchestrator.masking import Masker
from orchestrator.stack.lifecycle import Controls
from orchestrator.telemetry.session import Telemetry
from stack_ui import THEME_DIR

DEFAULT_PORT = 15000
HOST = "127.0.0.1"
# Host names a loopback server is reached by. Any other Host header is a page of another site
# that got its name resolved to 127.0.0.1 (DNS rebinding), and is refused.
_LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1"})
_STOP_TIMEOUT_S = 5.0

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def _loopback_hosts_only(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        name = (request.url.host or "").lower()
    except ValueError:  # a Host header that is no host at all
        name = ""
    if name not in _LOOPBACK_NAMES:
        raise web.HTTPMisdirectedRequest(text="the dashboard answers only on loopback names")
    return await handler(request)


def create_app(context: routes.Context, telemetry: Telemetry | None = None) -> web.Application:
    app = web.Application(middlewares=[_loopback_hosts_only])
    app[routes.CONTEXT] = context
    app.router.add_get("/", routes.index)
    app.router.add_static("/static", routes.STATIC_DIR)
    app.router.add_static("/theme", THEME_DIR)
    app.router.add_get("/api/resources", routes.get_resources)
    app.router.add_get("/api/resources/stream", routes.stream_resources)
    app.router.add_get("/api/logs/{resource}", routes.stream_logs)
    app.router.add_post("/api/resources/{resource}/{action}", routes.act)
    if telemetry is not None:
        telemetry_routes.add_routes(app, telemetry)
    return app


class Dashboard:
    """Subscribes to the hub when made, so it has every line from the first; serves on start."""

    def __init__(
        self,
        hub: EventHub,
        controls: Controls,
        masker: Masker,
        *,
        port: int = DEFAULT_PORT,
        probe: HealthProbe | None = None,
        health_interval_s: float = 5.0,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.feed = Feed(masker)
        hub.subscribe(self.feed)
        self.monitor = HealthMonitor(hub.state, probe or HttpProbe(), self.feed, health_interval_s)
        self._context = routes.Context(
            hub.state, self.feed, self.monitor, controls, masker, asyncio.Event()
        )
        self._port = port
        self._telemetry = telemetry
        self._runner: web.AppRunner | None = None
        self._monitoring: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        """Its URL; OrchestratorError when the port cannot be had."""
        runner = web.AppRunner(
            create_app(self._context, self._telemetry),
            handle_signals=False,
            access_log=None,
            shutdown_timeout=_STOP_TIMEOUT_S,
        )
        await runner.setup()
        site = web.TCPSite(runner, HOST, self._port)
        try:
            await site.start()
        except OSError as error:
            await runner.cleanup()
            raise OrchestratorError(
                f"the dashboard cannot listen on {HOST}:{self._port} ({error.strerror}); "
                "choose another port with --dashboard-port or turn it off with --no-dashboard"
            ) from error
        self._runner = runner
        self._monitoring = asyncio.create_task(self.monitor.run(), name="dashboard-health")
        self.url = f"http://{HOST}:{self._port}"
        return self.url

    async def stop(self) -> None:
        if self._monitoring is not None:
            self._monitoring.cancel()
            await asyncio.wait({self._monitoring}, timeout=_STOP_TIMEOUT_S)
        if self._runner is not None:
            # The streams end on this, before the server waits for its handlers to finish.
            self._context.closing.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._runner.cleanup(), _STOP_TIMEOUT_S * 2)
            self._runner = None
