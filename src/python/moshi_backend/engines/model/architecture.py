"""What a checkpoint repository holds and which network shapes its weights need.

PersonaPlex-7B-v1 is Moshi 7B whose depformer predicts both audio streams (dep_q 16). Its
config.json on the model hub is not an architecture description, so unless config.json carries
moshi's LM keyword arguments (as Kyutai's repositories and our test checkpoints do), the
built-in description of the engine applies.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moshi_backend.engines.base import EngineError

LM_WEIGHTS = "model.safetensors"
MIMI_WEIGHTS = "tokenizer-e351c8d8-checkpoint125.safetensors"
TEXT_TOKENIZER = "tokenizer_spm_32k_3.model"
CONFIG = "config.json"
VOICES_ARCHIVE = "voices.tgz"

PERSONAPLEX_REPO = "nvidia/personaplex-7b-v1"
MOSHI_REPO = "kyutai/moshiko-pytorch-bf16"

# Moshi 7B (moshi 0.2.13's built-in LM configuration, written out so that a change upstream cannot
# silently change what our engines load).
MOSHI_7B_LM: dict[str, Any] = {
    "dim": 4096,
    "text_card": 32000,
    "existing_text_padding_id": 3,
    "n_q": 16,
    "dep_q": 8,
    "card": 2048,
    "num_heads": 32,
    "num_layers": 32,
    "hidden_scale": 4.125,
    "causal": True,
    "layer_scale": None,
    "context": 3000,
    "max_period": 10000,
    "gating": "silu",
    "norm": "rms_norm_f32",
    "positional_embedding": "rope",
    "depformer_dim": 1024,
    "depformer_dim_feedforward": int(4.125 * 1024),
    "depformer_num_heads": 16,
    "depformer_num_layers": 6,
    "depformer_layer_scale": None,
    "depformer_multi_linear": True,
    "depformer_context": 8,
    "depformer_max_period": 10000,
    "depformer_gating": "silu",
    "depformer_pos_emb": "none",
    "depformer_weights_per_step": True,
    "delays": [0, 0, 1, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1],
}
PERSONAPLEX_7B_LM: dict[str, Any] = {**MOSHI_7B_LM, "dep_q": 16}

# Keys of moshi's config.json that name files or uses, not network shapes.
_NON_LM_KEYS = {
    "moshi_name",
    "mimi_name",
    "tokenizer_name",
    "mimi_config",
    "model_type",
    "lm_gen_config",
    "model_id",
    "lora_name",
    "tts_config",
    "stt_config",
    "mimi_config_name",
}


@dataclass(frozen=True)
class Architecture:
    """The LM keyword arguments (moshi's LMModel) and an optional Mimi configuration."""

    lm: dict[str, Any]
    mimi: dict[str, Any] | None = None
    lm_weights: str = LM_WEIGHTS
    mimi_weights: str = MIMI_WEIGHTS
    text_tokenizer: str = TEXT_TOKENIZER
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def streams(self) -> int:
        """Audio codebooks per speaker (the model's own voice, then the user's)."""
        return int(self.lm["n_q"]) // 2

    @property
    def delays(self) -> list[int]:
        return [int(delay) for delay in self.lm["delays"]]

    def describe(self) -> str:
        lm = self.lm
        return (
            f"dim {lm['dim']}, {lm['num_layers']} layers, dep_q {lm['dep_q']}, "
            f"text card {lm['text_card']}, audio card {lm['card']}"
        )


def architecture_from_config(path: Path | None, default_lm: dict[str, Any]) -> Architecture:
    """Read config.json when it describes the network; otherwise the engine's built-in one."""
    if path is None or not path.exists():
        return Architecture(lm=dict(default_lm))
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise EngineError(f"{path.name} is not valid JSON: {error}") from None
    if not isinstance(raw, dict):
        raise EngineError(f"{path.name} must hold a JSON object, not {type(raw).__name__}")
    if "dim" not in raw:
        return Architecture(lm=dict(default_lm), extra=raw)
    lm = {key: value for key, value in raw.items() if key not in _NON_LM_KEYS}
    missing = [
        key for key in ("dim", "n_q", "dep_q", "card", "text_card", "delays") if key not in lm
    ]
    if missing:
        raise EngineError(f"{path.name} describes an LM but lacks {', '.join(missing)}")
    if len(lm["delays"]) != int(lm["n_q"]) + 1:
        raise EngineError(
            f"{path.name}: {len(lm['delays'])} delays for n_q {lm['n_q']}; expected n_q + 1"
        )
    mimi = raw.get("mimi_config")
    if mimi is not None and not isinstance(mimi, dict):
        raise EngineError(f"{path.name}: mimi_config must be an object")
    return Architecture(
        lm=lm,
        mimi=mimi,
        lm_weights=raw.get("moshi_name", LM_WEIGHTS),
        mimi_weights=raw.get("mimi_name", MIMI_WEIGHTS),
        text_tokenizer=raw.get("tokenizer_name", TEXT_TOKENIZER),
    )
