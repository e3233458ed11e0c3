"""The OTLP/HTTP receiver: POST /v1/traces, /v1/metrics and /v1/logs with protobuf bodies
(identity or gzip), served by aiohttp in the orchestrator's own event loop.

The loop only reads bodies: decompressing, decoding and storing happen on one thread, fed by a
bounded number of requests in flight. Beyond that bound a request is refused at once (503 with
Retry-After, which OTLP exporters retry later) and counted, so a flood costs one core at most and
never delays the event hub or the dashboard."""

from __future__ import annotations

import asyncio
import concurrent.futures
import errno
import zlib
from collections.abc import Awaitable, Callable

from aiohttp import web

from orchestrator.errors import OrchestratorError
from orchestrator.telemetry.decoding import Signal, Undecodable, decode
from orchestrator.telemetry.records import Batch

PROTOBUF = "application/x-protobuf"
DEFAULT_PORT = 4318  # OTLP/HTTP's registered port
MAX_BODY = 8 * 1024 * 1024  # decompressed, per request
_STOP_TIMEOUT_S = 5.0
_DECODE_TIMEOUT_S = 30.0


class _TooLarge(ValueError):
    pass


def _inflate(body: bytes, limit: int) -> bytes:
    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)  # gzip framing
    try:
        data = inflater.decompress(body, limit + 1)
    except zlib.error as error:
        raise Undecodable(f"bad gzip body: {error}") from None
    if len(data) > limit:
        raise _TooLarge(f"body over {limit} bytes once decompressed")
    if not inflater.eof:
        raise Undecodable("bad gzip body: truncated")
    return data


class OtlpReceiver:
    def __init__(
        self,
        sink: Callable[[Batch], None],
        *,
        max_body: int = MAX_BODY,
        in_flight: int = 32,
    ) -> None:
        """sink: called on the decoding thread with each decoded request."""
        self._sink = sink
        self._max_body = max_body
        self._in_flight_limit = in_flight
        self._in_flight = 0
        self._decoder = concurrent.futures.ThreadPoolExecutor(1, "otlp-decoder")
        self._runner: web.AppRunner | None = None
        self._preferred_port = DEFAULT_PORT
        self.port = 0
        self.accepted_requests = 0
        self.dropped_requests = 0  # refused while in_flight requests were being decoded

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=self._max_body)
        # POST only: aiohttp answers HEAD and GET with 405 (the services' startup probe).
        for signal in Signal:
            app.router.add_post(f"/v1/{signal.value}", self._handler(signal))
        return app

    async def start(self, host: str, port: int | None) -> int:
        """The port listened on. port None: OTLP's 4318, or any free port when it is taken;
        a port given is that port or an OrchestratorError."""
        # No automatic decompression: the gzip bomb guard and the error texts are ours.
        runner = web.AppRunner(
            self._app(),
            handle_signals=False,
            access_log=None,
            auto_decompress=False,
            shutdown_timeout=_STOP_TIMEOUT_S,
        )
        await runner.setup()
        self._runner = runner
        self._preferred_port = DEFAULT_PORT if port is None else port
        try:
            self.port = await self._listen(host, DEFAULT_PORT if port is None else port)
        except OSError as error:
            if port is None and error.errno == errno.EADDRINUSE:
                self.port = await self._listen(host, 0)
            else:
                await self.stop()
                raise OrchestratorError(
                    f"the telemetry receiver cannot listen on {host}:{port} ({error.strerror}); "
                    "choose another port with --otlp-port or turn it off with --no-telemetry"
                ) from error
        return self.port

    async def listen_also(self, host: str) -> int:
        """Listen on another address too (a Docker network's gateway): on the port asked for
        (default 4318) when it is free there, any port otherwise. Returns the port.

        Not the loopback port when that one is a fallback: a persistent container is reused
        only while its endpoint, part of its configuration, stays the same across runs."""
        try:
            return await self._listen(host, self._preferred_port)
        except OSError as error:
            if error.errno != errno.EADDRINUSE:
                raise OrchestratorError(
                    f"the telemetry receiver cannot listen on {host} ({error.strerror})"
                ) from error
            return await self._listen(host, 0)

    async def _listen(self, host: str, port: int) -> int:
        assert self._runner is not None, "start() first"
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        # aiohttp names a site's bound port nowhere else (runner.addresses mixes the sites).
        sockets = getattr(site._server, "sockets", None) or []
        return int(sockets[0].getsockname()[1])

    async def stop(self) -> None:
        if self._runner is not None:
            await asyncio.wait_for(self._runner.cleanup(), _STOP_TIMEOUT_S * 2)
            self._runner = None
        # Requests already accepted are decoded and stored; the thread ends after them.
        await asyncio.to_thread(self._decoder.shutdown, wait=True)

    def _ingest(self, signal: Signal, body: bytes, gzipped: bool) -> None:
        if gzipped:
            body = _inflate(body, self._max_body)
        self._sink(decode(signal, body))

    def _handler(self, signal: Signal) -> Callable[[web.Request], Awaitable[web.StreamResponse]]:
        async def handle(request: web.Request) -> web.Response:
            if request.content_type != PROTOBUF:
                raise web.HTTPUnsupportedMediaType(
                    text=f"Content-Type must be {PROTOBUF} (OTLP/HTTP protobuf), "
                    f"not {request.content_type!r}"
                )
            encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
            if encoding not in ("identity", "gzip"):
                raise web.HTTPUnsupportedMediaType(
                    text=f"Content-Encoding {encoding!r} is not supported (gzip or none)"
                )
            body = await request.read()  # 413 beyond client_max_size, by aiohttp
            if self._in_flight >= self._in_flight_limit:
                self.dropped_requests += 1
                raise web.HTTPServiceUnavailable(
                    text="telemetry receiver is busy; request dropped", headers={"Retry-After": "1"}
                )
            self._in_flight += 1
            try:
                work = asyncio.get_running_loop().run_in_executor(
                    self._decoder, self._ingest, signal, body, encoding == "gzip"
                )
                async with asyncio.timeout(_DECODE_TIMEOUT_S):
                    await work
            except Undecodable as error:
                raise web.HTTPBadRequest(text=str(error)) from None
            except _TooLarge as error:
                raise web.HTTPRequestEntityTooLarge(
                    max_size=self._max_body, actual_size=self._max_body + 1, text=str(error)
                ) from None
            finally:
                self._in_flight -= 1
            self.accepted_requests += 1
            # An empty Export*ServiceResponse: no partial success to report.
            return web.Response(body=b"", content_type=PROTOBUF)

        return handle
