"""Token sampling with temperature and top-k, the parameters a client chooses per conversation."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class Sampling:
    temperature: float = 0.8
    temperature_text: float = 0.7
    top_k: int = 250
    top_k_text: int = 25


def sample(logits: torch.Tensor, temperature: float, top_k: int) -> torch.Tensor:
    """One token per row of logits [..., card] -> [...] (long).

    Uses the process-wide torch generator: the engine seeds it per conversation, and it is the
    one CUDA graphs can capture.
    """
    if temperature <= 0.0:
        return logits.argmax(dim=-1)
    probs = torch.softmax(logits.float() / temperature, dim=-1)
    if top_k < probs.shape[-1]:
        probs, indices = probs.topk(top_k, dim=-1)
    else:
        indices = None
    # Exponential race (argmax of p / Exp(1)) draws from p without torch.multinomial's
    # device-to-host synchronisation.
    noise = torch.empty_like(probs).exponential_(1.0)
    choice = (probs / noise).argmax(dim=-1, keepdim=True)
    if indices is not None:
        choice = indices.gather(-1, choice)
    return choice.squeeze(-1)
