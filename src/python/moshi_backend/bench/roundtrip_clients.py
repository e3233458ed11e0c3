"""Live microphones played against a target, each frame timed from its Ogg page to its echo."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Sequence
from contextlib import AsyncExitStack
from dataclasses import replace
from enum import Enum
from typing import Any, TypeVar

from moshi_backend.bench.roundtrip_targets import BenchError, Target
from moshi_backend.bench.roundtrip_times import RoundTrips, SessionTimes, round_trips
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import FRAME_SECONDS, MessageKind

# While pages still go out, this long without an echo means the target is stuck; after the
# last page, it is how long the stragglers get before they count as lost.
_STALL_TIMEOUT_S = 5.0
# Between the last handshake and the first page, so that no session starts late.
_START_DELAY_S = 0.2

T = TypeVar("T")


class Arrival(str, Enum):
    """When, within a frame period, each session's pages leave."""

    # Independent users speak out of phase: the sessions are spread evenly over the frame.
    SPREAD = "spread"
    # The worst case: every session's page leaves in the same instant, so the server has N
    # frames to answer at once and the last one waits for all the others.
    BURST = "burst"

    def offsets(self, sessions: int) -> list[float]:
        if self is Arrival.BURST:
            return [0.0] * sessions
        return [FRAME_SECONDS * index / sessions for index in range(sessions)]


async def _send_paced(
    client: ChatClient, pages: Sequence[bytes], start_at: float, sent: list[float]
) -> None:
    # Each page is due at start + n * 80 ms on the monotonic clock, so a late wake-up delays
    # one page but not the ones after it.
    for index, page in enumerate(pages):
        delay = start_at + index * FRAME_SECONDS - time.monotonic()
        if delay > 0:
            await asyncio.sleep(delay)
        sent.append(time.monotonic())
        await client.send_audio(page)


async def _receive_echoes(
    client: ChatClient, expected: int, received: list[float], sender: asyncio.Task[None]
) -> None:
    while len(received) < expected:
        try:
            message = await client.receive(timeout_s=_STALL_TIMEOUT_S)
        except TimeoutError:
            if sender.done():
                return  # the rest are lost; the caller counts them
            raise BenchError(f"no echo for {_STALL_TIMEOUT_S:.0f} s while sending") from None
        if message.kind is MessageKind.AUDIO:
            received.append(time.monotonic())
        elif message.kind is MessageKind.ERROR:
            raise BenchError(f"server error: {message.text}")


async def _converse(client: ChatClient, pages: Sequence[bytes], start_at: float) -> SessionTimes:
    sent: list[float] = []
    received: list[float] = []
    sender = asyncio.create_task(_send_paced(client, pages, start_at, sent))
    try:
        await _receive_echoes(client, len(pages), received, sender)
        await sender  # done already unless echoes outran the pages; re-raises its failure
    finally:
        sender.cancel()
        await asyncio.gather(sender, return_exceptions=True)
    return SessionTimes(tuple(sent), tuple(received))


async def _open(stack: AsyncExitStack, url: str) -> ChatClient:
    client = await stack.enter_async_context(ChatClient.connect(url))
    await client.handshake()
    return client


async def _all(coroutines: Sequence[Coroutine[Any, Any, T]]) -> list[T]:
    """Every result, or an ExceptionGroup with the rest cancelled at the first failure."""
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(coroutine) for coroutine in coroutines]
    return [task.result() for task in tasks]


async def measure(
    target: Target,
    sessions: int,
    pages: Sequence[bytes],
    *,
    warmup_frames: int,
    arrival: Arrival = Arrival.SPREAD,
    connect_timeout_s: float = 30.0,
) -> RoundTrips:
    """N concurrent conversations, each streaming `pages` in real time; their round trips."""
    cpu_before = target.cpu_seconds()
    async with AsyncExitStack() as stack:
        try:
            async with asyncio.timeout(connect_timeout_s):
                clients = await _all([_open(stack, target.chat_url) for _ in range(sessions)])
            start = time.monotonic() + _START_DELAY_S
            starts = [start + offset for offset in arrival.offsets(sessions)]
            times = await _all(
                [_converse(c, pages, at) for c, at in zip(clients, starts, strict=True)]
            )
        except TimeoutError:
            raise BenchError(
                f"{target.name}: {sessions} session(s) not open after {connect_timeout_s:.0f} s"
            ) from None
        except ExceptionGroup as failures:
            first = failures.exceptions[0]
            raise BenchError(f"{target.name}: a session failed: {first!r}") from first
    cpu_after = target.cpu_seconds()
    result = round_trips(target.name, times, warmup_frames)
    if cpu_before is None or cpu_after is None or cpu_after < cpu_before:
        return result
    return replace(result, cpu_seconds=cpu_after - cpu_before)
