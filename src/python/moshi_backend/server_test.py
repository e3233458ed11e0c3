from __future__ import annotations

import asyncio
import dataclasses
import gc
import os
import struct
import threading
import time
import tracemalloc
from collections.abc import AsyncIterator
from concurrent.futures import Future

import aiohttp
import numpy as np
import pytest

from moshi_backend.engines.base import EngineInfo, ProgressCallback, StepResult
from moshi_backend.engines.loopback import LoopbackEngine, LoopbackSession
from moshi_backend.server import ServerOptions
from moshi_backend.testing import (
    BackendInLoop,
    backend_in_loop,
    ogg_pages,
    raw_chat_socket,
    reset_connection,
    tone,
)
from moshi_protocol.client import ChatClient, ChatClosed, upgrade_answer
from moshi_protocol.messages import MAX_MESSAGE_BYTES, CloseCode, MessageKind, encode
from moshi_protocol.opus import OpusFrameDecoder, Pcm
from moshi_protocol.params import ChatParams


@pytest.fixture
async def backend() -> AsyncIterator[BackendInLoop]:
    async with backend_in_loop(LoopbackEngine(delay_ms=0, capacity=2)) as running:
        yield running


async def test_health_voices_and_metrics(backend: BackendInLoop) -> None:
    status, health = await backend.get_json("/health")
    assert status == 200
    assert health["status"] == "ready" and health["engine"] == "loopback"
    assert health["development"] is True
    assert health["sessions"] == {"active": 0, "capacity": 2}
    status, voices = await backend.get_json("/api/voices")
    assert status == 200 and len(voices["voices"]) == 18  # type: ignore[arg-type]
    async with aiohttp.ClientSession() as http, http.get(backend.base_url + "/metrics") as r:
        text = await r.text()
    for name in (
        "moshi_sessions_active",
        "moshi_frames_dropped_total",
        "moshi_frame_processing_seconds_bucket",
    ):
        assert name in text


async def test_echo_round_trip_with_real_opus(backend: BackendInLoop) -> None:
    sent = tone(1.6)
    async with ChatClient.connect(backend.chat_url, {"voice_prompt": "NATM1.pt"}) as client:
        await client.handshake()
        opening = await client.receive()
        assert opening.kind is MessageKind.TEXT and "development" in opening.text
        for page in ogg_pages(sent):  # at the pace of a live microphone
            await client.send_audio(page)
            await asyncio.sleep(0.08)
        decoder, received = OpusFrameDecoder(), list[Pcm]()
        while sum(f.size for f in received) < sent.size - 4 * 1920:
            message = await client.receive(timeout_s=10)
            if message.kind is MessageKind.AUDIO:
                received += decoder.feed(message.payload)
    echoed = np.concatenate(received)
    rms = float(np.sqrt(np.mean(echoed[1920:] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.2)
    await backend.wait_idle()


async def test_capacity_gives_busy_then_frees_the_slot_on_disconnect() -> None:
    async with backend_in_loop(LoopbackEngine(capacity=1)) as backend:
        async with ChatClient.connect(backend.chat_url) as first:
            await first.handshake()
            async with ChatClient.connect(backend.chat_url) as second:
                started = time.monotonic()
                with pytest.raises(ChatClosed) as refused:
                    await second.handshake()
                assert time.monotonic() - started < 5
                assert refused.value.reason is not None and refused.value.reason.startswith("busy")
                assert refused.value.close_code == CloseCode.TRY_AGAIN_LATER
        await backend.wait_idle()
        async with ChatClient.connect(backend.chat_url) as third:
            await third.handshake()


class _SlowLoad(LoopbackEngine):
    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()

    def load(self, progress: ProgressCallback) -> None:
        progress(0.5)
        if not self.release.wait(timeout=30):
            raise TimeoutError("test never released the load")
        progress(1.0)


class _BrokenLoad(LoopbackEngine):
    def load(self, progress: ProgressCallback) -> None:
        raise RuntimeError("weights missing")


async def test_health_is_503_with_progress_while_loading() -> None:
    engine = _SlowLoad()
    async with backend_in_loop(engine, load=False) as backend:
        loading = asyncio.create_task(backend.server.load())
        async with asyncio.timeout(10):
            while (await backend.get_json("/health"))[1]["progress"] != 0.5:
                await asyncio.sleep(0.02)
        status, health = await backend.get_json("/health")
        assert (status, health["status"]) == (503, "loading")
        async with ChatClient.connect(backend.chat_url) as early:
            closed = await early.closed_reason()
        assert closed.reason is not None and closed.reason.startswith("not ready")
        assert closed.close_code == CloseCode.TRY_AGAIN_LATER
        engine.release.set()
        await loading
        assert (await backend.get_json("/health"))[0] == 200


async def test_failed_load_reports_the_error() -> None:
    async with backend_in_loop(_BrokenLoad()) as backend:
        status, health = await backend.get_json("/health")
    assert (status, health["status"]) == (503, "error")
    assert "weights missing" in str(health["error"])


_OVER_LIMIT = encode(MessageKind.AUDIO, bytes(MAX_MESSAGE_BYTES + 10))


@pytest.mark.parametrize(
    ("send", "reason", "code"),
    [
        (b"\x7fhello", "unknown message kind 0x7f", CloseCode.POLICY_VIOLATION),
        (b"", "empty message", CloseCode.POLICY_VIOLATION),
        ("a text frame", "text WebSocket frames", CloseCode.UNSUPPORTED_DATA),
        (
            encode(MessageKind.AUDIO, b"not ogg at all" * 20),
            "not an Ogg/Opus",
            CloseCode.UNSUPPORTED_DATA,
        ),
        (_OVER_LIMIT, "over the 65536-byte limit", CloseCode.MESSAGE_TOO_BIG),
        (encode(MessageKind.TEXT, "hi"), "sent by the server only", CloseCode.POLICY_VIOLATION),
    ],
)
async def test_bad_messages_get_a_reason_and_the_server_stays_healthy(
    backend: BackendInLoop, send: bytes | str, reason: str, code: CloseCode
) -> None:
    async with ChatClient.connect(backend.chat_url) as client:
        await client.handshake()
        if isinstance(send, str):
            await client.ws.send_str(send)
        else:
            await client.send_raw(send)
        closed = await client.closed_reason()
    assert closed.reason is not None and reason in closed.reason
    assert closed.close_code == code
    await _still_serves(backend)


async def test_message_over_the_transport_limit_is_closed_with_1009(
    backend: BackendInLoop,
) -> None:
    async with ChatClient.connect(backend.chat_url) as client:
        await client.handshake()
        await client.send_raw(bytes([MessageKind.AUDIO]) + os.urandom(20 * MAX_MESSAGE_BYTES))
        closed = await client.closed_reason()
    assert closed.close_code == CloseCode.MESSAGE_TOO_BIG
    await _still_serves(backend)


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"voice_prompt": "../../etc/passwd"}, "bad voice_prompt"),
        ({"voice_prompt": "/etc/passwd"}, "bad voice_prompt"),
        ({"voice_prompt": "NOBODY.pt"}, "unknown voice_prompt"),
        ({"text_prompt": "x" * 5000}, "bad text_prompt"),
        ({"seed": "twelve"}, "bad seed"),
        ({"temperature": "-1"}, "bad temperature"),
        ({"top_k": "100000"}, "bad top_k"),
    ],
)
async def test_bad_parameters_are_refused_before_the_handshake(
    backend: BackendInLoop, query: dict[str, str], reason: str
) -> None:
    async with ChatClient.connect(backend.chat_url, query) as client:
        closed = await client.closed_reason()
    assert closed.reason is not None and reason in closed.reason
    assert closed.close_code == CloseCode.POLICY_VIOLATION
    await _still_serves(backend)


async def test_plain_http_get_of_chat_is_400(backend: BackendInLoop) -> None:
    async with aiohttp.ClientSession() as http, http.get(backend.base_url + "/api/chat") as r:
        assert r.status == 400
        assert "WebSocket" in await r.text()


class _SlowSession(LoopbackSession):
    def step(self, frame: Pcm) -> StepResult:
        time.sleep(0.2)  # an engine 2.5x slower than real time
        return super().step(frame)


class _SlowEngine(LoopbackEngine):
    @property
    def info(self) -> EngineInfo:
        # A slow step is a model's: it runs on a worker thread, not on the event loop.
        return dataclasses.replace(super().info, light_steps=False)

    def start_session(self, params: ChatParams) -> LoopbackSession:
        return _SlowSession(0, params)


async def test_engine_behind_real_time_drops_oldest_input_instead_of_lagging() -> None:
    options = ServerOptions(max_pending_frames=2)
    async with backend_in_loop(_SlowEngine(), options) as backend:
        sent_frames = 25  # 2 s of audio, sent at once
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            for page in ogg_pages(tone(sent_frames * 0.08)):
                await client.send_audio(page)
            audio_messages = 0
            with pytest.raises(TimeoutError):
                while True:  # until the server has nothing more to say
                    if (await client.receive(timeout_s=2)).kind is MessageKind.AUDIO:
                        audio_messages += 1
        registry = backend.server.metrics.registry
        dropped = registry.get_sample_value("moshi_frames_dropped_total") or 0
        processed = registry.get_sample_value("moshi_frame_processing_seconds_count") or 0
    assert dropped > 0
    # Whatever was not dropped was processed; nothing queued without bound.
    assert processed + dropped <= sent_frames
    assert audio_messages <= sent_frames - dropped


async def test_reset_in_the_middle_of_a_message_frees_the_session(backend: BackendInLoop) -> None:
    sock = await asyncio.to_thread(raw_chat_socket, backend.chat_url)
    async with asyncio.timeout(10):
        while backend.server.active_sessions == 0:
            await asyncio.sleep(0.02)
    # Header of a masked 1000-byte binary frame, then 10 bytes of it, then a TCP reset.
    sock.sendall(bytes([0x82, 0x80 | 126]) + struct.pack("!H", 1000) + os.urandom(4 + 10))
    reset_connection(sock)
    await backend.wait_idle()
    await _still_serves(backend)


async def test_many_connect_disconnect_cycles_leak_nothing(backend: BackendInLoop) -> None:
    page = ogg_pages(tone(0.24))[0]

    async def cycles(count: int) -> None:
        for _ in range(count):
            async with ChatClient.connect(backend.chat_url) as client:
                await client.handshake()
                await client.send_audio(page)
        await backend.wait_idle()
        await asyncio.sleep(0.1)

    await cycles(10)  # warm: imports, pools and caches settle
    tasks_before = len(asyncio.all_tasks())
    tracemalloc.start()
    try:
        before, _ = tracemalloc.get_traced_memory()
        await cycles(40)
        gc.collect()
        after, _ = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(asyncio.all_tasks()) <= tasks_before
    # Client and server share this process; a leak of one session's state (decoder, encoder,
    # buffers: tens of kB) times 40 would show far above this bound.
    assert after - before < 512 * 1024, f"grew {after - before} bytes over 40 conversations"
    status, health = await backend.get_json("/health")
    assert status == 200 and health["sessions"] == {"active": 0, "capacity": 2}


async def _still_serves(backend: BackendInLoop) -> None:
    await backend.wait_idle()
    async with ChatClient.connect(backend.chat_url) as client:
        await client.handshake()
        for page in ogg_pages(tone(0.8)):
            await client.send_audio(page)
        while (await client.receive()).kind is not MessageKind.AUDIO:
            pass


async def test_client_that_vanishes_silently_is_found_by_heartbeat() -> None:
    # No close frame, no reset, no pong: a laptop whose network went away.
    options = ServerOptions(heartbeat_s=0.5)
    async with backend_in_loop(LoopbackEngine(), options) as backend:
        sock = await asyncio.to_thread(raw_chat_socket, backend.chat_url)
        try:
            async with asyncio.timeout(10):
                while backend.server.active_sessions == 0:
                    await asyncio.sleep(0.02)
            await backend.wait_idle(timeout_s=10)
        finally:
            sock.close()


class _SlowPromptSession(LoopbackSession):
    """A persona prompt that takes PROMPT_S: the session is ready only then."""

    PROMPT_S = 3.0

    def __init__(self, params: ChatParams) -> None:
        super().__init__(0, params)
        self._ready: Future[None] = Future()
        self._timer = threading.Timer(self.PROMPT_S, self._ready.set_result, (None,))
        self._timer.start()

    @property
    def ready(self) -> Future[None]:
        return self._ready

    def close(self) -> None:
        self._timer.cancel()


class _SlowPromptEngine(LoopbackEngine):
    def start_session(self, params: ChatParams) -> LoopbackSession:
        return _SlowPromptSession(params)


async def test_a_persona_prompt_longer_than_the_heartbeat_keeps_its_client() -> None:
    # aiohttp reads a pong only inside receive(): a server that stops reading while the prompt
    # runs takes its own client for vanished and closes with 1006 (CI saw it with a slow CPU).
    options = ServerOptions(heartbeat_s=0.5)
    async with backend_in_loop(_SlowPromptEngine(), options) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            started = time.monotonic()
            await client.handshake(timeout_s=30)
            waited = time.monotonic() - started
            for page in ogg_pages(tone(0.4)):
                await client.send_audio(page)
            while (await client.receive(timeout_s=10)).kind is not MessageKind.AUDIO:
                pass
    assert waited >= _SlowPromptSession.PROMPT_S - 0.1


async def test_audio_sent_during_the_prompt_is_answered_only_after_the_handshake() -> None:
    # A light-step engine answers on the task that reads; until the handshake is out it must
    # only keep what it reads (the newest max_pending_frames of it).
    options = ServerOptions(max_pending_frames=3)
    async with backend_in_loop(_SlowPromptEngine(), options) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            for page in ogg_pages(tone(0.8)):  # 10 frames while the prompt runs
                await client.send_audio(page)
            first = await client.receive(timeout_s=30)
            assert first.kind is MessageKind.HANDSHAKE
            kinds = []
            with pytest.raises(TimeoutError):
                while True:
                    kinds.append((await client.receive(timeout_s=2)).kind)
    assert kinds.count(MessageKind.AUDIO) == 3, kinds


async def test_shutdown_tells_live_clients_going_away_at_once() -> None:
    async with backend_in_loop(LoopbackEngine()) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            started = time.monotonic()
            stopping = asyncio.create_task(backend.stop())
            closed = await client.closed_reason(timeout_s=10)
            await asyncio.wait_for(stopping, 10)
    assert closed.close_code == CloseCode.GOING_AWAY
    assert time.monotonic() - started < 5  # not aiohttp's shutdown timeout


async def test_a_client_that_sends_no_audio_is_ended_as_idle() -> None:
    async with backend_in_loop(LoopbackEngine(), ServerOptions(idle_timeout_s=1.0)) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            # Talking keeps it open well past the idle time...
            talked_until = time.monotonic() + 2.0
            for page in ogg_pages(tone(3.0)):
                if time.monotonic() > talked_until:
                    break
                await client.send_audio(page)
                await asyncio.sleep(0.08)
            silent_from = time.monotonic()
            # ...and silence ends it.
            closed = await client.closed_reason(timeout_s=10)
            quiet_s = time.monotonic() - silent_from
        await backend.wait_idle(timeout_s=10)
        outcomes = backend.server.metrics.registry.get_sample_value(
            "moshi_sessions_total", {"outcome": "idle"}
        )
    assert closed.close_code == CloseCode.NORMAL
    assert closed.reason == "idle: no audio from the client for 1 s"
    assert 0.9 <= quiet_s < 5
    assert outcomes == 1


async def test_a_conversation_ends_at_the_time_limit_even_while_talking() -> None:
    options = ServerOptions(max_conversation_s=1.5)
    async with backend_in_loop(LoopbackEngine(), options) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            started = time.monotonic()

            async def talk() -> None:
                for page in ogg_pages(tone(10.0)):
                    await client.send_audio(page)
                    await asyncio.sleep(0.08)

            talking = asyncio.create_task(talk())
            try:
                closed = await client.closed_reason(timeout_s=10)
            finally:
                talking.cancel()
                await asyncio.gather(talking, return_exceptions=True)
            lasted = time.monotonic() - started
        await backend.wait_idle(timeout_s=10)
    assert closed.close_code == CloseCode.NORMAL
    assert closed.reason is not None and closed.reason.startswith("conversation limit: ")
    assert "1.5 s" in closed.reason
    assert 1.4 <= lasted < 6


async def test_the_engine_sets_the_default_conversation_limit() -> None:
    class _Limited(LoopbackEngine):
        @property
        def info(self) -> EngineInfo:
            return dataclasses.replace(super().info, max_conversation_s=1.0)

    async with backend_in_loop(_Limited()) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            closed = await client.closed_reason(timeout_s=10)
    assert closed.reason is not None and closed.reason.startswith("conversation limit: ")
    # 0 in the options lifts the engine's limit.
    options = ServerOptions(max_conversation_s=0, idle_timeout_s=0)
    async with backend_in_loop(_Limited(), options) as backend:
        async with ChatClient.connect(backend.chat_url) as client:
            await client.handshake()
            with pytest.raises(TimeoutError):  # the opening text, then nothing: still open
                while True:
                    await client.receive(timeout_s=2.5)


async def test_a_large_audio_message_is_decoded_off_the_event_loop(
    backend: BackendInLoop, monkeypatch: pytest.MonkeyPatch
) -> None:
    decoded_on: list[threading.Thread] = []
    feed = OpusFrameDecoder.feed

    def recording_feed(self: OpusFrameDecoder, data: bytes) -> list[Pcm]:
        decoded_on.append(threading.current_thread())
        return feed(self, data)

    monkeypatch.setattr(OpusFrameDecoder, "feed", recording_feed)
    pages = ogg_pages(tone(12.0))
    small, rest = pages[:3], pages[3:]
    big = b"".join(rest)
    while len(big) > MAX_MESSAGE_BYTES - 1:
        rest = rest[:-1]
        big = b"".join(rest)
    assert len(big) > 8192
    async with ChatClient.connect(backend.chat_url) as client:
        await client.handshake()
        for page in small:
            await client.send_audio(page)
        await client.send_audio(big)
        while (await client.receive(timeout_s=10)).kind is not MessageKind.AUDIO:
            pass
        async with asyncio.timeout(10):
            while len(decoded_on) < len(small) + 1:
                await asyncio.sleep(0.02)
    loop_thread = threading.current_thread()
    assert decoded_on[: len(small)] == [loop_thread] * len(small)  # pages: inline, cheap
    assert decoded_on[len(small)] is not loop_thread
    await _still_serves(backend)


async def test_pages_of_other_sites_are_refused_before_the_upgrade() -> None:
    options = ServerOptions(allowed_origins=("https://voice.example.org",))
    async with backend_in_loop(LoopbackEngine(), options) as backend:
        url, own = backend.chat_url, backend.base_url.split("//")[1]
        refused = await upgrade_answer(url, {"Origin": "https://evil.example.com"})
        assert (await upgrade_answer(url, {"Origin": "http://localhost:8123"}))[0] == 403
        assert refused[0] == 403
        assert "origin https://evil.example.com may not open this WebSocket" in refused[1]
        assert backend.server.active_sessions == 0
        # The allowed, the backend's own page and the frontend's beside it (same host).
        for allowed in ("https://voice.example.org", f"http://{own}", "http://127.0.0.1:8123"):
            assert (await upgrade_answer(url, {"Origin": allowed}))[0] == 101
        assert (await upgrade_answer(url, {}))[0] == 101  # a program, not a page


async def test_with_an_api_key_only_requests_that_carry_it_get_through() -> None:
    options = ServerOptions(api_key="key-server-test")
    async with backend_in_loop(LoopbackEngine(), options) as backend:
        status, reason = await upgrade_answer(backend.chat_url, {})
        assert status == 401 and "requires its API key" in reason
        wrong = {"Authorization": "Bearer key-wrong"}
        assert (await upgrade_answer(backend.chat_url, wrong))[0] == 401
        right = {"Authorization": "Bearer key-server-test"}
        assert (await upgrade_answer(backend.chat_url, right))[0] == 101
        async with aiohttp.ClientSession() as http:
            async with http.get(backend.base_url + "/api/voices") as response:
                assert response.status == 401
                assert "requires its API key" in await response.text()
            async with http.get(backend.base_url + "/api/voices", headers=right) as response:
                assert response.status == 200
            async with http.get(backend.base_url + "/health") as response:
                assert response.status == 200  # probes need no key
