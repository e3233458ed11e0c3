"""Which device runs the model, and whether its weights fit there."""

from __future__ import annotations

import torch

from moshi_backend.engines.base import EngineError

GIB = 1024**3
# Beyond the weights and the conversation slots (capacity.py): CUDA's own context, the allocator's
# fragmentation, CUDA graphs' pools.
HEADROOM_BYTES = 3 * GIB


def resolve_device(choice: str) -> torch.device:
    if choice == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if choice == "cuda" and not torch.cuda.is_available():
        raise EngineError(
            "MOSHI_DEVICE=cuda but torch sees no CUDA device (no NVIDIA driver, or the "
            "container was started without --gpus); use MOSHI_DEVICE=cpu or auto"
        )
    if choice not in ("cuda", "cpu"):
        raise EngineError(f"MOSHI_DEVICE={choice}: expected auto, cuda or cpu")
    return torch.device(choice)


def memory_shortfall(weights_bytes: int, free_bytes: int) -> int:
    """Bytes missing for the weights plus headroom; 0 when they fit."""
    return max(weights_bytes + HEADROOM_BYTES - free_bytes, 0)


def check_memory(
    weights_bytes: int,
    device: torch.device,
    cpu_offload: bool,
    free_bytes: int | None = None,
    device_name: str | None = None,
    quantize: str = "none",
) -> None:
    """EngineError before loading when the weights cannot fit (and offload is off)."""
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    missing = memory_shortfall(weights_bytes, free_bytes)
    if missing and not cpu_offload:
        name = device_name or torch.cuda.get_device_name(device)
        smaller = (
            "MOSHI_QUANTIZE=int8 or fp8 (about half the weights), " if quantize == "none" else ""
        )
        raise EngineError(
            f"not enough GPU memory on {device} ({name}): the model with MOSHI_QUANTIZE={quantize}"
            f" needs about {(weights_bytes + HEADROOM_BYTES) / GIB:.1f} GiB, "
            f"{free_bytes / GIB:.1f} GiB are free. Set {smaller}MOSHI_CPU_OFFLOAD=true to keep "
            "part of the layers in CPU memory (slower), free the GPU, or use one with more memory"
        )
