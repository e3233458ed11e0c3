"""The generator's model input is moshi's own, bit for bit, in both dtypes the engine runs in.

Pinned against the library, not against ourselves: every addition of the input sum rounds (in
bfloat16 coarsely), so summing the embeddings in another order than moshi's LMModel (and NVIDIA's
PersonaPlex) gives another input and, steps later, other tokens.
"""

from __future__ import annotations

import pytest
import torch
from moshi.models import loaders
from moshi.models.lm import LMModel
from moshi.utils.compile import no_compile

from moshi_backend.engines.model.generator import input_embedding
from moshi_backend.engines.model.testing_checkpoints import tiny_lm

_STEPS = 16


def transformer_input(lm: LMModel, sequence: torch.Tensor) -> torch.Tensor:
    """What LMModel.forward_text hands its transformer for these tokens."""
    seen: list[torch.Tensor] = []
    hook = lm.transformer.register_forward_pre_hook(
        lambda _module, args: seen.append(args[0].clone())
    )
    try:
        # Compiling would need a C++ toolchain; the engine does not compile on a CPU either.
        with no_compile():
            lm.forward_text(sequence)
    finally:
        hook.remove()
    return seen[0]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@torch.no_grad()
def test_the_input_embedding_is_moshis_own(dtype: torch.dtype) -> None:
    torch.manual_seed(0)
    lm = loaders.get_moshi_lm(None, lm_kwargs=tiny_lm(), device="cpu", dtype=dtype)
    text = torch.randint(0, lm.text_card, (1, 1, _STEPS))
    audio = torch.randint(0, lm.card, (1, lm.num_audio_codebooks, _STEPS))
    sequence = torch.cat([text, audio], dim=1)
    ours = input_embedding(lm, sequence)
    assert ours.dtype == dtype
    assert torch.equal(ours, transformer_input(lm, sequence))
