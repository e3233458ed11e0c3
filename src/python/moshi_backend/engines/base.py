"""What the server needs from a streaming speech model; engines implement it.

Every method here may block (model compute, file I/O): the server calls them from worker threads,
never on the event loop. What takes long without computing (a new conversation's persona prompt
waiting for its turns in a shared step loop) is a future instead, which the server awaits.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from concurrent.futures import Future
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


class StepObserver(Protocol):
    def __call__(self, batch_size: int, seconds: float, late_frames: int) -> None:
        """One model step: the conversations it advanced, its duration, frames answered late."""


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
    # The longest conversation unless MOSHI_MAX_CONVERSATION_S says otherwise; None: no limit.
    max_conversation_s: float | None = None
    # A session's `ready` waits for its persona prompt to run through the model (PersonaPlex).
    persona_prompts: bool = False


@dataclass(frozen=True)
class StepResult:
    """What one 80 ms input frame produced: output audio (may be empty) and text pieces."""

    pcm: Pcm
    text: tuple[str, ...] = field(default_factory=tuple)


class EngineSession(ABC):
    """One conversation: it holds a slot of its engine until closed."""

    @property
    def ready(self) -> Future[None]:
        """Done once the session takes audio (its persona conditioned); fails with EngineError.

        close() before then abandons the conditioning and frees the slot all the same.
        """
        done: Future[None] = Future()
        done.set_result(None)
        return done

    @property
    def opening_text(self) -> tuple[str, ...]:
        """Text pieces sent right after the handshake."""
        return ()

    @abstractmethod
    def step(self, frame: Pcm) -> StepResult:
        """Consume exactly one frame of FRAME_SAMPLES float32 samples at 24 kHz (once ready).

        Blocks until the model has stepped it; EngineError when it cannot.
        """

    def close(self) -> None:  # noqa: B027 - optional hook, most sessions hold nothing
        """Release what the session holds, its slot at once; safe to call more than once."""


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
        """Claim a conversation slot and start conditioning it; returns without waiting for it.

        EngineError when the parameters cannot be served or every slot is taken.
        """

    def observe_steps(self, observer: StepObserver) -> None:  # noqa: B027 - optional
        """Have observer called after every model step (engines that step in batches)."""

    def close(self) -> None:  # noqa: B027 - optional hook, engines without threads hold nothing
        """Stop what the engine runs in the background; open sessions fail from then on."""
