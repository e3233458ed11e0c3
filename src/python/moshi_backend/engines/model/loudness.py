"""Integrated loudness (ITU-R BS.1770) and normalisation, for voice prompts recorded at any level.

PersonaPlex's voices were encoded at -24 LUFS; an audio voice prompt is brought to that level
before Mimi sees it.
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

Pcm = npt.NDArray[np.float32]

_BLOCK_S = 0.4
_STEP_S = 0.1
_ABSOLUTE_GATE = -70.0
_RELATIVE_GATE = -10.0


def _biquad(x: list[float], b: tuple[float, float, float], a: tuple[float, float]) -> list[float]:
    b0, b1, b2 = b
    a1, a2 = a
    x1 = x2 = y1 = y2 = 0.0
    out = [0.0] * len(x)
    for i, sample in enumerate(x):
        y = b0 * sample + b1 * x1 + b2 * x2 - a1 * y1 - a2 * y2
        x2, x1, y2, y1 = x1, sample, y1, y
        out[i] = y
    return out


def _k_weighting(rate: int) -> list[tuple[tuple[float, float, float], tuple[float, float]]]:
    """The two K-weighting stages (high shelf +4 dB at 1.5 kHz, high pass at 38 Hz)."""
    stages = []
    gain = 10 ** (4.0 / 40)
    w0 = 2 * math.pi * 1500.0 / rate
    alpha = math.sin(w0) / (2 * (1 / math.sqrt(2)))
    cos, root = math.cos(w0), 2 * math.sqrt(gain) * alpha
    a0 = (gain + 1) - (gain - 1) * cos + root
    stages.append(
        (
            (
                gain * ((gain + 1) + (gain - 1) * cos + root) / a0,
                -2 * gain * ((gain - 1) + (gain + 1) * cos) / a0,
                gain * ((gain + 1) + (gain - 1) * cos - root) / a0,
            ),
            (2 * ((gain - 1) - (gain + 1) * cos) / a0, ((gain + 1) - (gain - 1) * cos - root) / a0),
        )
    )
    w0 = 2 * math.pi * 38.0 / rate
    alpha = math.sin(w0) / (2 * 0.5)
    cos = math.cos(w0)
    a0 = 1 + alpha
    stages.append(
        (
            ((1 + cos) / 2 / a0, -(1 + cos) / a0, (1 + cos) / 2 / a0),
            (-2 * cos / a0, (1 - alpha) / a0),
        )
    )
    return stages


def integrated_loudness(pcm: Pcm, rate: int) -> float:
    """LUFS of mono audio; -inf for silence or audio shorter than one 400 ms block."""
    samples = pcm.astype(np.float64).tolist()
    for b, a in _k_weighting(rate):
        samples = _biquad(samples, b, a)
    weighted = np.asarray(samples) ** 2
    block, step = int(_BLOCK_S * rate), int(_STEP_S * rate)
    if weighted.size < block:
        return -math.inf
    cumulative = np.concatenate([[0.0], np.cumsum(weighted)])
    starts = np.arange(0, weighted.size - block + 1, step)
    powers = (cumulative[starts + block] - cumulative[starts]) / block
    with np.errstate(divide="ignore"):
        loudness = -0.691 + 10 * np.log10(powers)
    gated = powers[loudness > _ABSOLUTE_GATE]
    if gated.size == 0:
        return -math.inf
    relative = -0.691 + 10 * math.log10(gated.mean()) + _RELATIVE_GATE
    gated = powers[(loudness > _ABSOLUTE_GATE) & (loudness > relative)]
    return float(-0.691 + 10 * math.log10(gated.mean()))


def normalize(pcm: Pcm, rate: int, target_lufs: float) -> Pcm:
    """pcm scaled to target_lufs; silence comes back unchanged."""
    loudness = integrated_loudness(pcm, rate)
    if not math.isfinite(loudness):
        return pcm
    gain = 10 ** ((target_lufs - loudness) / 20)
    return (pcm * gain).astype(np.float32)
