"""What a model engine is told to run: MOSHI_* settings as the factory and the tests give them."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ModelEngineConfig:
    name: str  # "personaplex" or "moshi"
    repo: str
    default_lm: Mapping[str, object]
    persona: bool
    device: str = "auto"
    cpu_offload: bool = False
    # The LM's Linear weights: "none", "int8" or "fp8" (quantization.py).
    quantize: str = "none"
    cuda_graphs: bool = True
    torch_compile: bool = True
    hf_token: str | None = None
    voice_dir: Path | None = None
    silence_s: float = 0.5
    # Conversation slots; None: 1 on a CPU, as many as fit (capacity.py) on a GPU.
    max_sessions: int | None = None
    # Where the hub is and where its files are kept; None: huggingface_hub's own defaults.
    hub_endpoint: str | None = None
    hub_cache: Path | None = None
    offline: bool | None = None
