"""One step of every slot that has work: batched Mimi encode, LM step and Mimi decode.

Live slots bring a frame of their user's audio and get a frame of the model's audio (and a text
token) back; prompting slots bring a step of their persona prompt. All slots of the batch run
through each network whatever their number in use, masked by moshi's exec mask where they have
nothing to do, so a slot's state moves only when it steps and its numbers never depend on its
neighbours. Mimi encodes only when some slot brings audio and decodes only when some slot has
model tokens to hear.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import torch
from moshi.models.compression import MimiModel

from moshi_backend.engines.base import Pcm
from moshi_backend.engines.model.generator import PersonaGenerator, SlotInput, slot_mask
from moshi_backend.engines.model.prompts import PromptObserver, PromptStep
from moshi_backend.engines.model.sampling import Sampling
from moshi_protocol.messages import FRAME_SAMPLES

_NO_AUDIO = np.zeros(0, dtype=np.float32)


@dataclass(frozen=True)
class FrameOut:
    """What a live slot's frame produced: audio (empty until the delays are filled) and text."""

    pcm: Pcm
    text_token: int | None = None


class BatchStepper:
    def __init__(
        self,
        mimi: MimiModel,
        generator: PersonaGenerator,
        observer: PromptObserver | None = None,
    ) -> None:
        self.mimi = mimi
        self.generator = generator
        self.slots = generator.slots
        self._device = generator.cache.device
        self._observer = observer

    def assign(self, slot: int, sampling: Sampling, seed: int) -> None:
        self.generator.samplers.assign(slot, sampling, seed)

    def reset(self, slots: list[int]) -> None:
        """Nothing of the conversations that were in slots survives: tokens, KV caches, Mimi."""
        self.generator.reset(slots)
        self.reset_codec(slots)

    @torch.no_grad()
    def step(
        self, live: Mapping[int, Pcm], prompting: Mapping[int, PromptStep]
    ) -> dict[int, FrameOut]:
        """One step of the given slots together; returns what each live slot produced."""
        audio_in = dict(live)
        audio_in.update(
            (slot, step.own_pcm) for slot, step in prompting.items() if step.own_pcm is not None
        )
        codes = self._encode(audio_in) if audio_in else None
        inputs = {slot: SlotInput(user=_row(codes, slot)) for slot in live}
        for slot, step in prompting.items():
            own = _row(codes, slot) if step.own_pcm is not None else step.own
            if self._observer is not None:
                assert own is not None
                self._observer(
                    step.phase, step.text, tuple(own.tolist()), tuple(step.user.tolist())
                )
            inputs[slot] = SlotInput(
                user=step.user, own=own, text=step.text, embedded=step.embedded
            )
        tokens = self.generator.step(inputs)
        self._finish_prompts(prompting)
        return self._decode({slot: tokens[slot] for slot in live})

    def _finish_prompts(self, prompting: Mapping[int, PromptStep]) -> None:
        for slot, step in prompting.items():
            if step.restore_cache is not None:
                self.generator.restore_cache(slot, step.restore_cache)
        # The voice prompt's encoding must not run into the user's: Mimi starts afresh.
        self.reset_codec([slot for slot, step in prompting.items() if step.reset_codec])

    def reset_codec(self, slots: list[int]) -> None:
        if slots:
            self.mimi.reset_streaming(slot_mask(slots, self.slots, self._device))

    def _encode(self, audio: Mapping[int, Pcm]) -> torch.Tensor:
        batch = torch.zeros(self.slots, 1, FRAME_SAMPLES, dtype=torch.float32)
        for slot, pcm in audio.items():
            batch[slot, 0] = torch.from_numpy(np.ascontiguousarray(pcm, dtype=np.float32))
        self.mimi.set_exec_mask(slot_mask(list(audio), self.slots, self._device))
        codes: torch.Tensor = self.mimi.encode(batch.to(self._device))
        return codes[:, :, 0]  # [slots, S]

    def _decode(self, tokens: Mapping[int, torch.Tensor | None]) -> dict[int, FrameOut]:
        results = {slot: FrameOut(_NO_AUDIO) for slot, made in tokens.items() if made is None}
        speaking = sorted(slot for slot, made in tokens.items() if made is not None)
        if not speaking:
            return results
        made = torch.stack([tokens[slot] for slot in speaking])  # type: ignore[misc]
        codes = torch.zeros(
            self.slots, self.generator.streams, dtype=torch.long, device=self._device
        )
        codes[speaking] = made[:, 1:]
        self.mimi.set_exec_mask(slot_mask(speaking, self.slots, self._device))
        audio = self.mimi.decode(codes[..., None])[speaking, 0].float().cpu().numpy()
        text = made[:, 0].tolist()
        for position, slot in enumerate(speaking):
            results[slot] = FrameOut(audio[position], int(text[position]))
        return results


def _row(codes: torch.Tensor | None, slot: int) -> torch.Tensor:
    assert codes is not None
    return codes[slot]
