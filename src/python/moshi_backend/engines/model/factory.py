"""MOSHI_ENGINE=personaplex|moshi from the backend's settings."""

from __future__ import annotations

from moshi_backend.engines.model.architecture import (
    MOSHI_7B_LM,
    MOSHI_REPO,
    PERSONAPLEX_7B_LM,
    PERSONAPLEX_REPO,
)
from moshi_backend.engines.model.engine_config import ModelEngineConfig
from moshi_backend.engines.model.model_engine import ModelEngine
from moshi_backend.settings import BackendSettings, EngineName


def create_model_engine(name: EngineName, settings: BackendSettings) -> ModelEngine:
    persona = name is EngineName.PERSONAPLEX
    token = settings.hf_token.get_secret_value() if settings.hf_token else None
    config = ModelEngineConfig(
        name=name.value,
        repo=settings.moshi_hf_repo or (PERSONAPLEX_REPO if persona else MOSHI_REPO),
        default_lm=PERSONAPLEX_7B_LM if persona else MOSHI_7B_LM,
        persona=persona,
        device=settings.moshi_device.value,
        cpu_offload=settings.moshi_cpu_offload,
        quantize=settings.moshi_quantize.value,
        cuda_graphs=not settings.no_cuda_graph,
        torch_compile=not settings.no_torch_compile,
        hf_token=token or None,
        voice_dir=settings.moshi_voice_dir,
        max_sessions=settings.moshi_max_sessions,
    )
    return ModelEngine(config)
