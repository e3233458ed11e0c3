"""The server's state: the engine, its load status, session admission and the HTTP routes."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from enum import Enum
from typing import Any

from aiohttp import web
from opentelemetry import metrics, trace
from stack_threads.daemon import in_daemon_thread

from moshi_backend.conversation_trace import ConversationTrace
from moshi_backend.engines.base import Engine, EngineError
from moshi_backend.metrics import ServerMetrics
from moshi_backend.otel_metrics import OtelMetrics
from moshi_backend.session import ChatSession
from moshi_backend.session_errors import ClientGone, ConversationOver
from moshi_protocol.messages import (
    MAX_MESSAGE_BYTES,
    CloseCode,
    MessageKind,
    ProtocolError,
    encode,
)
from moshi_protocol.origins import LOCAL_FRONTEND_ORIGINS, api_key_refusal, origin_refusal
from moshi_protocol.params import parse_chat_params

log = logging.getLogger(__name__)


class Status(str, Enum):
    LOADING = "loading"
    READY = "ready"
    ERROR = "error"


@dataclass(frozen=True)
class ServerOptions:
    # 4 frames = 320 ms of audio may wait for the engine before the oldest is dropped.
    max_pending_frames: int = 4
    send_timeout_s: float = 5.0
    session_start_timeout_s: float = 120.0
    # Pings find clients that vanished without a close (TCP reset, lost network).
    heartbeat_s: float = 10.0
    # Above our own limit the server still answers with 0x05; above this one the WebSocket layer
    # closes with 1009 before the message is read whole.
    transport_max_message_bytes: int = 16 * MAX_MESSAGE_BYTES
    # No audio from the client this long ends the conversation ("idle"); 0: never.
    idle_timeout_s: float = 30.0
    # None: the engine's own limit (EngineInfo.max_conversation_s); 0: no limit.
    max_conversation_s: float | None = None
    # Browser pages of these origins (and of the backend's own) may open /api/chat.
    allowed_origins: tuple[str, ...] = LOCAL_FRONTEND_ORIGINS
    # When set, /api/chat and /api/voices need it as a bearer token.
    api_key: str | None = None


class ChatServer:
    def __init__(
        self,
        engine: Engine,
        options: ServerOptions | None = None,
        tracer: trace.Tracer | None = None,
        meter: metrics.Meter | None = None,
    ) -> None:
        self.engine = engine
        self._tracer = tracer if tracer is not None else trace.NoOpTracer()
        self.options = options or ServerOptions()
        self.metrics = ServerMetrics()
        self.otel_metrics = OtelMetrics(
            meter if meter is not None else metrics.NoOpMeter("off"),
            self.metrics,
            lambda: self._active,
        )
        engine.observe_steps(self.metrics.record_step)
        info = engine.info
        # Made once the engine has loaded and knows its capacity: every conversation holds at
        # most one thread at a time (its start, a step or its close), plus one to spare.
        self._executor: ThreadPoolExecutor | None = None
        self._status = Status.LOADING
        self._progress = 0.0
        self._stage = "starting"
        self._load_detail: dict[str, int] = {}
        self._error: str | None = None
        self._active = 0
        self._session_ids = itertools.count(1)
        self._sockets: set[web.WebSocketResponse] = set()
        self.metrics.sessions_capacity.set(info.capacity)

    @property
    def active_sessions(self) -> int:
        return self._active

    def install(self, app: web.Application) -> None:
        """Serve this server's routes on app, and end its conversations when app shuts down."""
        app.add_routes(
            [
                web.get("/health", self.health),
                web.get("/api/voices", self.voices),
                web.get("/metrics", self.prometheus),
                web.get("/api/chat", self.chat),
            ]
        )
        # aiohttp 3.11 types the Signal parameter as the handler type itself; this is a handler.
        app.on_shutdown.append(self._close_conversations)  # type: ignore[arg-type]

    async def _close_conversations(self, app: web.Application) -> None:
        # Without this a restart waits for every client to hang up; with it clients learn at
        # once (1001) and can reconnect to the next instance.
        await asyncio.gather(
            *(
                ws.close(code=CloseCode.GOING_AWAY, message=b"server shutting down")
                for ws in list(self._sockets)
            ),
            return_exceptions=True,
        )

    async def load(self) -> None:
        """Load the engine off the loop; /health reports progress meanwhile."""
        asyncio.get_running_loop()

        def progress(
            fraction: float, stage: str = "", detail: Mapping[str, int] | None = None
        ) -> None:  # called from the loading thread
            self._progress = min(max(fraction, 0.0), 1.0)
            if stage:
                self._stage = stage
            self._load_detail = dict(detail or {})

        try:
            # A daemon thread: a SIGTERM during a download or load must not wait for its end
            # (the default executor's threads are joined when the process exits).
            await in_daemon_thread(lambda: self.engine.load(progress), "engine-load")
        except Exception as error:  # any failure must show in /health, not kill the server
            self._status, self._error = Status.ERROR, f"{type(error).__name__}: {error}"
            log.error("engine %s failed to load: %s", self.engine.info.name, self._error)
            return
        info = self.engine.info
        self._executor = ThreadPoolExecutor(
            max_workers=info.capacity + 1, thread_name_prefix=f"engine-{info.name}"
        )
        self.metrics.sessions_capacity.set(info.capacity)
        self._status, self._progress, self._stage = Status.READY, 1.0, "ready"
        log.info("engine %s ready, %d conversation slot(s)", info.name, info.capacity)

    def health_document(self) -> dict[str, Any]:
        info = self.engine.info
        return {
            "status": self._status.value,
            "engine": info.name,
            "model": info.model,
            "device": info.device,
            "development": info.development,
            "progress": round(self._progress, 4),
            "stage": self._stage,
            "load": self._load_detail,
            "sessions": {"active": self._active, "capacity": info.capacity},
            "error": self._error,
        }

    async def health(self, request: web.Request) -> web.Response:
        status = 200 if self._status is Status.READY else 503
        return web.json_response(self.health_document(), status=status)

    async def voices(self, request: web.Request) -> web.Response:
        if refusal := api_key_refusal(request.headers, self.options.api_key):
            raise web.HTTPUnauthorized(text=refusal)
        return web.json_response({"voices": list(self.engine.info.voices)})

    async def prometheus(self, request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def chat(self, request: web.Request) -> web.StreamResponse:
        ws = web.WebSocketResponse(
            heartbeat=self.options.heartbeat_s,
            max_msg_size=self.options.transport_max_message_bytes,
        )
        if not ws.can_prepare(request).ok:
            raise web.HTTPBadRequest(text="/api/chat is a WebSocket endpoint: upgrade expected")
        # Before the upgrade, as HTTP statuses: another site's page must not reach the model,
        # and without the key nobody may.
        origin = request.headers.get("Origin")
        allowed = self.options.allowed_origins
        if refusal := origin_refusal(origin, request.host, allowed, any_port=True):
            log.info("refused an upgrade: %s", refusal)
            raise web.HTTPForbidden(text=refusal)
        if refusal := api_key_refusal(request.headers, self.options.api_key):
            log.info("refused an upgrade without the API key")
            raise web.HTTPUnauthorized(text=refusal)
        label = f"session-{next(self._session_ids)}"
        conversation = ConversationTrace(
            self._tracer, self.otel_metrics.step_ms, request.headers, label
        )
        with conversation.current():
            await self._chat(ws, request, conversation)
        return ws

    async def _chat(
        self, ws: web.WebSocketResponse, request: web.Request, conversation: ConversationTrace
    ) -> None:
        label = conversation.label
        try:
            with conversation.phase("moshi.upgrade"):
                await ws.prepare(request)
        except BaseException:
            conversation.end(None)
            raise
        self._sockets.add(ws)
        # The code this server closes with; None: the client's close or none at all.
        code: CloseCode | None = None
        try:
            await self._converse(ws, request, conversation)
            self._record_outcome(conversation, "completed")
        except ProtocolError as error:
            outcome = "busy" if error.close_code is CloseCode.TRY_AGAIN_LATER else "rejected"
            self._record_outcome(conversation, outcome)
            log.info("%s: %s", label, error.reason)
            code = error.close_code
            conversation.begin_close()
            await self._close_with_error(ws, error.reason, code)
        except ConversationOver as error:
            self._record_outcome(conversation, error.outcome)
            log.info("%s: %s", label, error.reason)
            code = CloseCode.NORMAL
            conversation.begin_close()
            await self._close_with_error(ws, error.reason, code)
        except ClientGone as error:
            self._record_outcome(conversation, "client_gone")
            log.info("%s: client gone (%s)", label, error)
        except (EngineError, TimeoutError) as error:
            self._record_outcome(conversation, "error", f"engine error: {error}")
            log.error("%s: engine failure: %s", label, error)
            code = CloseCode.INTERNAL_ERROR
            conversation.begin_close()
            await self._close_with_error(ws, f"engine error: {error}", code)
        finally:
            self._sockets.discard(ws)
            conversation.begin_close()
            try:
                if not ws.closed:
                    await ws.close()
            finally:
                conversation.end(code or ws.close_code)

    def _record_outcome(
        self, conversation: ConversationTrace, outcome: str, error: str | None = None
    ) -> None:
        # One place, so that the metrics and the traces cannot disagree on an outcome.
        self.metrics.sessions.labels(outcome).inc()
        conversation.record_outcome(outcome, error)

    async def _converse(
        self, ws: web.WebSocketResponse, request: web.Request, conversation: ConversationTrace
    ) -> None:
        info, label = self.engine.info, conversation.label
        with conversation.phase("moshi.params"):
            # An engine without voice prompts (Kyutai's Moshi) checks only the parameter's form.
            params = parse_chat_params(request.query, info.voices or None)
        conversation.span.set_attribute("voice", params.voice_prompt)
        loop = asyncio.get_running_loop()
        with conversation.phase("moshi.slot_wait"):
            executor = self._admit()
            try:
                log.info(
                    "%s: start (voice %s, %d/%d)",
                    label,
                    params.voice_prompt,
                    self._active,
                    info.capacity,
                )
                # Claims a slot and queues the persona prompt; the session waits for it below.
                engine_session = await loop.run_in_executor(
                    executor, self.engine.start_session, params
                )
            except BaseException:
                self._leave(label)
                raise
        try:
            session = ChatSession(
                ws,
                engine_session,
                self.metrics,
                executor,
                conversation,
                max_pending_frames=self.options.max_pending_frames,
                send_timeout_s=self.options.send_timeout_s,
                start_timeout_s=self.options.session_start_timeout_s,
                idle_timeout_s=self.options.idle_timeout_s,
                max_conversation_s=self._conversation_limit(),
                label=label,
                compute_inline=info.light_steps,
                persona_prompt=info.persona_prompts,
            )
            try:
                await session.run()
            finally:
                conversation.begin_close()
                # Every way out (client gone, error, timeout, shutdown) frees the slot here.
                await loop.run_in_executor(executor, engine_session.close)
        finally:
            self._leave(label)

    def _admit(self) -> ThreadPoolExecutor:
        """Take one of the server's conversation places, or say why not (ProtocolError)."""
        info = self.engine.info
        if self._status is not Status.READY:
            reason = self._error or (
                f"loading ({self._stage}, {self._progress:.0%}); try again shortly"
            )
            raise ProtocolError(f"not ready: {reason}", CloseCode.TRY_AGAIN_LATER)
        if self._active >= info.capacity:
            raise ProtocolError(
                f"busy: {self._active} of {info.capacity} conversation slots are in use; "
                "try again later",
                CloseCode.TRY_AGAIN_LATER,
            )
        executor = self._executor
        assert executor is not None  # made when the engine became ready
        self._active += 1
        self.metrics.sessions_active.set(self._active)
        return executor

    def _leave(self, label: str) -> None:
        self._active -= 1
        self.metrics.sessions_active.set(self._active)
        log.info("%s: end", label)

    def _conversation_limit(self) -> float | None:
        limit = self.options.max_conversation_s
        if limit is None:
            limit = self.engine.info.max_conversation_s
        return limit or None

    async def _close_with_error(
        self, ws: web.WebSocketResponse, reason: str, code: CloseCode
    ) -> None:
        if ws.closed:
            return
        try:
            await asyncio.wait_for(
                ws.send_bytes(encode(MessageKind.ERROR, reason)), self.options.send_timeout_s
            )
            # A close reason is at most 123 bytes; the 0x05 message carries the whole text.
            await ws.close(code=code, message=reason.encode("utf-8")[:120])
        except (TimeoutError, ConnectionError):
            log.info("could not deliver error %r: client gone", reason)

    async def shutdown(self) -> None:
        """After the HTTP server has stopped: the engine's background work, the threads."""
        if self._executor is not None:
            self._executor.shutdown(wait=False, cancel_futures=True)
        # Joins the engine's step thread (at most one step long): off the loop.
        await asyncio.to_thread(self.engine.close)
