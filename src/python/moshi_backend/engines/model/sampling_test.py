"""For a seed, the sampler picks the token moshi's own sampler picks, as LMGen calls it.

Pinned against the library: top-k sorts the candidates, so applying it over the whole vocabulary
draws from the same distribution as skipping it, but with another token for a given seed.
"""

from __future__ import annotations

import pytest
import torch
from moshi.utils.sampling import sample_token

from moshi_backend.engines.model.sampling import Sampling

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
