"""Token sampling with the parameters a client chooses per conversation, as moshi samples.

`sample` is moshi 0.2.13's `sample_token` as LMGen calls it (float32 logits, top-k always applied,
the draw done by moshi's own `multinomial`: the argmax of p / Exp(1)), with the one thing
sample_token lacks: a generator argument, so that every conversation of a batch draws from its own
seeded stream. A generator seeded with s draws what sample_token draws after torch.manual_seed(s);
without one, the process-wide generator is used, exactly as sample_token does.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from moshi.utils.sampling import multinomial


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    temperature_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25

    def __post_init__(self) -> None:
        # sample_token's other branches (greedy, no top-k) are for callers that sample without a
        # temperature; /api/chat's parameters always have one, and a top-k of at least 1.
        if (
            min(self.temperature, self.temperature_text) <= 0
            or min(self.top_k, self.top_k_text) < 1
        ):
            raise ValueError(f"temperatures must be > 0 and top-k values >= 1: {self}")

    def audio_token(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One audio token per row of logits [..., card] -> [...] (long)."""
        return sample(logits, self.temperature, self.top_k, generator)

    def text_token(
        self, logits: torch.Tensor, generator: torch.Generator | None = None
    ) -> torch.Tensor:
        """One text token per row of logits [..., text card] -> [...] (long)."""
        return sample(logits, self.temperature_text, self.top_k_text, generator)


def sample(
    logits: torch.Tensor,
    temperature: float,
    top_k: int,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """sample_token(logits.float(), use_sampling=True, temp=temperature, top_k=top_k), seedable."""
    probs, indices = candidates(logits, temperature, top_k)
    return draw(probs, indices, generator)


def candidates(
    logits: torch.Tensor, temperature: float, top_k: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top-k probabilities [..., k] at temperature and their token ids [..., k]."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    top, indices = torch.topk(probs, min(top_k, probs.shape[-1]), dim=-1)
    return top, indices


def draw(
    probs: torch.Tensor, indices: torch.Tensor, generator: torch.Generator | None
) -> torch.Tensor:
    """One token id per row of candidates [..., k] -> [...], from generator's stream."""
    picked = multinomial(probs, num_samples=1, generator=generator)
    token: torch.Tensor = indices.gather(-1, picked)[..., 0]
    return token


def draw_rows(
    probs: torch.Tensor, indices: torch.Tensor, generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """draw() of each row of candidates [rows, k] from its own generator -> [rows].

    multinomial's arithmetic (the argmax of p / Exp(1)) done once for all rows; only the noise is
    drawn row by row, k numbers from each row's stream, as draw() takes them.
    """
    noise = torch.empty_like(probs)
    for row, generator in enumerate(generators):
        noise[row].exponential_(1, generator=generator)
    picked = (probs / noise).argmax(dim=-1, keepdim=True)
    token: torch.Tensor = indices.gather(-1, picked)[..., 0]
    return token
