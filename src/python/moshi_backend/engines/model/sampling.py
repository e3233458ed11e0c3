"""Token sampling with the parameters a client chooses per conversation, by moshi's own sampler."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from moshi.utils.sampling import sample_token


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    temperature_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25

    def audio_token(self, logits: torch.Tensor) -> torch.Tensor:
        """One audio token per row of logits [..., card] -> [...] (long)."""
        return _sample(logits, self.temperature, self.top_k)

    def text_token(self, logits: torch.Tensor) -> torch.Tensor:
        """One text token per row of logits [..., text card] -> [...] (long)."""
        return _sample(logits, self.temperature_text, self.top_k_text)


def _sample(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    # As moshi's LMGen calls it, so that a seed picks the reference's token: in float32 whatever
    # the model's dtype, top-k applied even over the whole vocabulary. Its draw (the argmax of
    # p / Exp(1)) uses the process-wide generator, which the engine seeds per conversation and
    # CUDA graphs capture, and needs no device-to-host synchronisation.
    token: torch.Tensor = sample_token(
        logits.float(), use_sampling=True, temp=temperature, top_k=top_k
    )
    return token
