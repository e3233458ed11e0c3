"""A development engine that needs no model: it echoes the user's audio after a fixed delay."""

from __future__ import annotations

import numpy as np

from moshi_backend.engines.base import (
    Engine,
    EngineInfo,
    EngineSession,
    Pcm,
    ProgressCallback,
    StepResult,
)
from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE
from moshi_protocol.params import PERSONAPLEX_VOICES, ChatParams

# How often the echo reports itself in the text stream, in frames (5 s).
_REPORT_EVERY_FRAMES = 62


class LoopbackSession(EngineSession):
    def __init__(self, delay_ms: int, params: ChatParams) -> None:
        self._delay_ms = delay_ms
        self._params = params
        # The delay is audio time: silence first, then the user's own samples.
        self._pending: Pcm = np.zeros(delay_ms * SAMPLE_RATE // 1000, dtype=np.float32)
        self._frames = 0

    @property
    def opening_text(self) -> tuple[str, ...]:
        return (
            f"[loopback development engine: no model is loaded; your audio comes back after "
            f"{self._delay_ms} ms. Voice {self._params.voice_prompt}.]",
        )

    def step(self, frame: Pcm) -> StepResult:
        self._pending = np.concatenate([self._pending, frame.astype(np.float32, copy=False)])
        out, self._pending = self._pending[:FRAME_SAMPLES], self._pending[FRAME_SAMPLES:]
        self._frames += 1
        text: tuple[str, ...] = ()
        if self._frames % _REPORT_EVERY_FRAMES == 0:
            text = (f" [echoed {self._frames * FRAME_SAMPLES / SAMPLE_RATE:.1f} s]",)
        return StepResult(pcm=out, text=text)


class LoopbackEngine(Engine):
    def __init__(self, delay_ms: int = 0, capacity: int = 16) -> None:
        if delay_ms < 0:
            raise ValueError("delay_ms must be >= 0")
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self._delay_ms = delay_ms
        self._info = EngineInfo(
            name="loopback",
            model="none (development echo)",
            device="cpu",
            capacity=capacity,
            voices=PERSONAPLEX_VOICES,
            development=True,
            light_steps=True,
        )

    @property
    def info(self) -> EngineInfo:
        return self._info

    def load(self, progress: ProgressCallback) -> None:
        progress(1.0)

    def start_session(self, params: ChatParams) -> LoopbackSession:
        return LoopbackSession(self._delay_ms, params)
