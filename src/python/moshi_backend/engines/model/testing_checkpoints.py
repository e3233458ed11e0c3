"""Tiny checkpoints in the real repositories' file layout, for tests and CPU experiments.

Everything is made here: random weights in safetensors, a config.json in moshi's format, a
sentencepiece model trained on a few sentences, and voices.tgz with an audio voice prompt.
"""

from __future__ import annotations

import io
import json
import re
import tarfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import sentencepiece
import sphn
import torch
from moshi.models import loaders
from moshi.models.lm import LMModel
from safetensors.torch import save_file

from moshi_backend.engines.model import prompts
from moshi_backend.engines.model.architecture import (
    CONFIG,
    LM_WEIGHTS,
    MIMI_WEIGHTS,
    MOSHI_7B_LM,
    PERSONAPLEX_7B_LM,
    TEXT_TOKENIZER,
    VOICES_ARCHIVE,
)
from moshi_backend.engines.model.batch_step import BatchStepper
from moshi_backend.engines.model.engine_config import ModelEngineConfig
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.engines.model.slot_sampling import SlotSampling
from moshi_protocol.messages import SAMPLE_RATE
from moshi_protocol.opus import Pcm

TINY_VOICE = "TINYF0.wav"
TEXT_CARD = 96

TINY_MIMI: dict[str, Any] = {
    "sample_rate": SAMPLE_RATE,
    "channels": 1,
    "frame_rate": 12.5,
    "seanet": {
        "channels": 1,
        "dimension": 32,
        "causal": True,
        "n_filters": 2,
        "n_residual_layers": 1,
        "activation": "ELU",
        "compress": 2,
        "dilation_base": 2,
        "disable_norm_outer_blocks": 0,
        "kernel_size": 7,
        "residual_kernel_size": 3,
        "last_kernel_size": 3,
        "norm": "none",
        "pad_mode": "constant",
        "ratios": [8, 6, 5, 4],
        "true_skip": True,
    },
    "quantizer": {
        "dimension": 16,
        "n_q": 8,
        "bins": 2048,
        "input_dimension": 32,
        "output_dimension": 32,
    },
    "transformer": {
        "d_model": 32,
        "num_heads": 2,
        "num_layers": 1,
        "causal": True,
        "layer_scale": 0.01,
        "context": 250,
        "conv_layout": True,
        "max_period": 10000,
        "gating": "none",
        "norm": "layer_norm",
        "positional_embedding": "rope",
        "dim_feedforward": 64,
        "input_dimension": 32,
        "output_dimensions": [32],
    },
}


def tiny_lm(dep_q: int = 16, dim: int = 32) -> dict[str, Any]:
    """Moshi 7B's layout (17 streams, delays, 2048-token audio) at toy width and depth."""
    return {
        **MOSHI_7B_LM,
        "dim": dim,
        "text_card": TEXT_CARD,
        "dep_q": dep_q,
        "num_heads": 2,
        "num_layers": 2,
        "hidden_scale": 2,
        "context": 200,
        "depformer_dim": 16,
        "depformer_dim_feedforward": 32,
        "depformer_num_heads": 1,
        "depformer_num_layers": 1,
    }


_SENTENCES = [
    "<system> You are a wise and friendly teacher. Answer questions or provide advice. <system>",
    "You enjoy having a good conversation about technology and science.",
    "Hello, how are you today? I am fine, thank you for asking.",
    "Your name is Jane and you work for a small company that builds voice apps.",
    "Tell me about the weather, the mountains, the sea and the city at night.",
]


def train_tokenizer(path: Path) -> None:
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(_SENTENCES * 20),
        model_writer=model,
        vocab_size=64,
        model_type="unigram",
        unk_id=0,
        bos_id=1,
        eos_id=2,
        pad_id=3,
        user_defined_symbols=["<system>"],
        minloglevel=2,
    )
    path.write_bytes(model.getvalue())


def voice_audio(seconds: float = 1.5, pitch_hz: float = 180.0) -> Pcm:
    """A voiced, vowel-like signal: harmonics of pitch_hz with a slow vibrato."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    f0 = pitch_hz * (1 + 0.02 * np.sin(2 * np.pi * 5 * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLE_RATE
    pcm = np.zeros_like(t)
    for harmonic in range(1, 8):
        pcm += np.sin(harmonic * phase) / harmonic
    return (0.2 * pcm).astype(np.float32)


def write_tiny_repository(
    root: Path,
    *,
    dep_q: int = 16,
    seed: int = 0,
    lm_overrides: dict[str, Any] | None = None,
    legacy_layout: bool = False,
) -> Path:
    """A directory laid out like nvidia/personaplex-7b-v1 (dep_q 16) or a Moshi repository.

    legacy_layout writes the LM as moshi < 0.2 did, with the depformer of an 8-step Moshi: the
    attention projections of all steps stacked in one tensor, and only steps 0-7 stored.
    """
    root.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(seed)
    lm_config = tiny_lm(dep_q)
    (root / CONFIG).write_text(json.dumps({**lm_config, "mimi_config": TINY_MIMI}, indent=1))
    weights_config = {**lm_config, **(lm_overrides or {})}
    lm = LMModel(device="cpu", dtype=torch.float32, **weights_config)
    lm_state = _contiguous(lm.state_dict())
    if legacy_layout:
        lm_state = _legacy(lm_state)
    save_file(lm_state, str(root / LM_WEIGHTS))
    mimi_state = _contiguous(loaders.get_mimi(None, TINY_MIMI, device="cpu").state_dict())
    for name, tensor in mimi_state.items():
        # Fresh codebooks are all zeros (they are learnt by k-means): every token would decode
        # to the same sound. Random code words make tokens audible.
        if name.endswith("_codebook.embedding_sum"):
            tensor.normal_()
        elif name.endswith("_codebook._initialized"):
            tensor.fill_(1.0)
    save_file(mimi_state, str(root / MIMI_WEIGHTS))
    train_tokenizer(root / TEXT_TOKENIZER)
    _write_voices(root / VOICES_ARCHIVE)
    return root


_PER_STEP = re.compile(r"(gating|linears|depformer_in|depformer_emb)\.(\d+)\.")
_PROJECTION = re.compile(r"^(.*\.self_attn\.)(in|out)_projs\.(\d+)\.weight$")


def _legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    stacks: dict[str, dict[int, torch.Tensor]] = {}
    legacy: dict[str, torch.Tensor] = {}
    for name, tensor in state.items():
        per_step = _PER_STEP.search(name)
        projection = _PROJECTION.match(name)
        if projection is not None:
            target = projection.group(1) + (
                "in_proj_weight" if projection.group(2) == "in" else "out_proj.weight"
            )
            stacks.setdefault(target, {})[int(projection.group(3))] = tensor
        elif per_step is None or int(per_step.group(2)) < 8:
            legacy[name] = tensor
    for target, steps in stacks.items():
        kept = [steps[step] for step in sorted(steps) if step < 8]
        legacy[target] = torch.cat(kept, dim=0).contiguous()
    return legacy


def _contiguous(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {name: tensor.detach().clone().contiguous() for name, tensor in state.items()}


def _write_voices(archive: Path) -> None:
    wav = io.BytesIO()
    staging = archive.parent / ".voice.wav"
    sphn.write_wav(str(staging), voice_audio(), SAMPLE_RATE)
    wav.write(staging.read_bytes())
    staging.unlink()
    with tarfile.open(archive, "w:gz") as tar:
        info = tarfile.TarInfo(f"voices/{TINY_VOICE}")
        info.size = len(wav.getvalue())
        wav.seek(0)
        tar.addfile(info, wav)


def cpu_engine(
    repository: Path | str,
    *,
    persona: bool = True,
    observer: prompts.PromptObserver | None = None,
    **config: Any,
) -> ModelEngine:
    """A PersonaPlex (or, persona=False, Moshi) engine on the CPU, as the factory makes it."""
    settings = ModelEngineConfig(
        name="personaplex" if persona else "moshi",
        repo=str(repository),
        default_lm=PERSONAPLEX_7B_LM if persona else MOSHI_7B_LM,
        persona=persona,
        device="cpu",
        **config,
    )
    return ModelEngine(settings, prompt_observer=observer)


def ignore_progress(
    fraction: float, stage: str = "", detail: Mapping[str, int] | None = None
) -> None:
    """A load progress callback for tests that do not look at progress."""


def record_voice(engine: ModelEngine, audio: Path, target: Path) -> None:
    """Store an audio voice prompt as PersonaPlex's .pt voices are stored.

    The file holds the model's input embedding at each step of the voice prompt and the token
    cache after it: replaying it conditions the model without running Mimi. It runs the voice
    prompt in slot 0 of the engine's own (loaded) models beside its step loop, so no conversation
    may be open meanwhile; slot 0 is reset before and after.
    """
    voice = prompts.load_voice(audio)
    assert isinstance(voice, prompts.AudioVoice)
    loaded = engine.loaded
    slots = loaded.slots
    generator = PersonaGenerator(
        loaded.lm, SlotSampling(slots, torch.device("cpu")), cuda_graphs=False
    )
    stepper = BatchStepper(loaded.mimi, generator)
    tokens = prompts.PromptTokens.for_generator(generator, loaded.lm.text_padding_token_id)
    stepper.reset([0])
    kept: list[torch.Tensor] = []
    generator.keep_embeddings[0] = kept
    for step in prompts.voice_steps(voice, tokens):
        stepper.step({}, {0: step})
    stored = {
        "embeddings": torch.stack(kept).cpu(),
        "cache": generator.cache[0:1].detach().clone().cpu(),
    }
    stepper.reset([0])
    torch.save(stored, target)
