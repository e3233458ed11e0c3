from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from orchestrator.errors import ServiceFailed
from orchestrator.events import Event, Progress
from orchestrator.health.gate import Gate, wait_healthy
from orchestrator.health.probe import HealthAnswer
from orchestrator.hub import EventHub, StackState


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def monotonic(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds


class ScriptedProbe:
    def __init__(self, answers: list[HealthAnswer | None]) -> None:
        self._answers: Iterator[HealthAnswer | None] = iter(answers)
        self.calls = 0

    async def __call__(self, url: str) -> HealthAnswer | None:
        self.calls += 1
        return next(self._answers, None)


class Recorder:
    def __init__(self) -> None:
        self.events: list[Event] = []

    def on_event(self, event: Event, state: StackState) -> None:
        self.events.append(event)


def loading(progress: float) -> HealthAnswer:
    return HealthAnswer(503, {"status": "loading", "progress": progress, "model": "m"})


async def _running() -> str | None:
    return None


async def _gate(probe: ScriptedProbe, clock: FakeClock, **kwargs: Any) -> list[Event]:
    hub = EventHub()
    recorder = Recorder()
    hub.subscribe(recorder)
    task = asyncio.create_task(hub.run())
    try:
        await wait_healthy(
            Gate("moshi-backend", "http://x/health", timeout_s=30),
            probe=probe,
            exited=kwargs.pop("exited", _running),
            hub=hub,
            clock=clock,
            **kwargs,
        )
    finally:
        await hub.drain()
        task.cancel()
    return recorder.events


async def test_progress_is_published_until_ready() -> None:
    ready = HealthAnswer(200, {"status": "ready", "progress": 1.0})
    probe = ScriptedProbe([None, loading(0.25), loading(0.25), loading(0.5), ready])
    events = await _gate(probe, FakeClock())
    assert [e.fraction for e in events if isinstance(e, Progress)] == [0.25, 0.5]
    assert probe.calls == 5


async def test_model_download_and_load_counts_are_shown() -> None:
    def loading_model(stage: str, fraction: float, load: dict[str, int]) -> HealthAnswer:
        document = {"status": "loading", "stage": stage, "progress": fraction, "load": load}
        return HealthAnswer(503, {**document, "model": "nvidia/personaplex-7b-v1"})

    gib = 1024**3
    downloading = {
        "bytes_done": 3 * gib,
        "bytes_total": 16 * gib,
        "files_done": 2,
        "files_total": 4,
    }
    probe = ScriptedProbe(
        [
            loading_model("downloading", 0.13, downloading),
            loading_model("loading LM", 0.8, {"layers_loaded": 12, "layers_total": 32}),
            HealthAnswer(200, {"status": "ready", "progress": 1.0}),
        ]
    )
    messages = [e.message for e in await _gate(probe, FakeClock()) if isinstance(e, Progress)]
    assert messages == [
        "downloading nvidia/personaplex-7b-v1: 3.0 of 16.0 GiB (2/4 files)",
        "loading LM nvidia/personaplex-7b-v1: 12/32 layers",
    ]


async def test_error_status_fails_at_once() -> None:
    probe = ScriptedProbe([HealthAnswer(503, {"status": "error", "error": "CUDA out of memory"})])
    with pytest.raises(ServiceFailed, match="reports an error: CUDA out of memory"):
        await _gate(probe, FakeClock())


async def test_exit_fails_fast_without_waiting_for_the_timeout() -> None:
    clock = FakeClock()
    answers: list[str | None] = [None, None, "exited with code 2"]

    async def exited() -> str | None:
        return answers.pop(0)

    with pytest.raises(ServiceFailed, match="exited with code 2 before it became healthy"):
        await _gate(ScriptedProbe([]), clock, exited=exited)
    assert clock.now < 2


async def test_timeout_names_the_setting() -> None:
    clock = FakeClock()
    with pytest.raises(ServiceFailed, match="within 30 s.*--health-timeout"):
        await _gate(ScriptedProbe([]), clock)
    assert 30 <= clock.now < 31
