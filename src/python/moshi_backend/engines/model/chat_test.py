"""A conversation with the model engine through the real server, WebSocket and Ogg/Opus."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import numpy as np
import pytest

from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.prompts import Phase, PromptObserver
from moshi_backend.engines.model.testing_checkpoints import (
    TINY_VOICE,
    cpu_engine,
    voice_audio,
    write_tiny_repository,
)
from moshi_backend.testing import BackendInLoop, backend_in_loop, ogg_pages, speak_and_listen
from moshi_protocol.client import ChatClient, ChatClosed
from moshi_protocol.messages import CloseCode, MessageKind
from testsupport.processes import free_port, process_under_test, python_module_command


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_repository(tmp_path_factory.mktemp("chat") / "repo")


def personaplex(repository: Path, observer: PromptObserver | None = None) -> ModelEngine:
    return cpu_engine(repository, observer=observer)


async def metric(backend: BackendInLoop, name: str) -> float:
    async with aiohttp.ClientSession() as http, http.get(backend.base_url + "/metrics") as r:
        for line in (await r.text()).splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"{name} not in /metrics")


async def test_persona_conversation_over_the_websocket(tiny: Path) -> None:
    phases: list[Phase] = []
    engine = personaplex(tiny, lambda phase, *tokens: phases.append(phase))
    async with backend_in_loop(engine) as backend:
        status, health = await backend.get_json("/health")
        assert status == 200 and health["engine"] == "personaplex"
        assert health["stage"] == "ready" and health["development"] is False
        assert (await backend.get_json("/api/voices"))[1] == {"voices": [TINY_VOICE]}
        query = {"voice_prompt": TINY_VOICE, "text_prompt": "You are Jane.", "seed": "9"}
        async with ChatClient.connect(backend.chat_url, query) as client:
            await client.handshake(timeout_s=120)
            # The handshake comes only after the whole persona prompt ran through the model.
            assert phases[0] is Phase.VOICE and phases[-7] is Phase.TEXT
            assert phases[-6:] == [Phase.SILENCE] * 6
            speech = voice_audio(seconds=2.0, pitch_hz=150.0)
            # A CPU runs even this toy model slower than real time: some input is dropped.
            received, text = await speak_and_listen(client, speech, frames=6)
        assert all(piece for piece in text)  # the model's own words, as UTF-8 pieces
        audio = np.concatenate(received)
        assert float(np.sqrt(np.mean(audio**2))) > 1e-3  # the model speaks (noise, at this size)
        assert await metric(backend, "moshi_frames_in_total") >= 20
        assert await metric(backend, "moshi_frames_out_total") >= 6
        await backend.wait_idle(timeout_s=30)


async def test_a_step_slower_than_real_time_drops_input_and_metrics_show_it(tiny: Path) -> None:
    async with backend_in_loop(personaplex(tiny)) as backend:
        async with ChatClient.connect(backend.chat_url, {"voice_prompt": TINY_VOICE}) as client:
            await client.handshake(timeout_s=120)
            for page in ogg_pages(voice_audio(seconds=4.0)):  # 4 s at once: far ahead of it
                await client.send_audio(page)
            async with asyncio.timeout(60):
                while await metric(backend, "moshi_frames_dropped_total") == 0:
                    await asyncio.sleep(0.2)
        assert await metric(backend, "moshi_frames_dropped_total") > 0


async def test_voice_errors_reach_the_client(tiny: Path) -> None:
    engine = personaplex(tiny)
    async with backend_in_loop(engine) as backend:
        async with ChatClient.connect(backend.chat_url, {"voice_prompt": "NATF2.pt"}) as client:
            closed = await client.closed_reason()
        assert closed.reason is not None and "unknown voice_prompt" in closed.reason
        voice_dir = engine.loaded.voice_dir
        assert voice_dir is not None
        (voice_dir / "EMPTY.wav").write_bytes(b"RIFF")
        try:
            async with ChatClient.connect(backend.chat_url, {"voice_prompt": "EMPTY.wav"}) as c:
                with pytest.raises(ChatClosed) as refused:
                    await c.handshake(timeout_s=60)
        finally:
            (voice_dir / "EMPTY.wav").unlink()
        assert refused.value.close_code == CloseCode.INTERNAL_ERROR
        assert refused.value.reason is not None and "EMPTY.wav is not readable audio" in (
            refused.value.reason
        )


def test_the_server_command_runs_the_model(tiny: Path) -> None:
    port = free_port()
    command = python_module_command(
        "moshi_backend", "--engine", "personaplex", "--device", "cpu", "--port", str(port)
    )
    with process_under_test(command, env={"MOSHI_HF_REPO": str(tiny)}) as backend:
        health = json.loads(backend.wait_http(f"http://127.0.0.1:{port}/health", timeout_s=180))
        assert health["engine"] == "personaplex" and health["device"] == "cpu"

        async def talk() -> None:
            url = f"ws://127.0.0.1:{port}/api/chat"
            async with ChatClient.connect(url, {"voice_prompt": TINY_VOICE}) as client:
                await client.handshake(timeout_s=120)
                for page in ogg_pages(voice_audio(seconds=0.8)):
                    await client.send_audio(page)
                while (await client.receive(timeout_s=60)).kind is not MessageKind.AUDIO:
                    pass

        asyncio.run(talk())
        log = backend.output()
    assert "persona prompts (voice TINYF0.wav" in log
    assert "engine PERSONAPLEX (model" in log
