"""How many conversation slots one model process holds: MOSHI_MAX_SESSIONS, or what memory allows.

Every slot keeps its own streaming state for the whole conversation, allocated once at load: the
main transformer's KV caches (context positions of keys and values in every layer: about 1.5 GiB
per slot for the 7B models in bf16), the depformer's and Mimi's, and the step's buffers. On a GPU
the default is as many slots as fit beside the weights with the headroom, up to a cap; on a CPU
it is 1 (a 7B step there is far slower than real time already).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from moshi.models import loaders

from moshi_backend.engines.base import EngineError
from moshi_backend.engines.model.architecture import Architecture
from moshi_backend.engines.model.devices import GIB, HEADROOM_BYTES

# The batch always steps whole, so every slot costs step time even when idle: the goal figure for
# an H100 is 16 slots within the 80 ms frame, leaving time for new conversations' prompts.
DEFAULT_SLOT_CAP = 16
# One step's activations and logits, sampling buffers and Mimi's convolution buffers (a few MB at
# 7B), rounded up generously.
_STEP_BUFFERS_BYTES = 64 * 1024**2
_MIMI_STATE_ITEMSIZE = 4  # Mimi runs in float32 on every device


def slot_state_bytes(architecture: Architecture, dtype: torch.dtype) -> int:
    """Device memory that one conversation slot keeps, computed from the configuration.

    The same with MOSHI_QUANTIZE: moshi keeps a quantized model's KV cache in float16, as many
    bytes as bfloat16.
    """
    lm = architecture.lm
    itemsize = torch.empty((), dtype=dtype).element_size()
    kv_width = int(lm["dim"]) // int(lm.get("kv_repeat", 1))
    main = 2 * int(lm["num_layers"]) * int(lm["context"]) * kv_width * itemsize
    depformer_context = int(lm.get("depformer_context") or lm["dep_q"])
    depformer = (
        2
        * int(lm.get("depformer_num_layers", 0))
        * depformer_context
        * int(lm.get("depformer_dim", 0))
        * itemsize
    )
    mimi_transformer = dict((architecture.mimi or {}).get("transformer") or {})
    mimi_transformer = {**loaders._transformer_kwargs, **mimi_transformer}
    # The encoder's and the decoder's transformer, keys and values.
    mimi = (
        2
        * 2
        * int(mimi_transformer["num_layers"])
        * int(mimi_transformer["context"])
        * int(mimi_transformer["d_model"])
        * _MIMI_STATE_ITEMSIZE
    )
    return main + depformer + mimi + _STEP_BUFFERS_BYTES


@dataclass(frozen=True)
class SlotPlan:
    slots: int
    weights_bytes: int
    slot_bytes: int
    free_bytes: int
    where: str
    quantize: str = "none"

    def describe(self) -> str:
        return (
            f"{self.slots} conversation slot(s) on {self.where}: weights "
            f"{self.weights_bytes / GIB:.1f} GiB (MOSHI_QUANTIZE={self.quantize}) + "
            f"{self.slots} x {self.slot_bytes / GIB:.2f} GiB "
            f"per-slot state + {HEADROOM_BYTES / GIB:.0f} GiB headroom, "
            f"{self.free_bytes / GIB:.1f} GiB free"
        )


def plan_slots(
    requested: int | None,
    weights_bytes: int,
    slot_bytes: int,
    free_bytes: int,
    where: str,
    quantize: str = "none",
    cap: int = DEFAULT_SLOT_CAP,
) -> SlotPlan:
    """The slot count for a GPU; EngineError (before any weight is loaded) when it cannot fit.

    weights_bytes is what the MOSHI_QUANTIZE mode stores (weights.lm_parameter_bytes); a slot's
    state is the same in every mode.
    """
    room = free_bytes - weights_bytes - HEADROOM_BYTES
    fitting = max(room // slot_bytes, 0)
    if requested is None and fitting >= 1:
        slots = min(fitting, cap)
        return SlotPlan(slots, weights_bytes, slot_bytes, free_bytes, where, quantize)
    wanted = requested or 1
    if wanted > fitting:
        need = weights_bytes + wanted * slot_bytes + HEADROOM_BYTES
        raise EngineError(
            f"not enough GPU memory on {where} for {wanted} conversation slot(s): they need about "
            f"{need / GIB:.1f} GiB (weights {weights_bytes / GIB:.1f} GiB with MOSHI_QUANTIZE="
            f"{quantize} + {slot_bytes / GIB:.2f}"
            f" GiB per slot + {HEADROOM_BYTES / GIB:.0f} GiB headroom), {free_bytes / GIB:.1f} GiB "
            f"are free, room for {fitting}. Set MOSHI_MAX_SESSIONS={max(fitting, 1)} or lower, "
            "MOSHI_CPU_OFFLOAD=true to keep part of the layers in CPU memory (slower), free the "
            "GPU, or use one with more memory"
        )
    return SlotPlan(wanted, weights_bytes, slot_bytes, free_bytes, where, quantize)
