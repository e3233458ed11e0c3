"""Loading a model engine: download, memory plan (weights and conversation slots), Mimi, LM, voices.

Everything here blocks; /health shows its progress through the callback.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import sentencepiece
import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel

from moshi_backend.engines.base import EngineError, ProgressCallback
from moshi_backend.engines.model import prompts
from moshi_backend.engines.model.architecture import (
    CONFIG,
    VOICES_ARCHIVE,
    Architecture,
    architecture_from_config,
)
from moshi_backend.engines.model.capacity import plan_slots, slot_state_bytes
from moshi_backend.engines.model.devices import GIB, check_memory
from moshi_backend.engines.model.engine_config import ModelEngineConfig
from moshi_backend.engines.model.offload import offload_layers
from moshi_backend.engines.model.quantization import FP8, check_mode, describe, use_fp8_matmul
from moshi_backend.engines.model.repository import (
    DownloadProgress,
    FileRequest,
    ModelRepository,
    unpack_voices,
)
from moshi_backend.engines.model.weights import build_lm, build_mimi, lm_parameter_bytes

log = logging.getLogger(__name__)

# Shares of the whole load that /health reports for each stage.
DOWNLOAD_SHARE, LOAD_SHARE = 0.70, 0.25


@dataclass
class LoadedModel:
    mimi: MimiModel
    lm: LMModel
    tokenizer: sentencepiece.SentencePieceProcessor
    voice_dir: Path | None
    architecture: Architecture
    slots: int


def load_model(
    config: ModelEngineConfig,
    device: torch.device,
    dtype: torch.dtype,
    progress: ProgressCallback,
) -> LoadedModel:
    # Before gigabytes are downloaded for a mode that cannot run here.
    check_mode(config.quantize, device)
    repository = ModelRepository(
        config.repo,
        config.hf_token,
        offline=config.offline,
        endpoint=config.hub_endpoint,
        cache_dir=config.hub_cache,
    )
    progress(0.0, "downloading")
    # config.json names the other files; it is a few kB, so it is not counted.
    config_path = repository.fetch([FileRequest(CONFIG, required=False)], _ignore)[CONFIG]
    architecture = architecture_from_config(config_path, dict(config.default_lm))
    log.info("%s: %s", config.repo, architecture.describe())
    wanted = [
        FileRequest(architecture.text_tokenizer),
        FileRequest(architecture.mimi_weights),
        FileRequest(architecture.lm_weights),
    ]
    if config.persona and config.voice_dir is None:
        wanted.append(FileRequest(VOICES_ARCHIVE, required=False))
    files = _fetch(repository, wanted, progress)
    # Before a single weight is loaded: an impossible slot count fails now, in one line.
    slots = _slots(config, architecture, device, dtype)
    tokenizer = _tokenizer(files[architecture.text_tokenizer], architecture)
    progress(DOWNLOAD_SHARE, "loading Mimi")
    mimi = build_mimi(_present(files, architecture.mimi_weights), architecture, device)

    def layer_done(done: int, total: int) -> None:
        fraction = DOWNLOAD_SHARE + LOAD_SHARE * done / max(total, 1)
        progress(fraction, "loading LM", {"layers_loaded": done, "layers_total": total})

    lm_device = torch.device("cpu") if config.cpu_offload else device
    lm = build_lm(
        _present(files, architecture.lm_weights),
        architecture,
        lm_device,
        dtype,
        layer_done,
        config.quantize,
    )
    if config.cpu_offload and device.type == "cuda":
        offload_layers(lm, device, reserve_bytes=slots * slot_state_bytes(architecture, dtype))
    elif lm_device != device:
        lm.to(device)
    if config.quantize == FP8:
        use_fp8_matmul(lm, device)
    log.info(
        "LM: %s (MOSHI_QUANTIZE=%s), %.2f GiB",
        describe(config.quantize, device),
        config.quantize,
        sum(p.numel() * p.element_size() for p in lm.parameters()) / GIB,
    )
    voice_dir = _voice_dir(config, files.get(VOICES_ARCHIVE))
    return LoadedModel(mimi, lm, tokenizer, voice_dir, architecture, slots)


def _slots(
    config: ModelEngineConfig, architecture: Architecture, device: torch.device, dtype: torch.dtype
) -> int:
    slot_bytes = slot_state_bytes(architecture, dtype)
    if device.type != "cuda":
        slots = config.max_sessions or 1
        log.info(
            "%d conversation slot(s) on %s, %.2f GiB of state each (MOSHI_MAX_SESSIONS; 1 on a CPU "
            "unless set)",
            slots,
            device,
            slot_bytes / GIB,
        )
        return slots
    weights = lm_parameter_bytes(architecture, dtype, config.quantize)
    check_memory(weights, device, config.cpu_offload, quantize=config.quantize)
    if config.cpu_offload:
        # The layers that do not fit go to the CPU; more slots would push more of them there.
        return config.max_sessions or 1
    free, _ = torch.cuda.mem_get_info(device)
    where = f"{device} ({torch.cuda.get_device_name(device)})"
    plan = plan_slots(config.max_sessions, weights, slot_bytes, free, where, config.quantize)
    log.info("%s", plan.describe())
    return plan.slots


def _fetch(
    repository: ModelRepository, files: list[FileRequest], progress: ProgressCallback
) -> dict[str, Path | None]:
    def downloaded(state: DownloadProgress) -> None:
        detail = {
            "files_done": state.files_done,
            "files_total": state.files_total,
            "bytes_done": state.bytes_done,
            "bytes_total": state.bytes_total,
        }
        progress(DOWNLOAD_SHARE * state.fraction, "downloading", detail)

    return repository.fetch(files, downloaded)


def _tokenizer(
    path: Path | None, architecture: Architecture
) -> sentencepiece.SentencePieceProcessor:
    assert path is not None
    tokenizer = sentencepiece.SentencePieceProcessor()
    try:
        tokenizer.Load(str(path))
    except (OSError, RuntimeError) as error:
        raise EngineError(f"{path.name} is not a sentencepiece model: {error}") from None
    if tokenizer.GetPieceSize() > int(architecture.lm["text_card"]):
        raise EngineError(
            f"{path.name} has {tokenizer.GetPieceSize()} pieces but the LM's text card is "
            f"{architecture.lm['text_card']}: tokenizer and model do not belong together"
        )
    return tokenizer


def _voice_dir(config: ModelEngineConfig, archive: Path | None) -> Path | None:
    if not config.persona:
        return None
    if config.voice_dir is not None:
        if not config.voice_dir.is_dir():
            raise EngineError(f"MOSHI_VOICE_DIR {config.voice_dir} is not a directory")
        return config.voice_dir
    if archive is None:
        raise EngineError(
            f"{config.repo} has no {VOICES_ARCHIVE}; set MOSHI_VOICE_DIR to a directory "
            "of voice prompts (.pt stored voices or audio files)"
        )
    return unpack_voices(archive)


def list_voices(voice_dir: Path | None) -> tuple[str, ...]:
    if voice_dir is None:
        return ()
    suffixes = (prompts.STORED_VOICE_SUFFIX, *prompts.AUDIO_VOICE_SUFFIXES)
    return tuple(sorted(p.name for p in voice_dir.iterdir() if p.suffix in suffixes))


def _ignore(state: DownloadProgress) -> None:
    pass


def _present(files: Mapping[str, Path | None], name: str) -> Path:
    path = files.get(name)
    if path is None:
        raise EngineError(f"{name} is missing")
    return path
