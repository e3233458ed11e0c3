from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from frontend.settings import FrontendSettings
from frontend.testing import frontend_in_loop
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_backend.testing import BackendInLoop, backend_in_loop, ogg_pages, tone
from moshi_protocol.client import ChatClient, ChatClosed
from moshi_protocol.messages import CloseCode, MessageKind, encode
from stack_tls.certificates import ensure_certificate, pinned_client_context
from testsupport.processes import free_port, process_under_test, python_module_command


def _settings(backend_base_url: str) -> FrontendSettings:
    return FrontendSettings(moshi_backend_url=backend_base_url, moshi_proxy=True)


def _proxy_url(frontend_base: str) -> str:
    return frontend_base.replace("http", "ws", 1) + "/proxy/moshi"


@pytest.fixture
async def backend() -> AsyncIterator[BackendInLoop]:
    async with backend_in_loop(LoopbackEngine(capacity=1)) as running:
        yield running


async def test_conversation_through_the_proxy(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        async with ChatClient.connect(_proxy_url(base), {"voice_prompt": "VARF3.pt"}) as client:
            await client.handshake()
            opening = await client.receive()
            assert opening.kind is MessageKind.TEXT and "VARF3.pt" in opening.text
            for page in ogg_pages(tone(0.8)):
                await client.send_audio(page)
            while (await client.receive()).kind is not MessageKind.AUDIO:
                pass
        # The browser left: the proxy closed its upstream side, the backend slot is free.
        await backend.wait_idle()


async def test_bad_query_is_refused_without_touching_the_backend(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        async with ChatClient.connect(_proxy_url(base), {"seed": "soon"}) as client:
            closed = await client.closed_reason()
    assert closed.reason is not None and "bad seed" in closed.reason
    assert closed.close_code == CloseCode.POLICY_VIOLATION
    registry = backend.server.metrics.registry
    assert registry.get_sample_value("moshi_sessions_total", {"outcome": "rejected"}) is None


async def test_backend_down_is_a_clear_error() -> None:
    async with frontend_in_loop(_settings(f"http://127.0.0.1:{free_port()}")) as base:
        async with ChatClient.connect(_proxy_url(base)) as client:
            closed = await client.closed_reason()
    assert closed.reason is not None and closed.reason.startswith("backend unreachable")
    assert closed.close_code == CloseCode.TRY_AGAIN_LATER


async def test_backend_refusal_passes_through(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        async with ChatClient.connect(backend.chat_url) as holder:
            await holder.handshake()
            async with ChatClient.connect(_proxy_url(base)) as client:
                with pytest.raises(ChatClosed) as refused:
                    await client.handshake()
    assert refused.value.reason is not None and refused.value.reason.startswith("busy")
    assert refused.value.close_code == CloseCode.TRY_AGAIN_LATER


async def test_backend_error_mid_stream_passes_through(backend: BackendInLoop) -> None:
    async with frontend_in_loop(_settings(backend.base_url)) as base:
        async with ChatClient.connect(_proxy_url(base)) as client:
            await client.handshake()
            await client.send_raw(encode(MessageKind.AUDIO, b"definitely not ogg" * 10))
            closed = await client.closed_reason()
    assert closed.reason is not None and "not an Ogg/Opus" in closed.reason
    assert closed.close_code == CloseCode.UNSUPPORTED_DATA


async def test_backend_going_away_mid_stream_closes_the_browser_side() -> None:
    async with backend_in_loop(LoopbackEngine()) as backend:
        async with frontend_in_loop(_settings(backend.base_url)) as base:
            async with ChatClient.connect(_proxy_url(base)) as client:
                await client.handshake()
                # The backend stops while the conversation is live.
                await backend.stop()
                closed = await client.closed_reason(timeout_s=15)
    assert closed.close_code is not None and closed.close_code != CloseCode.NORMAL


async def _relay_outcome(settings: FrontendSettings) -> str:
    """ "live" when a conversation gets through the relay, else the relay's 0x05 reason."""
    async with frontend_in_loop(settings) as base, ChatClient.connect(_proxy_url(base)) as client:
        try:
            await client.handshake()
        except ChatClosed as closed:
            return str(closed.reason)
    return "live"


def test_the_relay_trusts_the_pinned_certificate_and_no_other(tmp_path: Path) -> None:
    stack, _ = ensure_certificate(tmp_path / "stack")
    stranger, _ = ensure_certificate(tmp_path / "stranger")
    port = free_port()
    command = python_module_command(
        "moshi_backend",
        "--engine",
        "loopback",
        "--port",
        str(port),
        "--ssl",
        "--ssl-dir",
        str(tmp_path / "stack"),
    )
    with process_under_test(command) as backend:
        url = f"https://127.0.0.1:{port}"
        backend.wait_http(f"{url}/health", ssl_context=pinned_client_context(stack))
        outcomes = {
            name: asyncio.run(
                _relay_outcome(
                    FrontendSettings(moshi_backend_url=url, moshi_proxy=True, moshi_trust_cert=cert)
                )
            )
            for name, cert in (("pinned", stack), ("another", stranger), ("none", None))
        }
    assert outcomes["pinned"] == "live"
    # The system's authorities know nothing of the stack's pair; another pair is not ours.
    for name in ("another", "none"):
        assert outcomes[name].startswith("backend unreachable"), outcomes
        assert "CERTIFICATE_VERIFY_FAILED" in outcomes[name], outcomes
