"""Streaming generation on moshi's LMModel where any token can be provided instead of sampled.

Rows of the token cache: 0 text, 1..S the model's own audio codebooks, S+1..2S the user's
(S = n_q / 2). Each row k is delayed by delays[k] steps. At step t the caller provides what it
knows of frame t (the user's audio always; during persona prompts also the model's own audio and
text); the model reads column t-1 and predicts column t, and wherever a token was provided, the
provided one wins, both in the cache and as the depformer's conditioning for the next codebook.
This is what lets the user's real audio override the model's guess of the user (PersonaPlex's
depformer predicts both streams) and what conditions the model on a persona.
"""

from __future__ import annotations

import torch
from moshi.models.lm import LMModel
from moshi.utils.compile import CUDAGraphed

from moshi_backend.engines.model.sampling import Sampling

_UNGENERATED = -2


class PersonaGenerator:
    """One conversation's generation state; the LM's own streaming state must be fresh."""

    def __init__(self, lm: LMModel, sampling: Sampling, *, cuda_graphs: bool) -> None:
        self.lm = lm
        self.sampling = sampling
        self.streams = lm.n_q // 2
        self.delays = list(lm.delays)
        self.max_delay = max(self.delays)
        device = lm.device
        columns = self.max_delay + 3
        rows = lm.num_codebooks
        self.cache = torch.full((1, rows, columns), _UNGENERATED, dtype=torch.long, device=device)
        self.provided = torch.zeros((1, rows, columns), dtype=torch.bool, device=device)
        self.initial = lm._get_initial_token().to(device)  # [1, rows, 1]
        self.offset = 0
        # When a list, the input embedding of every model step is appended (recording a voice).
        self.keep_embeddings: list[torch.Tensor] | None = None
        self._delays_tensor = torch.tensor(self.delays, dtype=torch.long, device=device)
        graphs_off = not cuda_graphs or device.type != "cuda"
        # A new wrapper per conversation: sampling settings are baked into a captured graph.
        self._main = CUDAGraphed(self._main_from_tokens, disable=graphs_off)
        self._main_embedded = CUDAGraphed(self._main_from_embeddings, disable=graphs_off)
        self._depth = CUDAGraphed(self._depformer, disable=graphs_off)

    # The network pieces, split so that stored voice prompts can be replayed as embeddings.
    def embed(self, column: torch.Tensor) -> torch.Tensor:
        lm = self.lm
        # In the order of LMModel.forward_text and NVIDIA's PersonaPlex, the audio codebooks and
        # then the text: every addition rounds (in bfloat16 coarsely), so another order would give
        # the model another input than the reference's.
        total: torch.Tensor = lm.emb[0](column[:, lm.audio_offset])
        for index in range(1, lm.num_audio_codebooks):
            total = total + lm.emb[index](column[:, index + lm.audio_offset])
        text: torch.Tensor = lm.text_emb(column[:, 0])
        return total + text

    def _main_from_embeddings(self, embedded: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        lm = self.lm
        out = lm.transformer(embedded)
        if lm.out_norm is not None:
            out = lm.out_norm(out)
        return out, lm.text_linear(out)

    def _main_from_tokens(self, column: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self._main_from_embeddings(self.embed(column))

    def _depformer(
        self,
        text_token: torch.Tensor,
        transformer_out: torch.Tensor,
        targets: torch.Tensor,
        provided: torch.Tensor,
    ) -> torch.Tensor:
        lm = self.lm
        assert lm.depformer is not None
        previous = text_token
        sampled = []
        with lm.depformer.streaming(1):
            for codebook in range(lm.dep_q):
                logits = lm.forward_depformer(codebook, previous[:, None, None], transformer_out)
                token = self.sampling.audio_token(logits[:, 0, 0])
                sampled.append(token)
                previous = torch.where(provided[:, codebook], targets[:, codebook], token)
        return torch.stack(sampled, dim=1)

    def _provide(
        self,
        user: torch.Tensor | None,
        own: torch.Tensor | None,
        text: int | None,
    ) -> None:
        columns = self.cache.shape[2]
        rows: list[tuple[int, torch.Tensor | int]] = []
        if text is not None:
            rows.append((0, text))
        if own is not None:
            rows.extend((1 + index, own[index]) for index in range(self.streams))
        if user is not None:
            rows.extend((1 + self.streams + index, user[index]) for index in range(self.streams))
        for row, token in rows:
            column = (self.offset + self.delays[row]) % columns
            self.cache[:, row, column] = token
            self.provided[:, row, column] = True
        # Before a row's delay has elapsed there is nothing to read: the start token stands in.
        for row, delay in enumerate(self.delays):
            if self.offset <= delay:
                self.cache[:, row, self.offset % columns] = self.initial[:, row, 0]
                self.provided[:, row, self.offset % columns] = True

    @torch.no_grad()
    def step(
        self,
        user: torch.Tensor,
        own: torch.Tensor | None = None,
        text: int | None = None,
        embedded: torch.Tensor | None = None,
    ) -> torch.Tensor | None:
        """Advance one 80 ms frame; returns [1 + S] tokens (text, own audio) of a past frame.

        user, own: [S] long tensors for this frame; embedded replaces the model's input column
        (a stored voice prompt). None until the delays have been filled.
        """
        self._provide(user, own, text)
        columns = self.cache.shape[2]
        if self.offset == 0:
            # Column 0 is all start tokens; the model first reads it at the next step. A stored
            # embedding stands for that next step's input, so it goes on at once.
            self.cache[:, :, 0] = self.initial[:, :, 0]
            self.offset = 1
            if embedded is None:
                return None
            self._provide(user, own, text)
        source = (self.offset - 1) % columns
        target = self.offset % columns
        if embedded is None:
            column = self.cache[:, :, source : source + 1]
            if self.keep_embeddings is not None:
                self.keep_embeddings.append(self.embed(column).detach().clone())
            transformer_out, text_logits = self._main(column)
        else:
            transformer_out, text_logits = self._main_embedded(embedded)
        sampled_text = self.sampling.text_token(text_logits[:, 0]).view(1)
        provided = self.provided[:, :, target]
        wanted = self.cache[:, :, target]
        text_token = torch.where(provided[:, 0], wanted[:, 0], sampled_text)
        audio = self._depth(text_token, transformer_out, wanted[:, 1:], provided[:, 1:])
        dep_rows = slice(1, 1 + self.lm.dep_q)
        self.cache[:, 0, target] = text_token
        self.cache[:, dep_rows, target] = torch.where(
            provided[:, dep_rows], wanted[:, dep_rows], audio
        )
        self.provided[:, :, source] = False
        if self.offset <= self.max_delay:
            self.offset += 1
            return None
        first = self.offset - self.max_delay
        index = (first + self._delays_tensor[: 1 + self.streams]) % columns
        out = self.cache[0, : 1 + self.streams].gather(1, index[:, None])[:, 0]
        self.offset += 1
        return out

    def restore_cache(self, cache: torch.Tensor) -> None:
        """Replace the token cache (after replaying a stored voice prompt's embeddings)."""
        if cache.shape != self.cache.shape:
            raise ValueError(f"cache shape {tuple(cache.shape)} != {tuple(self.cache.shape)}")
        self.cache.copy_(cache.to(self.cache.device))
