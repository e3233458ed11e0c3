"""Every conversation slot samples with its own parameters from its own random stream.

A conversation must not depend on the others that share its batch: the same seed gives the same
tokens alone or beside others. So each slot draws from a torch.Generator of its own, seeded by its
conversation, never from the process-wide one. The softmax and top-k of the slots that share
parameters run as one batch (row by row the same numbers as one row alone); only the noise of the
draw comes slot by slot, as many numbers from the slot's stream as sample_token would take.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from moshi_backend.engines.model.sampling import Sampling, candidates, draw_rows


class SlotSampling:
    def __init__(self, slots: int, device: torch.device) -> None:
        self._params = [Sampling()] * slots
        self._generators = [torch.Generator(device=device) for _ in range(slots)]
        for generator in self._generators:
            generator.manual_seed(0)

    def assign(self, slot: int, sampling: Sampling, seed: int) -> None:
        """A new conversation in slot: its parameters, and its stream from the start of seed."""
        self._params[slot] = sampling
        self._generators[slot].manual_seed(seed)

    def text(self, logits: torch.Tensor, slots: Sequence[int]) -> torch.Tensor:
        """A text token for each of slots from logits [all slots, text card] -> [all slots]."""
        return self._sample(logits, slots, text=True)

    def audio(self, logits: torch.Tensor, slots: Sequence[int]) -> torch.Tensor:
        """An audio token for each of slots from logits [all slots, card] -> [all slots]."""
        return self._sample(logits, slots, text=False)

    def _sample(self, logits: torch.Tensor, slots: Sequence[int], *, text: bool) -> torch.Tensor:
        groups: dict[tuple[float, int], list[int]] = {}
        for slot in slots:
            params = self._params[slot]
            key = (
                (params.temperature_text, params.top_k_text)
                if text
                else (params.temperature, params.top_k)
            )
            groups.setdefault(key, []).append(slot)
        # Rows of slots that are not asked for stay 0: a valid token that nothing reads.
        tokens = torch.zeros(logits.shape[0], dtype=torch.long, device=logits.device)
        for (temperature, top_k), members in groups.items():
            rows = torch.tensor(members, device=logits.device)
            probs, indices = candidates(logits[rows], temperature, top_k)
            generators = [self._generators[slot] for slot in members]
            tokens[rows] = draw_rows(probs, indices, generators)
        return tokens
