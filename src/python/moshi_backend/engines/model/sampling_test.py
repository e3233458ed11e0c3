"""For a seed, the sampler picks the token moshi's own sampler picks, as LMGen calls it.

Pinned against the library: top-k sorts the candidates, so applying it over the whole vocabulary
draws from the same distribution as skipping it, but with another token for a given seed. A slot of
a batch draws from its own generator: seeded with s, it picks what sample_token picks after
torch.manual_seed(s), whatever the other slots draw meanwhile.
"""

from __future__ import annotations

import pytest
import torch
from moshi.utils.sampling import sample_token

from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.slot_sampling import SlotSampling

_CARD = 2048  # Mimi's codebook size, the audio vocabulary
_SEEDS = range(32)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("top_k", [1, 250, _CARD])
def test_a_seed_picks_the_token_moshi_picks(dtype: torch.dtype, top_k: int) -> None:
    logits = (3 * torch.randn(2, _CARD, generator=torch.Generator().manual_seed(1))).to(dtype)
    sampling = Sampling(temperature=0.8, temperature_text=0.7, top_k=top_k, top_k_text=top_k)
    for seed in _SEEDS:
        torch.manual_seed(seed)
        audio, text = sampling.audio_token(logits), sampling.text_token(logits)
        torch.manual_seed(seed)
        # LMGen's own calls: the logits in float32 whatever the model's dtype.
        moshi_audio = sample_token(logits.float(), use_sampling=True, temp=0.8, top_k=top_k)
        moshi_text = sample_token(logits.float(), use_sampling=True, temp=0.7, top_k=top_k)
        assert torch.equal(audio, moshi_audio), f"audio, seed {seed}"
        assert torch.equal(text, moshi_text), f"text, seed {seed}"


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("top_k", [1, 250, _CARD])
def test_each_slot_draws_what_sample_token_draws_after_its_seed(
    dtype: torch.dtype, top_k: int
) -> None:
    params = [
        Sampling(top_k=top_k, top_k_text=top_k),
        Sampling(temperature=0.5, temperature_text=1.1, top_k=top_k, top_k_text=top_k),
        Sampling(top_k=top_k, top_k_text=top_k),  # the same as slot 0's: one batch with it
    ]
    seeds = [5, 6, 5]
    slots = SlotSampling(len(params), torch.device("cpu"))
    for slot, seed in enumerate(seeds):
        slots.assign(slot, params[slot], seed)
    noise = torch.Generator().manual_seed(2)
    drawn: list[tuple[torch.Tensor, torch.Tensor, list[int], torch.Tensor, torch.Tensor]] = []
    for index in range(6):
        text, audio = (3 * torch.randn(2, 3, _CARD, generator=noise)).to(dtype)
        # Slot 1 is left out of every other round, as a slot that does not advance in a step.
        who = [0, 1, 2] if index % 2 == 0 else [0, 2]
        drawn.append((text, audio, who, slots.text(text, who), slots.audio(audio, who)))
    for slot, seed in enumerate(seeds):
        torch.manual_seed(seed)
        sampling = params[slot]
        for text, audio, who, got_text, got_audio in drawn:
            if slot not in who:
                continue
            row = slice(slot, slot + 1)
            expected_text = sample_token(text[row].float(), True, sampling.temperature_text, top_k)
            expected_audio = sample_token(audio[row].float(), True, sampling.temperature, top_k)
            assert int(got_text[slot]) == int(expected_text[0]), f"slot {slot} text"
            assert int(got_audio[slot]) == int(expected_audio[0]), f"slot {slot} audio"
