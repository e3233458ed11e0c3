"""Milliseconds per 80 ms step of the PersonaPlex-7B architecture: Mimi encode + LM + Mimi decode.

Random weights of the real shapes (no download), batch 1, through the engine's own generator,
with CUDA graphs on and off, plus peak GPU memory. Real time needs < 80 ms a step; the goal on an
H100 is < 40 ms. `--config tiny --device cpu` runs the same code on the test checkpoint's shapes
(a check that the script works, not a measurement).

    ./pants run src/python/moshi_backend/bench/model_step.py -- --steps 200
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from moshi.models import loaders
from moshi.models.lm import LMModel
from moshi.utils.compile import no_compile

from moshi_backend.engines.model.architecture import PERSONAPLEX_7B_LM
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.testing_checkpoints import TINY_MIMI, tiny_lm
from moshi_protocol.messages import FRAME_SAMPLES

REAL_TIME_MS = 80.0
GOAL_MS = 40.0


@dataclass(frozen=True)
class Result:
    graphs: bool
    step_ms: list[float]
    peak_gib: float

    def row(self) -> str:
        p50, p99 = np.percentile(self.step_ms, [50, 99])
        verdict = "goal" if p50 < GOAL_MS else ("real time" if p50 < REAL_TIME_MS else "SLOW")
        return (
            f"{'on' if self.graphs else 'off':>6}  {len(self.step_ms):>5}  {p50:7.2f}  {p99:7.2f}"
            f"  {float(np.mean(self.step_ms)):7.2f}  {self.peak_gib:8.2f}  {verdict}"
        )


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run(config: str, device: torch.device, graphs: bool, steps: int, warmup: int) -> Result:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    lm_kwargs = dict(PERSONAPLEX_7B_LM if config == "personaplex-7b" else tiny_lm())
    mimi_config = None if config == "personaplex-7b" else TINY_MIMI
    torch.manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    lm = LMModel(device=device, dtype=dtype, **lm_kwargs).eval()
    mimi = loaders.get_mimi(None, mimi_config, device=device, num_codebooks=lm.n_q // 2)
    mimi.streaming_forever(1)
    lm.streaming_forever(1)
    generator = PersonaGenerator(lm, Sampling(), cuda_graphs=graphs)
    rng = np.random.default_rng(0)
    timings: list[float] = []
    with torch.no_grad():
        for index in range(warmup + steps):
            frame = torch.from_numpy(rng.standard_normal(FRAME_SAMPLES).astype(np.float32) * 0.1)
            _sync(device)
            started = time.perf_counter()
            codes = mimi.encode(frame.to(device)[None, None])
            tokens = generator.step(user=codes[0, :, 0])
            if tokens is not None:
                mimi.decode(tokens[1:].view(1, -1, 1)).cpu()
            _sync(device)
            if index >= warmup:
                timings.append((time.perf_counter() - started) * 1000)
    peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else 0.0
    del generator, lm, mimi
    return Result(graphs, timings, peak)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["personaplex-7b", "tiny"], default="personaplex-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--graphs", choices=["both", "on", "off"], default="both")
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("model_step: no CUDA device here; this benchmark needs a GPU", file=sys.stderr)
        return 2
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.config} on {name}, torch {torch.__version__}, batch 1, {args.steps} steps")
    print("graphs  steps   p50 ms   p99 ms  mean ms  peak GiB  verdict")
    choices = {"both": [True, False], "on": [True], "off": [False]}[args.graphs]
    # As the engine does: no torch.compile on a CPU (minutes of compiling, a C++ toolchain).
    compiling = contextlib.nullcontext() if device.type == "cuda" else no_compile()
    with compiling:
        for graphs in choices:
            print(run(args.config, device, graphs, args.steps, args.warmup).row(), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
