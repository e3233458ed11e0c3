"""MOSHI_CPU_OFFLOAD: as many transformer layers on the GPU as fit, the rest computed on the CPU.

Each layer stays whole on one device (its weights and its KV cache together); only the
activations of one step cross the bus, which keeps the cost per step to two small copies per
CPU layer plus the CPU's own compute.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from moshi.models.lm import LMModel
from torch import nn

from moshi_backend.engines.model.devices import HEADROOM_BYTES

log = logging.getLogger(__name__)


def layer_bytes(layer: nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in layer.parameters())


def plan_layers(sizes: list[int], budget: int) -> int:
    """How many leading layers fit in budget bytes."""
    used = 0
    for count, size in enumerate(sizes):
        if used + size > budget:
            return count
        used += size
    return len(sizes)


def _to_device(device: torch.device) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(a.to(device) if isinstance(a, torch.Tensor) else a for a in args)

    return hook


def _back_to(device: torch.device) -> Any:
    def hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> Any:
        return output.to(device) if isinstance(output, torch.Tensor) else output

    return hook


def offload_layers(
    lm: LMModel, device: torch.device, reserve_bytes: int = 0, free_bytes: int | None = None
) -> int:
    """Move lm (on the CPU) to device but the layers that do not fit; returns layers moved.

    reserve_bytes stay free for the conversation slots' state.
    """
    layers = list(lm.transformer.layers)
    others = layer_bytes(lm) - sum(layer_bytes(layer) for layer in layers)
    if free_bytes is None:
        free_bytes, _ = torch.cuda.mem_get_info(device)
    budget = free_bytes - others - HEADROOM_BYTES - reserve_bytes
    on_device = plan_layers([layer_bytes(layer) for layer in layers], max(budget, 0))
    cpu = torch.device("cpu")
    for index, layer in enumerate(layers):
        if index >= on_device:
            layer.to(cpu)
            layer.register_forward_pre_hook(_to_device(cpu))
            layer.register_forward_hook(_back_to(device))
    # Everything but the CPU layers goes to the device.
    for name, child in lm.named_children():
        if name != "transformer":
            child.to(device)
    for name, child in lm.transformer.named_children():
        if name != "layers":
            child.to(device)
    for layer in layers[:on_device]:
        layer.to(device)
    log.warning(
        "MOSHI_CPU_OFFLOAD: %d of %d transformer layers on %s, %d on the CPU",
        on_device,
        len(layers),
        device,
        len(layers) - on_device,
    )
    return on_device
