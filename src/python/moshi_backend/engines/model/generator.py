"""Streaming generation on moshi's LMModel for a batch of conversation slots, any token providable.

Rows of a slot's token cache: 0 text, 1..S the model's own audio codebooks, S+1..2S the user's
(S = n_q / 2). Each row k is delayed by delays[k] steps. At step t the caller provides what it
knows of frame t (the user's audio always; during persona prompts also the model's own audio and
text); the model reads column t-1 and predicts column t, and wherever a token was provided, the
provided one wins, both in the cache and as the depformer's conditioning for the next codebook.
This is what lets the user's real audio override the model's guess of the user (PersonaPlex's
depformer predicts both streams) and what conditions the model on a persona.

Every step runs the whole batch (all slots, whatever their number in use), so the shapes never
change: one CUDA graph per network piece serves every step, and a slot's numbers do not depend on
its neighbours. Slots that do not advance are masked with moshi's exec mask (their KV caches and
positions stay as they were) and get start tokens as input, so that they compute valid nonsense.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import torch
from moshi.models.lm import LMModel
from moshi.utils.compile import CUDAGraphed

from moshi_backend.engines.model.slot_sampling import SlotSampling

_UNGENERATED = -2


@dataclass(frozen=True)
class SlotInput:
    """What a slot provides for its next frame: user and own audio [S], text, or an embedding."""

    user: torch.Tensor | None = None
    own: torch.Tensor | None = None
    text: int | None = None
    # Replaces the model's input column (a stored voice prompt): [1, dim].
    embedded: torch.Tensor | None = None


class PersonaGenerator:
    """The generation state of every slot; the LM must be streaming with one item per slot."""

    def __init__(self, lm: LMModel, samplers: SlotSampling, *, cuda_graphs: bool) -> None:
        state = lm._streaming_state
        if state is None or lm.depformer is None:
            raise ValueError("the LM must have a depformer and be streaming (one item per slot)")
        self.lm = lm
        self.samplers = samplers
        self.slots = state.batch_size
        self.streams = lm.n_q // 2
        self.delays = list(lm.delays)
        self.max_delay = max(self.delays)
        device = lm.device
        self.columns = self.max_delay + 3
        shape = (self.slots, lm.num_codebooks, self.columns)
        self.cache = torch.full(shape, _UNGENERATED, dtype=torch.long, device=device)
        self.provided = torch.zeros(shape, dtype=torch.bool, device=device)
        self.initial = lm._get_initial_token().to(device)  # [1, rows, 1]
        # Steps taken by each slot, known here without asking the device.
        self.offsets = [0] * self.slots
        # Slots whose input embedding of each step is kept (recording a stored voice).
        self.keep_embeddings: dict[int, list[torch.Tensor]] = {}
        self._delays = torch.tensor(self.delays, dtype=torch.long, device=device)
        self._no_embedding = torch.zeros(self.slots, 1, lm.dim, dtype=self.lm_dtype, device=device)
        # The depformer restarts at every step; its state stays allocated for the CUDA graphs.
        # Another generator on the same LM (recording a voice) shares it.
        self._streaming = contextlib.ExitStack()
        if not lm.depformer.is_streaming:
            self._streaming.enter_context(lm.depformer.streaming(self.slots))
        # Resets all of it: moshi's per-item mask cannot reset the depformer's KV caches, whose
        # write position is one for the whole batch (weights per step), but [1] broadcasts.
        self._whole_depformer = torch.ones(1, dtype=torch.bool, device=device)
        graphs_off = not cuda_graphs or device.type != "cuda"
        self._main = CUDAGraphed(self._main_step, disable=graphs_off)
        # One graph per codebook: sampling, with each slot's own settings, runs between them.
        self._depth = [
            CUDAGraphed(self._depformer_step(codebook), disable=graphs_off)
            for codebook in range(lm.dep_q)
        ]

    @property
    def lm_dtype(self) -> torch.dtype:
        return next(self.lm.parameters()).dtype

    def close(self) -> None:
        """Leave the depformer's streaming state (if this generator started it)."""
        self._streaming.close()

    # The network pieces --------------------------------------------------------------------

    def _main_step(
        self, column: torch.Tensor, embedded: torch.Tensor, use_embedded: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        lm = self.lm
        inputs = torch.where(use_embedded[:, None, None], embedded, input_embedding(lm, column))
        out = lm.transformer(inputs)
        if lm.out_norm is not None:
            out = lm.out_norm(out)
        return inputs, out, lm.text_linear(out)

    def _depformer_step(
        self, codebook: int
    ) -> Callable[[torch.Tensor, torch.Tensor], torch.Tensor]:
        def step(previous: torch.Tensor, transformer_out: torch.Tensor) -> torch.Tensor:
            logits: torch.Tensor = self.lm.forward_depformer(
                codebook, previous[:, None, None], transformer_out
            )
            return logits[:, 0, 0]

        return step

    # Slots ------------------------------------------------------------------------------------

    def reset(self, slots: list[int]) -> None:
        """Forget everything of the conversations in slots (token cache, KV caches, positions)."""
        if not slots:
            return
        self.cache[slots] = _UNGENERATED
        self.provided[slots] = False
        for slot in slots:
            self.offsets[slot] = 0
            self.keep_embeddings.pop(slot, None)
        self.lm.reset_streaming(slot_mask(slots, self.slots, self.cache.device))

    def restore_cache(self, slot: int, cache: torch.Tensor) -> None:
        """Replace a slot's token cache [1, rows, columns] (after a stored voice prompt)."""
        if tuple(cache.shape) != (1, *self.cache.shape[1:]):
            raise ValueError(f"cache shape {tuple(cache.shape)} != {(1, *self.cache.shape[1:])}")
        self.cache[slot].copy_(cache[0].to(self.cache.device))

    def _provide(self, slot: int, given: SlotInput) -> None:
        offset = self.offsets[slot]
        rows: list[int] = []
        values: list[torch.Tensor] = []
        if given.text is not None:
            rows.append(0)
            values.append(torch.tensor([given.text], device=self.cache.device))
        if given.own is not None:
            rows.extend(range(1, 1 + self.streams))
            values.append(given.own)
        if given.user is not None:
            rows.extend(range(1 + self.streams, 1 + 2 * self.streams))
            values.append(given.user)
        if rows:
            columns = [(offset + self.delays[row]) % self.columns for row in rows]
            self.cache[slot, rows, columns] = torch.cat(values).to(torch.long)
            self.provided[slot, rows, columns] = True
        # Before a row's delay has elapsed there is nothing to read: the start token stands in.
        starting = [row for row, delay in enumerate(self.delays) if offset <= delay]
        if starting:
            column = offset % self.columns
            self.cache[slot, starting, column] = self.initial[0, starting, 0]
            self.provided[slot, starting, column] = True

    # Stepping ---------------------------------------------------------------------------------

    @torch.no_grad()
    def step(self, inputs: Mapping[int, SlotInput]) -> dict[int, torch.Tensor | None]:
        """Advance the given slots one 80 ms frame together; the others keep their state.

        Returns, per slot, the [1 + S] tokens (text, own audio) of a past frame, or None until
        the delays have been filled.
        """
        results: dict[int, torch.Tensor | None] = {}
        stepping: dict[int, torch.Tensor | None] = {}
        for slot, given in inputs.items():
            self._provide(slot, given)
            if self.offsets[slot] == 0:
                # Column 0 is all start tokens; the model first reads it at the next step. A
                # stored embedding stands for that next step's input, so it goes on at once.
                self.cache[slot, :, 0] = self.initial[0, :, 0]
                self.offsets[slot] = 1
                if given.embedded is None:
                    results[slot] = None
                    continue
                self._provide(slot, given)
            stepping[slot] = given.embedded
        if stepping:
            results.update(self._advance(stepping))
        return results

    def _advance(
        self, stepping: Mapping[int, torch.Tensor | None]
    ) -> dict[int, torch.Tensor | None]:
        slots = sorted(stepping)
        device = self.cache.device
        active = slot_mask(slots, self.slots, self.cache.device)
        source = torch.tensor([(o - 1) % self.columns for o in self.offsets], device=device)
        target = torch.tensor([o % self.columns for o in self.offsets], device=device)
        column = _at(self.cache, source)[..., None]
        # Slots that do not advance read start tokens: never an ungenerated (-2) id.
        column = torch.where(active[:, None, None], column, self.initial)
        embedded = self._no_embedding.clone()
        for slot, vector in stepping.items():
            if vector is not None:
                embedded[slot] = vector.to(dtype=embedded.dtype).view(1, -1)
        given = [slot for slot, vector in stepping.items() if vector is not None]
        use_embedded = slot_mask(given, self.slots, self.cache.device)
        self.lm.set_exec_mask(active)
        inputs, transformer_out, text_logits = self._main(column, embedded, use_embedded)
        for slot, kept in self.keep_embeddings.items():
            if slot in stepping:
                kept.append(inputs[slot : slot + 1].detach().clone())
        provided, wanted = _at(self.provided, target), _at(self.cache, target)
        sampled_text = self.samplers.text(text_logits[:, 0], slots)
        text_token = torch.where(provided[:, 0], wanted[:, 0], sampled_text)
        audio = self._depformer(text_token, transformer_out, wanted[:, 1:], provided[:, 1:], slots)
        dep_rows = slice(1, 1 + self.lm.dep_q)
        made = torch.cat([text_token[:, None], audio], dim=1)
        made = torch.where(provided[:, : 1 + self.lm.dep_q], wanted[:, : 1 + self.lm.dep_q], made)
        written = self.cache[:, : dep_rows.stop].clone()
        written.scatter_(2, target.view(-1, 1, 1).expand(-1, dep_rows.stop, 1), made[..., None])
        self.cache[:, : dep_rows.stop] = torch.where(
            active[:, None, None], written, self.cache[:, : dep_rows.stop]
        )
        cleared = self.provided.clone()
        cleared.scatter_(2, source.view(-1, 1, 1).expand(-1, cleared.shape[1], 1), False)
        self.provided.copy_(torch.where(active[:, None, None], cleared, self.provided))
        return self._outputs(slots)

    def _depformer(
        self,
        text_token: torch.Tensor,
        transformer_out: torch.Tensor,
        targets: torch.Tensor,
        provided: torch.Tensor,
        slots: list[int],
    ) -> torch.Tensor:
        assert self.lm.depformer is not None
        self.lm.depformer.reset_streaming(self._whole_depformer)
        previous = text_token
        sampled = []
        for codebook, graphed in enumerate(self._depth):
            logits = graphed(previous, transformer_out)
            token = self.samplers.audio(logits, slots)
            sampled.append(token)
            previous = torch.where(provided[:, codebook], targets[:, codebook], token)
        return torch.stack(sampled, dim=1)

    def _outputs(self, slots: list[int]) -> dict[int, torch.Tensor | None]:
        results: dict[int, torch.Tensor | None] = {}
        ready = []
        for slot in slots:
            offset = self.offsets[slot]
            self.offsets[slot] = offset + 1
            if offset <= self.max_delay:
                results[slot] = None
            else:
                ready.append(slot)
        if ready:
            first = torch.tensor(
                [self.offsets[slot] - 1 - self.max_delay for slot in ready],
                device=self._delays.device,
            )
            index = (first[:, None] + self._delays[None, : 1 + self.streams]) % self.columns
            tokens = self.cache[ready, : 1 + self.streams].gather(2, index[..., None])[..., 0]
            for position, slot in enumerate(ready):
                results[slot] = tokens[position]
        return results


def slot_mask(slots: list[int], count: int, device: torch.device) -> torch.Tensor:
    """[count] booleans, true at slots: moshi's exec and reset masks."""
    mask = torch.zeros(count, dtype=torch.bool)
    mask[slots] = True
    return mask.to(device)


def input_embedding(lm: LMModel, column: torch.Tensor) -> torch.Tensor:
    """The LM's input for tokens [batch, rows, steps] -> [batch, steps, dim]."""
    # In the order of LMModel.forward_text and NVIDIA's PersonaPlex, the audio codebooks and then
    # the text: every addition rounds (in bfloat16 coarsely), so another order would give the
    # model another input than the reference's.
    total: torch.Tensor = lm.emb[0](column[:, lm.audio_offset])
    for index in range(1, lm.num_audio_codebooks):
        total = total + lm.emb[index](column[:, index + lm.audio_offset])
    text: torch.Tensor = lm.text_emb(column[:, 0])
    return total + text


def _at(table: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
    """table[slot, :, columns[slot]] for every slot: [slots, rows]."""
    index = columns.view(-1, 1, 1).expand(-1, table.shape[1], 1)
    return table.gather(2, index)[..., 0]
