"""A slot's conversation is the same whatever its neighbours do: masked, reset, stepped beside.

On the real moshi modules (tiny shapes, random weights): the exec mask must really keep a slot's
KV caches, positions and Mimi state when it does not step, and a reset must leave nothing of the
slot's previous conversation.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from moshi.modules.streaming import StreamingModule
from moshi.modules.transformer import RingKVCache
from moshi.utils.compile import no_compile

from moshi_backend.engines.model.batch_step import BatchStepper, FrameOut
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.prompts import Phase, PromptStep
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.slot_sampling import SlotSampling
from moshi_backend.engines.model.testing_checkpoints import TINY_MIMI, tiny_lm, voice_audio
from moshi_protocol.messages import FRAME_SAMPLES
from moshi_protocol.opus import Pcm

_SLOTS = 3
_FRAMES = 8


@pytest.fixture(scope="module")
def models() -> Iterator[tuple[LMModel, MimiModel]]:
    torch.manual_seed(0)
    with no_compile(), torch.no_grad():
        lm = LMModel(device="cpu", dtype=torch.float32, **tiny_lm()).eval()
        mimi = loaders.get_mimi(None, TINY_MIMI, device="cpu", num_codebooks=lm.n_q // 2)
        yield lm, mimi


class Batch:
    """A fresh batch of slots on the shared models (as a new process would have them)."""

    def __init__(self, models: tuple[LMModel, MimiModel]) -> None:
        lm, mimi = models
        self._states = [lm.streaming(_SLOTS), mimi.streaming(_SLOTS)]
        self.generator = PersonaGenerator(
            lm, SlotSampling(_SLOTS, torch.device("cpu")), cuda_graphs=False
        )
        self.stepper = BatchStepper(mimi, self.generator)
        for slot in range(_SLOTS):
            self.stepper.assign(slot, Sampling(), seed=100 + slot)

    def close(self) -> None:
        self.generator.close()
        for state in self._states:
            state.close()


def frames(pitch_hz: float) -> list[Pcm]:
    pcm = voice_audio(seconds=_FRAMES * 0.08, pitch_hz=pitch_hz)
    return [pcm[i * FRAME_SAMPLES : (i + 1) * FRAME_SAMPLES] for i in range(_FRAMES)]


def same(ours: list[FrameOut], theirs: list[FrameOut]) -> bool:
    return len(ours) == len(theirs) and all(
        np.array_equal(a.pcm, b.pcm) and a.text_token == b.text_token
        for a, b in zip(ours, theirs, strict=True)
    )


def slot_state(module: StreamingModule[Any], slot: int) -> list[torch.Tensor]:
    """A slot's part of every streaming state below module: KV caches, positions, buffers."""
    parts = []
    for _, state in sorted(module.get_streaming_state().items()):
        for name, value in sorted(vars(state).items()):
            if isinstance(value, RingKVCache):
                parts += [value.cache[:, slot], value.end_offset[slot]]
            elif isinstance(value, torch.Tensor) and name != "exec_mask" and value.dim() > 0:
                assert value.shape[0] == _SLOTS, name
                parts.append(value[slot])
    return [part.clone() for part in parts]


def alone(
    models: tuple[LMModel, MimiModel], slot: int, audio: list[Pcm]
) -> tuple[list[FrameOut], list[torch.Tensor]]:
    """What slot makes of audio with the other slots idle, and its state after it."""
    batch = Batch(models)
    try:
        made = [batch.stepper.step({slot: frame}, {})[slot] for frame in audio]
        return made, [*slot_state(models[0], slot), *slot_state(models[1], slot)]
    finally:
        batch.close()


def test_a_slot_that_does_not_step_keeps_its_state(models: tuple[LMModel, MimiModel]) -> None:
    mine, theirs = frames(140.0), frames(230.0) * 3
    reference, reference_state = alone(models, 0, mine)
    assert sum(frame.pcm.size for frame in reference) >= (_FRAMES - 2) * FRAME_SAMPLES
    batch = Batch(models)
    try:
        sine = torch.tensor([1, 2, 3, 4, 5, 6, 7, 8])
        prompt = PromptStep(Phase.TEXT, 7, sine, own=sine)
        got, pending = [], list(mine)
        for tick, frame in enumerate(theirs):
            # Slot 0 steps on every third tick only; slot 1 is live throughout, slot 2 prompting.
            live = {1: frame}
            if tick % 3 == 0:
                live[0] = pending.pop(0)
            made = batch.stepper.step(live, {2: prompt})
            if 0 in live:
                got.append(made[0])
            if not pending:  # ending on a step of slot 0: what masked steps wrote is overwritten
                break
        state = [*slot_state(models[0], 0), *slot_state(models[1], 0)]
    finally:
        batch.close()
    assert same(got, reference)
    assert len(state) == len(reference_state)
    assert all(torch.equal(a, b) for a, b in zip(state, reference_state, strict=True))


def test_a_reset_slot_is_a_fresh_one(models: tuple[LMModel, MimiModel]) -> None:
    first, second = frames(170.0), frames(120.0)
    fresh, _ = alone(models, 1, second)
    batch = Batch(models)
    try:
        for frame in first:
            batch.stepper.step({0: frame, 1: frame}, {})
        batch.stepper.reset([1])
        batch.stepper.assign(1, Sampling(), seed=101)
        reused = [
            batch.stepper.step({0: frame, 1: again}, {})[1]
            for frame, again in zip(first, second, strict=True)
        ]
    finally:
        batch.close()
    assert same(reused, fresh)
