"""What the server needs from a streaming speech model; engines implement it.

Every method here blocks (model compute, file I/O): the server calls them from worker threads,
never on the event loop.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from moshi_protocol.params import ChatParams

Pcm = npt.NDArray[np.float32]


class ProgressCallback(Protocol):
    def __call__(
        self, fraction: float, stage: str = "", detail: Mapping[str, int] | None = None
    ) -> None:
        """fraction of the whole load in 0..1; stage and counts (files, bytes, layers)."""


class EngineError(Exception):
    """An engine cannot be created, loaded or run; the message is meant for the user."""


@dataclass(frozen=True)
class EngineInfo:
    name: str
    model: str
    device: str
    capacity: int
    voices: tuple[str, ...]
    # A development engine is no model: /health and the first text message say so.
    development: bool = False
    # A step takes well under a millisecond (no model): running it on the event loop costs less
    # than handing each 80 ms frame to a worker thread. Model engines leave this False.
    light_steps: bool = False


@dataclass(frozen=True)
class StepResult:
    """What one 80 ms input frame produced: output audio (may be empty) and text pieces."""

    pcm: Pcm
    text: tuple[str, ...] = field(default_factory=tuple)


class EngineSession(ABC):
    """One conversation, already conditioned on its persona."""

    @property
    def opening_text(self) -> tuple[str, ...]:
        """Text pieces sent right after the handshake."""
        return ()

    @abstractmethod
    def step(self, frame: Pcm) -> StepResult:
        """Consume exactly one frame of FRAME_SAMPLES float32 samples at 24 kHz."""

    def close(self) -> None:  # noqa: B027 - optional hook, most sessions hold nothing
        """Release what the session holds."""


class Engine(ABC):
    @property
    @abstractmethod
    def info(self) -> EngineInfo:
        ...

    @abstractmethod
    def load(self, progress: ProgressCallback) -> None:
        """Load weights and warm up, reporting progress from 0.0 to 1.0."""

    @abstractmethod
    def start_session(self, params: ChatParams) -> EngineSession:
        """Run the persona prompts; returns once the session can take audio."""
