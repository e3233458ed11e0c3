"""MOSHI_QUANTIZE: the LM's Linear layers with int8 or float8 weights, one float32 scale per row.

Every nn.Linear of the LM (the main transformer's and the depformer's attention projections and
gating, the depformer's input projections, the output heads) becomes a QuantizedLinear; Mimi and
the embeddings stay as they are. Weights are quantized one checkpoint tensor at a time as the
loader reads them (weights.py), so the full-precision model never exists on the device.

- int8: bitsandbytes' vectorwise format (weight rounded to 127 steps of its row's absolute
  maximum) and its int8 matmul, whose activations are quantized per row on the fly.
- fp8: float8_e4m3fn weights, scaled per row into e4m3's range. On a GPU of compute capability 8.9
  or later torch._scaled_mm multiplies in fp8 with a per-row activation scale computed each step;
  elsewhere the weight is widened to the compute dtype for each matmul (weight-only fp8): the
  memory saving stays, the arithmetic is the unquantized one, and it runs on any device, the CPU
  included, which is how the tests cover it.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch
from moshi.utils.quantize import QLinear
from torch import nn

from moshi_backend.engines.base import EngineError

log = logging.getLogger(__name__)

NONE, INT8, FP8 = "none", "int8", "fp8"
MODES = (NONE, INT8, FP8)

_FP8 = torch.float8_e4m3fn
_FP8_MAX = float(torch.finfo(_FP8).max)  # 448
# A row of zeros still gets a scale that divides.
_TINY = 1e-12
# moshi allocates the KV cache of an attention whose projection is a QLinear in float16 (its own
# int8 layer returns float16), so the projections that fill it must return float16 too.
_KV_PROJECTIONS = ".self_attn.in_projs."


# A subclass of moshi's QLinear, although it shares none of its code: moshi's streaming attention
# accepts only nn.Linear, LoRALinear and QLinear as projections when it sizes its KV cache.
#
# Why not moshi's QLinear itself (replace_linear_with_qlinear)? It needs an nn.Linear holding the
# full-precision weight on the device first, then converts it; it always returns float16, so in a
# bfloat16 model every residual add (bfloat16 + float16) promotes the stream to float32; and it
# runs bitsandbytes' autograd matmul (MatmulLtState), which on a CPU widens the whole int8 weight
# back to float for every call: 39 ms for one 4096 -> 1024 layer on the 2-core build machine,
# against 0.8 ms for ours (and for float32 nn.Linear), 60 ms against 1.6 ms for 1024 -> 5632.
# Ours takes the weight straight from the checkpoint tensor, returns the model's dtype, and calls
# the same two bitsandbytes kernels that bnb.matmul ends in (int8_vectorwise_quant,
# int8_scaled_mm) directly.
class QuantizedLinear(QLinear):
    """y = x W^T (+ b) with W stored in weight_dtype and a float32 scale per output row."""

    weight: nn.Parameter
    weight_scale: nn.Parameter
    bias: nn.Parameter | None

    def __init__(
        self,
        in_features: int,
        out_features: int,
        weight_dtype: torch.dtype,
        out_dtype: torch.dtype,
        bias: bool = False,
        device: torch.device | str | None = None,
    ) -> None:
        nn.Module.__init__(self)  # not QLinear's: it quantizes an existing nn.Linear
        self.in_features, self.out_features = in_features, out_features
        self.out_dtype = out_dtype
        self.weight = nn.Parameter(
            torch.empty(out_features, in_features, dtype=weight_dtype, device=device),
            requires_grad=False,
        )
        self.weight_scale = nn.Parameter(
            torch.empty(out_features, dtype=torch.float32, device=device), requires_grad=False
        )
        self.bias = (
            nn.Parameter(torch.empty(out_features, dtype=out_dtype, device=device))
            if bias
            else None
        )

    def extra_repr(self) -> str:
        return (
            f"in_features={self.in_features}, out_features={self.out_features}, "
            f"weight={self.weight.dtype}, out={self.out_dtype}, bias={self.bias is not None}"
        )

    def _finish(self, y: torch.Tensor, shape: torch.Size) -> torch.Tensor:
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.to(self.out_dtype).reshape(*shape[:-1], self.out_features)


# bitsandbytes is imported only where int8 needs it, and Pants is told not to look for it: it is
# no requirement of ours but moshi's (on Linux only), and importing it takes seconds.
class Int8Linear(QuantizedLinear):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        from bitsandbytes import functional as bnb_functional  # pants: no-infer-dep

        rows = x.reshape(-1, self.in_features).to(torch.float16)
        x_int8, x_scale, _ = bnb_functional.int8_vectorwise_quant(rows)
        y = torch.ops.bitsandbytes.int8_scaled_mm(
            x_int8, self.weight, x_scale, self.weight_scale, dtype=self.out_dtype
        )
        return self._finish(y, x.shape)


class Fp8Linear(QuantizedLinear):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Set by use_fp8_matmul once the layer is on its device.
        self.scaled_mm = False

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        rows = x.reshape(-1, self.in_features)
        if self.scaled_mm and rows.is_cuda:  # not a layer that MOSHI_CPU_OFFLOAD keeps on the CPU
            x_scale = rows.abs().amax(dim=-1, keepdim=True).float().clamp(min=_TINY) / _FP8_MAX
            x_fp8 = (rows.float() / x_scale).to(_FP8)
            y = torch._scaled_mm(
                x_fp8,
                self.weight.t(),  # column-major, as cuBLAS wants the second operand
                scale_a=x_scale,
                scale_b=self.weight_scale.view(1, -1),
                out_dtype=torch.bfloat16,  # what row-wise scaling supports
            )
        else:
            # e4m3 values are exact in bfloat16, float16 and float32: the widening loses nothing,
            # and the scale applies to the output (one multiply per output, not per weight).
            y = nn.functional.linear(rows, self.weight.to(rows.dtype))
            y = y * self.weight_scale.to(rows.dtype)
        return self._finish(y, x.shape)


def quantize_weight(
    weight: torch.Tensor, mode: str, device: torch.device
) -> tuple[torch.Tensor, torch.Tensor]:
    """(quantized weight, float32 scale per row) of a [out, in] weight, on device."""
    if mode == INT8:
        from bitsandbytes import functional as bnb_functional  # pants: no-infer-dep

        # bitsandbytes' own format, so that its matmul reads it: int8 and each row's absolute
        # maximum (its kernels quantize from float16).
        quantized, scale, _ = bnb_functional.int8_vectorwise_quant(
            weight.to(device=device, dtype=torch.float16)
        )
        return quantized, scale.float()
    if mode == FP8:
        wide = weight.to(device=device, dtype=torch.float32)
        scale = wide.abs().amax(dim=1).clamp(min=_TINY) / _FP8_MAX
        quantized = (wide / scale[:, None]).clamp(-_FP8_MAX, _FP8_MAX).to(_FP8)
        return quantized, scale
    raise ValueError(f"no quantized weights in mode {mode}")


def quantize_linears(
    model: nn.Module, mode: str, dtype: torch.dtype, *, convert_weights: bool = False
) -> int:
    """Replace every nn.Linear of model by a QuantizedLinear; returns how many.

    The loader does it on the meta device and assigns the quantized checkpoint tensors after;
    convert_weights quantizes the weights the layers hold instead (a model built in memory, as
    the benchmark's random one).
    """
    if mode == NONE:
        return 0
    kind = Int8Linear if mode == INT8 else Fp8Linear
    replaced = 0
    for name, module in list(model.named_modules()):
        for child_name, child in list(module.named_children()):
            if not isinstance(child, nn.Linear):
                continue
            kv = _KV_PROJECTIONS in f".{name}.{child_name}."
            layer = kind(
                child.in_features,
                child.out_features,
                torch.int8 if mode == INT8 else _FP8,
                torch.float16 if kv else dtype,
                bias=child.bias is not None,
                device=child.weight.device,
            )
            if convert_weights:
                weight, scale = quantize_weight(child.weight.detach(), mode, child.weight.device)
                layer.weight = nn.Parameter(weight, requires_grad=False)
                layer.weight_scale = nn.Parameter(scale, requires_grad=False)
                if child.bias is not None:
                    layer.bias = nn.Parameter(child.bias.detach().to(layer.out_dtype))
            setattr(module, child_name, layer)
            replaced += 1
    return replaced


def use_fp8_matmul(model: nn.Module, device: torch.device) -> bool:
    """Switch the fp8 layers to torch._scaled_mm where device runs it; whether it does."""
    fast = fp8_matmul_works(str(device))
    for module in model.modules():
        if isinstance(module, Fp8Linear):
            # cuBLAS' fp8 matmul needs both dimensions of the weight in multiples of 16.
            dims = (module.in_features, module.out_features)
            module.scaled_mm = fast and all(dim % 16 == 0 for dim in dims)
    return fast


@functools.cache
def fp8_matmul_works(device: str) -> bool:
    """torch._scaled_mm with row-wise scales runs on device (CUDA, compute capability >= 8.9)."""
    target = torch.device(device)
    if target.type != "cuda" or torch.cuda.get_device_capability(target) < (8, 9):
        return False
    try:
        _probe(FP8, target, scaled_mm=True)
    except Exception as error:  # any failure means: use the weight-only path
        log.info("fp8: torch._scaled_mm does not run on %s (%s); weight-only fp8", device, error)
        return False
    return True


def check_mode(mode: str, device: torch.device) -> None:
    """EngineError, in one line, when device (with this build) cannot run mode."""
    if mode not in MODES:
        raise EngineError(f"MOSHI_QUANTIZE={mode}: expected one of {', '.join(MODES)}")
    reason = why_not(mode, device)
    if reason is None:
        return
    can = ", ".join(m for m in MODES if m != mode and why_not(m, device) is None)
    needs = "bitsandbytes running on" if mode == INT8 else "float8_e4m3fn tensors on"
    raise EngineError(
        f"MOSHI_QUANTIZE={mode} needs {needs} {device.type}, which fails here ({reason}); "
        f"this machine can run {can}"
    )


def why_not(mode: str, device: torch.device) -> str | None:
    """Why mode cannot run on device, in one line; None when it can."""
    if mode == NONE:
        return None
    try:
        _probe(mode, device, scaled_mm=False)
    except ImportError as error:
        return str(error)
    except Exception as error:  # a library that loads but cannot run here
        return _first_line(error)
    return None


def describe(mode: str, device: torch.device) -> str:
    if mode == INT8:
        return "int8 weights (bitsandbytes)"
    if mode == FP8:
        how = "fp8 matmul" if fp8_matmul_works(str(device)) else "weight-only, widened per matmul"
        return f"fp8 weights ({how})"
    return "unquantized weights"


def _probe(mode: str, device: torch.device, *, scaled_mm: bool) -> None:
    """Quantize and run one small layer on device; raises whatever stops it."""
    generator = torch.Generator().manual_seed(0)
    reference = nn.Linear(64, 32, bias=False)
    with torch.no_grad():
        reference.weight.copy_(torch.randn(32, 64, generator=generator))
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    model = nn.Sequential(reference).to(device)
    expected_weight = reference.weight.detach().clone()
    quantize_linears(model, mode, dtype, convert_weights=True)
    if isinstance(model[0], Fp8Linear):
        model[0].scaled_mm = scaled_mm
    x = torch.randn(2, 64, generator=generator).to(device)
    with torch.no_grad():
        y = model(x.to(dtype)).float()
    expected = x @ expected_weight.t()
    error = float((y - expected).norm() / expected.norm())
    if not error < 0.1:
        raise RuntimeError(f"a {mode} test matmul is off by {error:.0%}")


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}".rstrip(": ")
