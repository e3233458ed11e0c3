"""One conversation of a model engine: its slot, its frames through the step loop, its text."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future

import sentencepiece

from moshi_backend.engines.base import EngineError, EngineSession, Pcm, StepResult
from moshi_backend.engines.model.step_loop import StepLoop
from moshi_protocol.messages import FRAME_SAMPLES

# Far longer than any step, even a CPU's: reaching it means the step loop is stuck.
STEP_TIMEOUT_S = 60.0
_TEXT_TOKENS_SKIPPED = {0, 3}  # end-of-padding and padding: silence in the text stream


class ModelSession(EngineSession):
    def __init__(
        self,
        loop: StepLoop,
        slot: int,
        ticket: int,
        ready: Future[None],
        tokenizer: sentencepiece.SentencePieceProcessor,
        release: Callable[[int], None],
    ) -> None:
        self.slot = slot
        self._loop = loop
        self._ticket = ticket
        self._ready = ready
        self._tokenizer = tokenizer
        self._release = release
        self._closed = False
        self._lock = threading.Lock()

    @property
    def ready(self) -> Future[None]:
        return self._ready

    def step(self, frame: Pcm) -> StepResult:
        if frame.shape != (FRAME_SAMPLES,):
            # Checked here: a bad frame inside the batch would fail every slot's step.
            raise EngineError(f"a frame is {FRAME_SAMPLES} samples, not {frame.shape}")
        answer = self._loop.submit(self.slot, self._ticket, frame)
        try:
            made = answer.result(timeout=STEP_TIMEOUT_S)
        except TimeoutError:
            raise EngineError(
                f"the model did not step this conversation within {STEP_TIMEOUT_S:g} s"
            ) from None
        return StepResult(pcm=made.pcm, text=self._text(made.text_token))

    def _text(self, token: int | None) -> tuple[str, ...]:
        tokenizer = self._tokenizer
        if token is None or token in _TEXT_TOKENS_SKIPPED or token >= tokenizer.GetPieceSize():
            return ()
        if tokenizer.IsControl(token) or tokenizer.IsUnknown(token):
            return ()
        return (tokenizer.IdToPiece(token).replace("\u2581", " "),)

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        # The loop resets the slot before it runs anything else there, so it is free at once.
        self._loop.leave(self.slot, self._ticket)
        self._release(self.slot)
