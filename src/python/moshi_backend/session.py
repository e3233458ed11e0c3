"""One conversation on an open WebSocket: conditioning, handshake, then audio in, steps, out."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import deque
from concurrent.futures import Executor

from aiohttp import WSMsgType, web

from moshi_backend.conversation_trace import ConversationTrace
from moshi_backend.engines.base import EngineError, EngineSession, Pcm, StepResult
from moshi_backend.metrics import ServerMetrics
from moshi_backend.session_errors import ClientGone, ConversationOver
from moshi_protocol.messages import (
    FRAME_SECONDS,
    CloseCode,
    MessageKind,
    ProtocolError,
    decode,
    encode,
)
from moshi_protocol.opus import OpusEncoder, OpusFrameDecoder

log = logging.getLogger(__name__)

_IGNORED_FROM_CLIENT = {MessageKind.PING, MessageKind.CONTROL, MessageKind.METADATA}
_DROP_LOG_INTERVAL_S = 1.0
_IDLE_POLL_S = 1.0
# A page of a microphone's Ogg/Opus stream is a few hundred bytes and decodes in microseconds;
# a larger message (up to 64 KiB of tiny packets: minutes of audio) is decoded on a thread.
_INLINE_DECODE_BYTES = 4096


class ChatSession:
    def __init__(
        self,
        ws: web.WebSocketResponse,
        engine_session: EngineSession,
        metrics: ServerMetrics,
        executor: Executor,
        trace: ConversationTrace,
        *,
        max_pending_frames: int,
        send_timeout_s: float,
        start_timeout_s: float,
        idle_timeout_s: float = 0.0,
        max_conversation_s: float | None = None,
        label: str,
        compute_inline: bool = False,
        persona_prompt: bool = False,
    ) -> None:
        self._ws = ws
        self._engine = engine_session
        self._metrics = metrics
        self._executor = executor
        self._trace = trace
        self._persona_prompt = persona_prompt
        self._send_timeout_s = send_timeout_s
        self._start_timeout_s = start_timeout_s
        self._idle_timeout_s = idle_timeout_s
        self._max_conversation_s = max_conversation_s
        self._last_audio = time.monotonic()
        self._label = label
        self._compute_inline = compute_inline
        # Light steps, once the handshake is out: the receiving task answers what it reads.
        self._answering = False
        self._decoder = OpusFrameDecoder()
        self._encoder = OpusEncoder()
        # Bounded: when the engine falls behind, the oldest audio goes, so latency cannot grow.
        # Each frame with its arrival time: answered a frame period later or more, it is late.
        self._pending: deque[tuple[Pcm, float]] = deque()
        self._max_pending = max_pending_frames
        self._wakeup = asyncio.Event()
        self._dropped = 0
        self._dropped_logged_at = 0.0

    async def run(self) -> None:
        """Handshake once the engine session is ready, then converse until the client goes.

        Raises ProtocolError on bad input, ClientGone, and EngineError when the session never
        becomes ready (or not within the start timeout).
        """
        # Reading from the start: a client that leaves during its persona prompt is noticed
        # (and its slot freed by the caller) at once, not after the prompt.
        receiver = asyncio.create_task(self._receive(), name=f"{self._label}-receive")
        tasks = [receiver]
        try:
            prompt = self._trace.phase("moshi.persona_prompt")
            with prompt if self._persona_prompt else contextlib.nullcontext():
                await self._until_ready(receiver)
            with self._trace.phase("moshi.handshake"):
                await self.send(MessageKind.HANDSHAKE)
            self._last_audio = time.monotonic()  # quiet time counts from the handshake
            for piece in self._engine.opening_text:
                await self.send(MessageKind.TEXT, piece)
            with self._trace.phase("moshi.frame_loop") as loop_span:
                try:
                    # Created inside the loop's span: what they log carries its ids.
                    if self._compute_inline:
                        # What came before the handshake first; from then on the receiving
                        # task answers each message as it reads it.
                        await self._answer_pending()
                        self._answering = True
                    else:
                        tasks.append(asyncio.create_task(self._work(), name=f"{self._label}-work"))
                    if self._idle_timeout_s or self._max_conversation_s:
                        tasks.append(
                            asyncio.create_task(self._watch(), name=f"{self._label}-watch")
                        )
                    done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    for task in done:
                        task.result()  # re-raises ProtocolError / ClientGone
                finally:
                    self._trace.summarise(loop_span)
        finally:
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _until_ready(self, receiver: asyncio.Task[None]) -> None:
        ready = asyncio.wrap_future(self._engine.ready)
        try:
            done, _ = await asyncio.wait(
                {ready, receiver},
                timeout=self._start_timeout_s,
                return_when=asyncio.FIRST_COMPLETED,
            )
        finally:
            # Given up on: the engine ignores a cancelled future, and the caller's close()
            # frees the slot and stops the prompt.
            if not ready.done():
                ready.cancel()
        if ready in done:
            ready.result()  # re-raises the engine's EngineError
        elif receiver in done:
            receiver.result()  # re-raises ProtocolError
            raise ClientGone("the client left during its persona prompt")
        else:
            raise EngineError(
                f"the persona prompt did not finish within {self._start_timeout_s:g} s "
                "(session start timeout)"
            )

    async def send(self, kind: MessageKind, payload: bytes | str = b"") -> None:
        if self._ws.closed:
            raise ClientGone("socket closed")
        try:
            # A timeout scope, not wait_for: wait_for wraps the send in a task of its own, a
            # cost paid on every frame although the send almost never has to wait.
            async with asyncio.timeout(self._send_timeout_s):
                await self._ws.send_bytes(encode(kind, payload))
        except (TimeoutError, ConnectionError) as error:
            raise ClientGone(f"send failed: {error!r}") from error

    async def _receive(self) -> None:
        while True:
            message = await self._ws.receive()
            if message.type == WSMsgType.BINARY:
                await self._handle(message.data)
            elif message.type == WSMsgType.TEXT:
                raise ProtocolError(
                    "text WebSocket frames are not part of the protocol; send binary messages",
                    CloseCode.UNSUPPORTED_DATA,
                )
            elif message.type == WSMsgType.ERROR:
                raise ProtocolError(
                    f"bad WebSocket message: {self._ws.exception()}", CloseCode.MESSAGE_TOO_BIG
                )
            else:  # CLOSE, CLOSING, CLOSED: the client went away
                return

    async def _handle(self, data: bytes) -> None:
        message = decode(data)
        if message.kind is MessageKind.AUDIO:
            self._last_audio = time.monotonic()
            if len(message.payload) <= _INLINE_DECODE_BYTES:
                frames = self._decoder.feed(message.payload)
            else:
                frames = await asyncio.to_thread(self._decoder.feed, message.payload)
            for frame in frames:
                self._enqueue(frame)
            if self._answering:
                await self._answer_pending()
        elif message.kind not in _IGNORED_FROM_CLIENT:
            raise ProtocolError(f"message kind {message.kind.name} is sent by the server only")

    async def _watch(self) -> None:
        """Ends a conversation whose client went quiet or that reached the time limit: a tab
        left open must not hold a conversation slot for good."""
        live_since = time.monotonic()
        limits = [t for t in (self._idle_timeout_s, self._max_conversation_s) if t]
        poll_s = min(1.0, min(limits) / 4)
        while True:
            await asyncio.sleep(poll_s)
            now = time.monotonic()
            if self._idle_timeout_s and now - self._last_audio >= self._idle_timeout_s:
                raise ConversationOver(
                    f"idle: no audio from the client for {self._idle_timeout_s:g} s", "idle"
                )
            if self._max_conversation_s and now - live_since >= self._max_conversation_s:
                raise ConversationOver(
                    f"conversation limit: a conversation lasts at most "
                    f"{self._max_conversation_s:g} s on this server",
                    "time_limit",
                )

    def _enqueue(self, frame: Pcm) -> None:
        self._metrics.frames_in.inc()
        if len(self._pending) >= self._max_pending:
            self._pending.popleft()
            self._dropped += 1
            self._metrics.frames_dropped.inc()
            self._trace.frame_dropped()
            now = time.monotonic()
            if now - self._dropped_logged_at >= _DROP_LOG_INTERVAL_S:
                self._dropped_logged_at = now
                log.warning(
                    "%s: engine behind real time, %d input frames dropped so far",
                    self._label,
                    self._dropped,
                )
        self._pending.append((frame, time.monotonic()))
        self._wakeup.set()

    def _compute(self, frame: Pcm) -> tuple[StepResult, bytes]:
        result = self._engine.step(frame)
        audio = self._encoder.encode(result.pcm) if result.pcm.size else b""
        return result, audio

    async def _answer_pending(self) -> None:
        """Light steps: the frames of the message just read are answered by the task that read
        it, as a bare echo does. Handed to a second task instead, each frame would wait for the
        loop's next turn, and in a burst (N conversations' frames readable at once) every
        conversation's echo would wait until all N frames had been read and decoded first.
        Reading and computing take turns on this task, so nothing queues behind a step; the
        bound on pending frames still cuts a long message to its newest frames."""
        while self._pending:
            frame, arrived = self._pending.popleft()
            started = time.perf_counter()
            result, audio = self._compute(frame)
            await self._answered(result, audio, started, arrived)

    async def _work(self) -> None:
        """Model steps: a worker thread computes, while the receiving task keeps reading (and
        drops the oldest frames when the engine falls behind)."""
        loop = asyncio.get_running_loop()
        while True:
            if not self._pending:
                self._wakeup.clear()
                try:
                    async with asyncio.timeout(_IDLE_POLL_S):
                        await self._wakeup.wait()
                except TimeoutError:
                    continue
            frame, arrived = self._pending.popleft()
            started = time.perf_counter()
            result, audio = await loop.run_in_executor(self._executor, self._compute, frame)
            await self._answered(result, audio, started, arrived)

    async def _answered(
        self, result: StepResult, audio: bytes, started: float, arrived: float
    ) -> None:
        seconds = time.perf_counter() - started
        self._metrics.frame_seconds.observe(seconds)
        self._trace.frame_done(seconds, late=time.monotonic() - arrived > FRAME_SECONDS)
        if audio:
            await self.send(MessageKind.AUDIO, audio)
            self._metrics.frames_out.inc()
        for piece in result.text:
            await self.send(MessageKind.TEXT, piece)
