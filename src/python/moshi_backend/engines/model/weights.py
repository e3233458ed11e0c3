"""Builds Mimi and the LM from a checkpoint, with errors that say what does not match."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from safetensors import SafetensorError, safe_open

from moshi_backend.engines.base import EngineError
from moshi_backend.engines.model.architecture import Architecture
from moshi_backend.engines.model.quantization import NONE, quantize_linears, quantize_weight

log = logging.getLogger(__name__)

LayerProgress = Callable[[int, int], None]
_LAYER = re.compile(r"^transformer\.layers\.(\d+)\.")
# PersonaPlex's LM extends Moshi's 8-step depformer to 16 steps; a checkpoint that stores only the
# first 8 steps' per-step weights gets steps 8-15 from steps 0-7 (the same rule its authors use).
_PER_STEP = re.compile(r"(gating|linears|depformer_in|depformer_emb|in_projs|out_projs)\.(\d+)\.")
# Checkpoints written by moshi < 0.2 (PersonaPlex's fork among them) stack the per-step attention
# projections in one tensor; moshi 0.2 keeps one Linear per step.
# With MOSHI_QUANTIZE, a quantized weight's scale travels beside it as NAME_scale.
_STACKED = re.compile(
    r"^(.*\.self_attn\.)(in_proj_weight|in_proj\.weight|out_proj\.weight)(_scale)?$"
)
_SCALE = "_scale"


def build_mimi(path: Path, architecture: Architecture, device: torch.device) -> MimiModel:
    try:
        mimi = loaders.get_mimi(
            path, architecture.mimi, device=device, num_codebooks=architecture.streams
        )
    except (RuntimeError, SafetensorError, KeyError) as error:
        raise EngineError(
            f"{path.name} does not match the Mimi configuration: {_first_lines(error)}"
        ) from None
    return mimi


def lm_parameter_bytes(architecture: Architecture, dtype: torch.dtype, quantize: str = NONE) -> int:
    """Bytes of the LM's weights at dtype, quantized Linear weights at one byte each plus a float32
    scale per row, computed without allocating them."""
    model = _empty_lm(architecture, dtype, quantize)
    return sum(p.numel() * p.element_size() for p in model.parameters())


def build_lm(
    path: Path,
    architecture: Architecture,
    device: torch.device,
    dtype: torch.dtype,
    progress: LayerProgress,
    quantize: str = NONE,
) -> LMModel:
    model = _empty_lm(architecture, dtype, quantize)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    quantized = {name for name in expected if name + _SCALE in expected}
    state = _read_checkpoint(
        path, expected, device, dtype, progress, architecture, quantized, quantize
    )
    model.load_state_dict(state, assign=True, strict=True)
    model.eval()
    return model


def _empty_lm(architecture: Architecture, dtype: torch.dtype, quantize: str) -> LMModel:
    kwargs: dict[str, Any] = dict(architecture.lm)
    kwargs.pop("depformer_causal", None)
    try:
        model = LMModel(device=torch.device("meta"), dtype=dtype, **kwargs)
    except (TypeError, AssertionError, ValueError) as error:
        raise EngineError(
            f"the LM configuration cannot be built ({architecture.describe()}): {error}"
        ) from None
    quantize_linears(model, quantize, dtype)
    return model


def _read_checkpoint(
    path: Path,
    expected: dict[str, tuple[int, ...]],
    device: torch.device,
    dtype: torch.dtype,
    progress: LayerProgress,
    architecture: Architecture,
    quantized: set[str],
    quantize: str,
) -> dict[str, torch.Tensor]:
    layers = int(architecture.lm["num_layers"])
    try:
        opened = safe_open(str(path), framework="pt", device="cpu")  # type: ignore[no-untyped-call]
        with opened as checkpoint:
            names = list(checkpoint.keys())
            _check_names(path, [_modern_name(name) for name in names], expected)
            state: dict[str, torch.Tensor] = {}
            # Layer by layer so /health can count them while gigabytes move.
            previous = None
            for name in sorted(names, key=_layer_of):
                layer = _layer_of(name)
                if layer != previous and layer >= 0:
                    progress(layer, layers)  # the layers before this one are in
                previous = layer
                tensor = checkpoint.get_tensor(name)
                if _modern_name(name) in quantized:
                    # One tensor at a time: the full-precision LM never exists on the device.
                    state[name], state[name + _SCALE] = quantize_weight(tensor, quantize, device)
                else:
                    state[name] = tensor.to(device=device, dtype=_dtype_for(name, tensor, dtype))
            progress(layers, layers)
    except SafetensorError as error:
        raise EngineError(f"{path.name} is not a readable safetensors file: {error}") from None
    _split_stacked_projections(state, expected)
    _fill_per_step_weights(state, expected)
    _check_shapes(path, state, expected, architecture)
    return state


def _layer_of(name: str) -> int:
    match = _LAYER.match(name)
    return int(match.group(1)) if match else -1


def _dtype_for(name: str, tensor: torch.Tensor, dtype: torch.dtype) -> torch.dtype:
    if not tensor.dtype.is_floating_point:
        return tensor.dtype
    if name.startswith(("condition_provider.", "fuser.")):
        return torch.float32
    return dtype


def _modern_name(name: str) -> str:
    match = _STACKED.match(name)
    if match is None:
        return name
    kind = "in_projs" if match.group(2).startswith("in_proj") else "out_projs"
    return f"{match.group(1)}{kind}.0.weight{match.group(3) or ''}"


def _split_stacked_projections(
    state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]
) -> None:
    for name in [name for name in state if _STACKED.match(name)]:
        stacked = state.pop(name)
        suffix = _SCALE if name.endswith(_SCALE) else ""
        # A scale is per row, so it splits with the rows of its weight.
        prefix = _modern_name(name)[: -len("0.weight" + suffix)]
        piece = expected[prefix + "0.weight"][0]
        if stacked.shape[0] % piece:
            raise EngineError(
                f"tensor {name} has {stacked.shape[0]} rows, not a multiple of the {piece} "
                "that one step of the configured attention needs"
            )
        for step, weight in enumerate(torch.split(stacked, piece, dim=0)):
            state[f"{prefix}{step}.weight{suffix}"] = weight


def _check_names(path: Path, names: list[str], expected: dict[str, tuple[int, ...]]) -> None:
    unexpected = sorted(set(names) - set(expected))
    if unexpected:
        raise EngineError(
            f"{path.name} holds {len(unexpected)} tensor(s) the LM configuration has no place "
            f"for, e.g. {', '.join(unexpected[:3])}: the checkpoint and its configuration differ"
        )


def _fill_per_step_weights(
    state: dict[str, torch.Tensor], expected: dict[str, tuple[int, ...]]
) -> None:
    filled = 0
    for name in expected:
        if name in state:
            continue
        match = _PER_STEP.search(name)
        if match is None or int(match.group(2)) < 8:
            continue
        source = name.replace(match.group(0), f"{match.group(1)}.{int(match.group(2)) - 8}.", 1)
        if source in state:
            state[name] = state[source]
            filled += 1
    if filled:
        log.info("depformer steps 8-15 filled from steps 0-7 for %d tensor(s)", filled)


def _check_shapes(
    path: Path,
    state: dict[str, torch.Tensor],
    expected: dict[str, tuple[int, ...]],
    architecture: Architecture,
) -> None:
    missing = [name for name in expected if name not in state]
    if missing:
        raise EngineError(
            f"{path.name} lacks {len(missing)} tensor(s) of the configured LM "
            f"({architecture.describe()}), e.g. {', '.join(missing[:3])}"
        )
    for name, shape in expected.items():
        actual = tuple(state[name].shape)
        if actual != shape:
            raise EngineError(
                f"{path.name}: tensor {name} has shape {actual} but the configuration "
                f"({architecture.describe()}) needs {shape}: the checkpoint and its "
                "configuration differ"
            )


def _first_lines(error: BaseException, lines: int = 3) -> str:
    return " ".join(str(error).strip().splitlines()[:lines])
