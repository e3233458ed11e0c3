"""Several conversations on one model process, through the real server, WebSockets and Ogg/Opus.

A tiny checkpoint on the CPU: nothing here measures speed (a step is slower than real time on
these machines); it checks what batching must keep true whatever the speed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import sphn

from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.prompts import Phase
from moshi_backend.engines.model.testing_checkpoints import (
    TINY_VOICE,
    cpu_engine,
    voice_audio,
    write_tiny_repository,
)
from moshi_backend.server import ServerOptions
from moshi_backend.testing import (
    BackendInLoop,
    backend_in_loop,
    ogg_pages,
    raw_chat_socket,
    reset_connection,
)
from moshi_protocol.client import ChatClient, ChatClosed
from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE, CloseCode, MessageKind
from moshi_protocol.opus import OpusFrameDecoder, Pcm
from moshi_protocol.params import ChatParams

JANE = {"voice_prompt": TINY_VOICE, "text_prompt": "You are Jane.", "seed": "9"}
_HEARD_FRAMES = 6
# Nothing is dropped: every frame a client sends is stepped, so a conversation is a function of
# its input alone, whatever the timing.
_KEEP_EVERY_FRAME = ServerOptions(max_pending_frames=64)
_LONG_VOICE = "LONG.wav"
_LONG_VOICE_S = 8.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_repository(tmp_path_factory.mktemp("batched") / "repo")


@dataclass(frozen=True)
class Heard:
    """What a client heard: the first frames of audio (decoded) and the text until then."""

    audio: bytes
    text: tuple[str, ...]


async def converse(backend: BackendInLoop, query: Mapping[str, str]) -> Heard:
    speech = voice_audio(seconds=(_HEARD_FRAMES + 3) * 0.08, pitch_hz=150.0)
    async with ChatClient.connect(backend.chat_url, query) as client:
        await client.handshake(timeout_s=180)
        for page in ogg_pages(speech):  # at once: the server keeps them all
            await client.send_audio(page)
        decoder, audio, text = OpusFrameDecoder(), list[Pcm](), list[str]()
        while sum(frame.size for frame in audio) < _HEARD_FRAMES * FRAME_SAMPLES:
            message = await client.receive(timeout_s=60)
            if message.kind is MessageKind.AUDIO:
                audio += decoder.feed(message.payload)
            elif message.kind is MessageKind.TEXT:
                text.append(message.text)
    heard = np.concatenate(audio)[: _HEARD_FRAMES * FRAME_SAMPLES]
    assert float(np.abs(heard).max()) > 0
    return Heard(heard.tobytes(), tuple(text))


def assert_same_sound(heard: bytes, expected: bytes, min_correlation: float = 0.9) -> None:
    """Frame by frame, heard follows expected (correlation), and at the same level."""
    a = np.frombuffer(heard, dtype=np.float32).reshape(-1, FRAME_SAMPLES)
    b = np.frombuffer(expected, dtype=np.float32).reshape(-1, FRAME_SAMPLES)
    assert a.shape == b.shape
    for index, (x, y) in enumerate(zip(a, b, strict=True)):
        correlation = float(np.corrcoef(x, y)[0, 1])
        assert correlation >= min_correlation, f"frame {index}: correlation {correlation:.3f}"
    error = float(np.sqrt(np.mean((a - b) ** 2)) / np.sqrt(np.mean(b**2)))
    assert error <= 0.25, f"relative RMS difference {error:.3f}"


class LiveClient:
    """A client that talks at a microphone's pace and notes when it hears audio."""

    def __init__(self, client: ChatClient) -> None:
        self.client = client
        self.heard_at: list[float] = []
        self._tasks = [asyncio.create_task(self._talk()), asyncio.create_task(self._listen())]

    async def _talk(self) -> None:
        for page in ogg_pages(voice_audio(seconds=60.0, pitch_hz=210.0)):
            await self.client.send_audio(page)
            await asyncio.sleep(0.08)

    async def _listen(self) -> None:
        while True:
            if (await self.client.receive(timeout_s=60)).kind is MessageKind.AUDIO:
                self.heard_at.append(time.monotonic())

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def bucket(backend: BackendInLoop, name: str, le: str = "") -> float:
    labels = {"le": le} if le else None
    value = backend.server.metrics.registry.get_sample_value(name, labels)
    return value or 0.0


async def test_conversations_side_by_side_are_each_what_it_is_alone(tiny: Path) -> None:
    engine = cpu_engine(tiny, max_sessions=3)
    async with backend_in_loop(engine, _KEEP_EVERY_FRAME) as backend:
        status, health = await backend.get_json("/health")
        assert status == 200 and health["sessions"] == {"active": 0, "capacity": 3}
        alone = await converse(backend, JANE)  # the first conversation of a fresh process
        await backend.wait_idle(timeout_s=30)
        others = [
            {"voice_prompt": TINY_VOICE, "text_prompt": f"You are {name}.", "seed": seed}
            for name, seed in (("Tom", "1"), ("Ann", "2"))
        ]
        async with ChatClient.connect(backend.chat_url, others[0]) as first, ChatClient.connect(
            backend.chat_url, others[1]
        ) as second:
            await first.handshake(timeout_s=180)
            await second.handshake(timeout_s=180)
            live = [LiveClient(first), LiveClient(second)]
            joining = time.monotonic()
            try:
                beside = await converse(backend, JANE)  # joins while both others talk
                assert all(
                    any(at > joining for at in client.heard_at) for client in live
                ), "the others went on while Jane joined"
                # Jane's client has closed; the server frees her slot as its handler ends.
                async with asyncio.timeout(30):
                    while backend.server.active_sessions > 2:
                        await asyncio.sleep(0.02)
                async with ChatClient.connect(backend.chat_url, JANE) as third, ChatClient.connect(
                    backend.chat_url, JANE
                ) as fourth:
                    await third.handshake(timeout_s=180)
                    assert (await backend.get_json("/health"))[1]["sessions"] == {
                        "active": 3,
                        "capacity": 3,
                    }
                    started = time.monotonic()
                    with pytest.raises(ChatClosed) as refused:
                        await fourth.handshake(timeout_s=60)
                    assert time.monotonic() - started < 5  # at once, not after a prompt
            finally:
                for client in live:
                    await client.stop()
        assert refused.value.close_code == CloseCode.TRY_AGAIN_LATER
        assert refused.value.reason == "busy: 3 of 3 conversation slots are in use; try again later"
        await backend.wait_idle(timeout_s=30)
        assert engine.conversations == 0
        reused = await converse(backend, JANE)  # slot 0 again, after Tom's conversation
        # Several conversations stepped together, not one after the other.
        steps = await bucket(backend, "moshi_step_batch_size_count")
        # (How many share a step depends on when frames arrive, which load on the machine
        # shifts; that some step carried more than one does not.)
        assert steps > await bucket(backend, "moshi_step_batch_size_bucket", "1.0")
        assert await bucket(backend, "moshi_step_seconds_count") == steps
    # In the same slot after a reset, on the same batch shape: the same bytes.
    assert reused == alone
    # Beside others the step multiplies a batch of three instead of one, and the CPU's matrix
    # kernels may sum in another order for another shape (they do on some machines): the same
    # words and tokens, audio equal up to rounding, which the lossy Opus round trip then spreads.
    # A conversation that heard its neighbours would differ outright (another token: a frame
    # that no longer correlates).
    assert beside.text == alone.text
    assert_same_sound(beside.audio, alone.audio)


def write_long_voice(engine: ModelEngine) -> int:
    """A voice prompt long enough to be running when the test acts; returns its prompt steps."""
    voice_dir = engine.loaded.voice_dir
    assert voice_dir is not None
    sphn.write_wav(str(voice_dir / _LONG_VOICE), voice_audio(seconds=_LONG_VOICE_S), SAMPLE_RATE)
    return round(_LONG_VOICE_S * SAMPLE_RATE / FRAME_SAMPLES)


class PromptCounter:
    def __init__(self) -> None:
        self.voice_steps = 0

    def __call__(self, phase: Phase, *tokens: object) -> None:
        self.voice_steps += phase is Phase.VOICE


async def assert_freed_and_stopped(
    backend: BackendInLoop, engine: ModelEngine, counter: PromptCounter, voice_steps: int
) -> None:
    await backend.wait_idle(timeout_s=30)
    async with asyncio.timeout(30):
        while engine.conversations:
            await asyncio.sleep(0.02)
    # A step that began before the leave may still finish; none begins after it.
    await asyncio.wait_for(asyncio.wrap_future(engine.sync_steps()), 30)
    ran = counter.voice_steps
    await asyncio.sleep(0.5)
    # The prompt of the conversation that ended does not go on in the background.
    assert counter.voice_steps == ran < voice_steps
    # And the slot serves the next conversation.
    params = ChatParams(voice_prompt=TINY_VOICE, text_prompt="")
    session = await asyncio.to_thread(engine.start_session, params)
    try:
        await asyncio.wait_for(asyncio.wrap_future(session.ready), 180)
    finally:
        session.close()


async def test_a_start_that_times_out_frees_its_slot(tiny: Path) -> None:
    counter = PromptCounter()
    engine = cpu_engine(tiny, max_sessions=2, observer=counter)
    async with backend_in_loop(engine, ServerOptions(session_start_timeout_s=0.5)) as backend:
        voice_steps = write_long_voice(engine)
        async with ChatClient.connect(backend.chat_url, {"voice_prompt": _LONG_VOICE}) as client:
            with pytest.raises(ChatClosed) as refused:
                await client.handshake(timeout_s=60)
        assert refused.value.close_code == CloseCode.INTERNAL_ERROR
        assert refused.value.reason is not None
        assert "persona prompt did not finish within 0.5 s" in refused.value.reason
        await assert_freed_and_stopped(backend, engine, counter, voice_steps)


async def test_a_client_that_vanishes_during_its_prompt_frees_its_slot(tiny: Path) -> None:
    counter = PromptCounter()
    engine = cpu_engine(tiny, max_sessions=2, observer=counter)
    async with backend_in_loop(engine) as backend:
        voice_steps = write_long_voice(engine)
        query = {"voice_prompt": _LONG_VOICE}
        sock = await asyncio.to_thread(raw_chat_socket, backend.chat_url, query)
        async with asyncio.timeout(60):
            while counter.voice_steps == 0:
                await asyncio.sleep(0.02)
        reset_connection(sock)
        await assert_freed_and_stopped(backend, engine, counter, voice_steps)


async def test_the_moshi_engine_serves_slots_side_by_side(tmp_path: Path) -> None:
    engine = cpu_engine(
        write_tiny_repository(tmp_path / "moshi", dep_q=8), persona=False, max_sessions=2
    )
    async with backend_in_loop(engine, _KEEP_EVERY_FRAME) as backend:
        tom, ann = {"seed": "1"}, {"seed": "2"}
        alone = await converse(backend, tom)
        await backend.wait_idle(timeout_s=30)  # its slot is freed as the server's handler ends
        together = await asyncio.gather(converse(backend, ann), converse(backend, tom))
    assert together[1] == alone and together[0] != alone


async def test_shutdown_ends_every_conversation_and_frees_its_slot(tiny: Path) -> None:
    engine = cpu_engine(tiny, max_sessions=2)
    async with backend_in_loop(engine) as backend:
        write_long_voice(engine)
        async with ChatClient.connect(backend.chat_url, JANE) as live, ChatClient.connect(
            backend.chat_url, {"voice_prompt": _LONG_VOICE}
        ) as prompting:
            await live.handshake(timeout_s=180)
            assert engine.conversations == 2  # one live, one still in its long persona prompt
            stopping = asyncio.create_task(backend.stop())
            for client in (live, prompting):
                closed = await client.closed_reason(timeout_s=60)
                assert closed.close_code == CloseCode.GOING_AWAY
            await stopping
        assert engine.conversations == 0
