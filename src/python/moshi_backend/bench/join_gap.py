"""Does joining stall the others? A live conversation's output gaps while three more join.

The real server runs in this process on a model engine with 4 slots: a checkpoint (a directory or
hub id, `--repo`, normally on a GPU) or, with `--tiny`, the tests' tiny checkpoint on the CPU. One
client talks at a microphone's pace; after a baseline period three more connect one after another
(each runs its persona prompt, then talks too). Printed: the largest and the p99 gap between the
live client's audio messages in the baseline and while the others join, and each joiner's time
from connect to handshake. The frame period is 80 ms: gaps near it mean nobody waited.

    ./pants run src/python/moshi_backend/bench/join_gap.py -- --tiny
    ./pants run src/python/moshi_backend/bench/join_gap.py -- --repo nvidia/personaplex-7b-v1
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from moshi_backend.engines.model.architecture import PERSONAPLEX_7B_LM, PERSONAPLEX_REPO
from moshi_backend.engines.model.engine_config import ModelEngineConfig
from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.testing_checkpoints import (
    TINY_VOICE,
    cpu_engine,
    voice_audio,
    write_tiny_repository,
)
from moshi_backend.testing import BackendInLoop, backend_in_loop, ogg_pages
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import MessageKind

_SLOTS = 4
_JOINERS = 3


class Talker:
    """A client that talks at a microphone's pace and notes when audio comes back."""

    def __init__(self, client: ChatClient, pages: list[bytes]) -> None:
        self.client = client
        self.heard_at: list[float] = []
        self._tasks = [
            asyncio.create_task(self._talk(pages)),
            asyncio.create_task(self._listen()),
        ]

    async def _talk(self, pages: list[bytes]) -> None:
        started = time.monotonic()
        for index, page in enumerate(pages):
            await self.client.send_audio(page)
            # Paced by the clock, not by sleeps that add up.
            await asyncio.sleep(max(started + (index + 1) * 0.08 - time.monotonic(), 0))

    async def _listen(self) -> None:
        while True:
            if (await self.client.receive(timeout_s=120)).kind is MessageKind.AUDIO:
                self.heard_at.append(time.monotonic())

    def gaps_ms(self, start: float, end: float) -> list[float]:
        times = [at for at in self.heard_at if start <= at <= end]
        return [(b - a) * 1000 for a, b in itertools.pairwise(times)]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


def describe(gaps: list[float]) -> str:
    if not gaps:
        return "no audio"
    return f"max {max(gaps):7.1f} ms, p99 {np.percentile(gaps, 99):7.1f} ms ({len(gaps)} gaps)"


async def measure(backend: BackendInLoop, voice: str, baseline_s: float) -> None:
    query = {"voice_prompt": voice, "text_prompt": "You are a friendly teacher."}
    # Encoded beforehand, off the loop: the server shares this event loop.
    speech = voice_audio(seconds=4 * baseline_s + 120, pitch_hz=150.0)
    pages = await asyncio.to_thread(ogg_pages, speech)
    talkers: list[Talker] = []
    handshakes: list[float] = []
    async with contextlib.AsyncExitStack() as clients:
        connect = ChatClient.connect(backend.chat_url, {**query, "seed": "0"})
        live_client = await clients.enter_async_context(connect)
        await live_client.handshake(timeout_s=600)
        live = Talker(live_client, pages)
        talkers.append(live)
        try:
            marks = [time.monotonic()]
            await asyncio.sleep(baseline_s)
            marks.append(time.monotonic())
            for index in range(_JOINERS):
                connected = time.monotonic()
                connect = ChatClient.connect(backend.chat_url, {**query, "seed": str(index + 1)})
                client = await clients.enter_async_context(connect)
                await client.handshake(timeout_s=600)
                handshakes.append(time.monotonic() - connected)
                talkers.append(Talker(client, pages))
            marks.append(time.monotonic())
            await asyncio.sleep(baseline_s)
            marks.append(time.monotonic())
        finally:
            for talker in talkers:
                await talker.stop()
    periods = ["alone", f"while {_JOINERS} join", f"{_SLOTS} talking"]
    for name, (start, end) in zip(periods, itertools.pairwise(marks), strict=True):
        print(f"live conversation, {name:<15} {describe(live.gaps_ms(start, end))}")
    for index, seconds in enumerate(handshakes, start=1):
        print(f"joiner {index}: connect to handshake {seconds:.2f} s")
    registry = backend.server.metrics.registry
    steps = registry.get_sample_value("moshi_step_seconds_count") or 0
    total = registry.get_sample_value("moshi_step_seconds_sum") or 0
    late = registry.get_sample_value("moshi_frames_late_total") or 0
    mean_ms = 1000 * total / max(steps, 1)
    print(f"model steps: {steps:.0f}, mean {mean_ms:.1f} ms; frames answered late: {late:.0f}")


def engine_for(args: argparse.Namespace, scratch: Path) -> tuple[ModelEngine, str]:
    if args.tiny:
        repository = write_tiny_repository(scratch / "tiny")
        return cpu_engine(repository, max_sessions=_SLOTS), TINY_VOICE
    config = ModelEngineConfig(
        name="personaplex",
        repo=args.repo,
        default_lm=PERSONAPLEX_7B_LM,
        persona=True,
        device=args.device,
        max_sessions=_SLOTS,
    )
    return ModelEngine(config), args.voice


async def run(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        engine, voice = engine_for(args, Path(scratch))
        async with backend_in_loop(engine) as backend:
            status, health = await backend.get_json("/health")
            if status != 200:
                raise SystemExit(f"join_gap: the engine did not load: {health['error']}")
            print(f"{health['model']} on {health['device']}, {_SLOTS} slots, voice {voice}")
            await measure(backend, voice, args.baseline_s)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="the tests' tiny checkpoint, CPU")
    parser.add_argument("--repo", default=PERSONAPLEX_REPO, help="hub id or directory")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--voice", default="NATF2.pt")
    parser.add_argument("--baseline-s", type=float, default=5.0)
    asyncio.run(run(parser.parse_args(argv)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
