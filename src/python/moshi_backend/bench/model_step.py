"""Milliseconds per 80 ms step of the PersonaPlex-7B architecture at batch sizes 1 to 32.

A step is what the engine's step loop runs every frame: Mimi encode, LM (main transformer and
depformer, per-slot sampling) and Mimi decode of every slot, here with every slot live. Random
weights of the real shapes (no download), bf16, through the engine's own batch stepper, with CUDA
graphs on and off; per batch size p50/p99 and peak GPU memory, then the largest batch whose p50
stays within 80 ms (real time) and within 40 ms. `--quantize none,int8,fp8` measures each
MOSHI_QUANTIZE mode in turn (the LM's Linear weights quantized as the engine loads them) and ends
with a column per mode: p50 ms per step and peak GPU memory ("n/a" on a CPU, where every model
lives in one process at once). `--config tiny --device cpu` runs the same code
on the test checkpoint's shapes, every batch size on its own copy of the model, stepped in turn
(the load of a shared CPU changes by the second), and prints the batching gain there: one step at
B=4 against four steps at B=1.

    ./pants run src/python/moshi_backend/bench/model_step.py -- --steps 200
    ./pants run src/python/moshi_backend/bench/model_step.py -- --config tiny --device cpu
    ./pants run src/python/moshi_backend/bench/model_step.py -- --quantize none,int8,fp8
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from moshi.models import loaders
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from moshi.utils.compile import no_compile

from moshi_backend.engines.base import EngineError
from moshi_backend.engines.model.architecture import PERSONAPLEX_7B_LM
from moshi_backend.engines.model.batch_step import BatchStepper
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.quantization import (
    FP8,
    MODES,
    NONE,
    check_mode,
    quantize_linears,
    use_fp8_matmul,
)
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.slot_sampling import SlotSampling
from moshi_backend.engines.model.testing_checkpoints import TINY_MIMI, tiny_lm
from moshi_protocol.messages import FRAME_SAMPLES

REAL_TIME_MS = 80.0
GOAL_MS = 40.0


HEADER = "batch  graphs  quantize  steps    p50 ms    p99 ms  ms/conv.  peak GiB  verdict"


@dataclass(frozen=True)
class Result:
    batch: int
    graphs: bool
    step_ms: list[float]
    peak_gib: float | None  # None: not measured (a CPU)
    quantize: str = NONE

    @property
    def p50(self) -> float:
        return float(np.percentile(self.step_ms, 50))

    def row(self) -> str:
        p99 = float(np.percentile(self.step_ms, 99))
        verdict = (
            "goal" if self.p50 < GOAL_MS else "real time" if self.p50 < REAL_TIME_MS else "SLOW"
        )
        return (
            f"{self.batch:>5}  {'on' if self.graphs else 'off':>6}  {self.quantize:>8}  "
            f"{len(self.step_ms):>5}  {self.p50:8.2f}  {p99:8.2f}  {self.p50 / self.batch:9.2f}  "
            f"{_gib(self.peak_gib):>8}  {verdict}"
        )


def _gib(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def _models(config: str, device: torch.device, quantize: str = NONE) -> tuple[LMModel, MimiModel]:
    dtype = torch.bfloat16 if device.type == "cuda" else torch.float32
    lm_kwargs = dict(PERSONAPLEX_7B_LM if config == "personaplex-7b" else tiny_lm())
    mimi_config = None if config == "personaplex-7b" else TINY_MIMI
    torch.manual_seed(0)
    lm = LMModel(device=device, dtype=dtype, **lm_kwargs).eval()
    # The same weights in every mode (same seed), quantized as the engine's loader does.
    quantize_linears(lm, quantize, dtype, convert_weights=True)
    if quantize == FP8:
        use_fp8_matmul(lm, device)
    mimi = loaders.get_mimi(None, mimi_config, device=device, num_codebooks=lm.n_q // 2)
    return lm, mimi


class _Batch:
    """B slots, every one live, on a model: one timed step at a time."""

    def __init__(self, lm: LMModel, mimi: MimiModel, batch: int, graphs: bool) -> None:
        self.batch, self.graphs = batch, graphs
        self._streaming = contextlib.ExitStack()
        self._streaming.enter_context(lm.streaming(batch))
        self._streaming.enter_context(mimi.streaming(batch))
        self._generator = PersonaGenerator(lm, SlotSampling(batch, lm.device), cuda_graphs=graphs)
        self._stepper = BatchStepper(mimi, self._generator)
        for slot in range(batch):
            self._stepper.assign(slot, Sampling(), seed=slot)
        self._rng = np.random.default_rng(batch)
        self.step_ms: list[float] = []

    def step(self, timed: bool) -> None:
        noise = self._rng.standard_normal((self.batch, FRAME_SAMPLES)).astype(np.float32) * 0.1
        started = time.perf_counter()
        self._stepper.step(dict(enumerate(noise)), {})  # ends copying audio to the host
        if timed:
            self.step_ms.append((time.perf_counter() - started) * 1000)

    def close(self, peak_gib: float | None, quantize: str) -> Result:
        self._generator.close()
        self._streaming.close()
        return Result(self.batch, self.graphs, self.step_ms, peak_gib, quantize)


def run_one(
    lm: LMModel,
    mimi: MimiModel,
    batch: int,
    graphs: bool,
    args: argparse.Namespace,
    quantize: str = NONE,
) -> Result:
    """One batch size after another: what a GPU measures (one copy of the weights at a time)."""
    device = lm.device
    if device.type == "cuda":
        gc.collect()
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    bench = _Batch(lm, mimi, batch, graphs)
    for index in range(args.warmup + args.steps):
        bench.step(timed=index >= args.warmup)
    peak = torch.cuda.max_memory_allocated(device) / 1024**3 if device.type == "cuda" else None
    return bench.close(peak, quantize)


def run_interleaved(args: argparse.Namespace, batches: list[int], modes: list[str]) -> list[Result]:
    """Every batch size and mode on its own copy of the (small) model, stepped in turn: on shared
    CPUs the load changes by the second, and this way every one sees the same load."""
    device = torch.device(args.device)
    runs = [(mode, batch) for mode in modes for batch in batches]
    benches = [_Batch(*_models(args.config, device, mode), batch, False) for mode, batch in runs]
    for index in range(args.warmup + args.steps):
        for bench in benches:
            bench.step(timed=index >= args.warmup)
    return [bench.close(None, mode) for bench, (mode, _) in zip(benches, runs, strict=True)]


def largest_within(
    results: list[Result], graphs: bool, budget_ms: float, quantize: str = NONE
) -> str:
    fitting = [
        r.batch
        for r in results
        if r.graphs == graphs and r.quantize == quantize and r.p50 < budget_ms
    ]
    return str(max(fitting)) if fitting else "none"


def mode_columns(results: list[Result], graphs: bool, modes: list[str]) -> list[str]:
    """One line per batch size, p50 ms and peak GiB of each mode side by side."""
    found = {(r.batch, r.quantize): r for r in results if r.graphs == graphs}
    label = "graphs on" if graphs else "graphs off"
    lines = [
        f"by MOSHI_QUANTIZE ({label}): p50 ms per step / peak GiB",
        "batch" + "".join(f"  {mode + ' ms':>9}  {mode + ' GiB':>9}" for mode in modes),
    ]
    for batch in sorted({batch for batch, _ in found}):
        cells = ""
        for mode in modes:
            result = found.get((batch, mode))
            ms = f"{result.p50:.2f}" if result else "-"
            cells += f"  {ms:>9}  {_gib(result.peak_gib) if result else '-':>9}"
        lines.append(f"{batch:>5}{cells}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=["personaplex-7b", "tiny"], default="personaplex-7b")
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--batches", default="", help="comma-separated; default 1,2,4,8,16,32")
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=30)
    parser.add_argument("--graphs", choices=["both", "on", "off"], default="both")
    parser.add_argument(
        "--quantize", default=NONE, help=f"comma-separated MOSHI_QUANTIZE modes: {', '.join(MODES)}"
    )
    args = parser.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print("model_step: no CUDA device here; this benchmark needs a GPU", file=sys.stderr)
        return 2
    modes = args.quantize.split(",")
    try:
        for mode in modes:
            check_mode(mode, device)
    except EngineError as error:
        print(f"model_step: {error}", file=sys.stderr)
        return 2
    default_batches = "1,2,4,8,16,32" if device.type == "cuda" else "1,4"
    batches = [int(b) for b in (args.batches or default_batches).split(",")]
    # CUDA graphs exist on a GPU only: the CPU measures the one path it has.
    graph_modes = {"both": [True, False], "on": [True], "off": [False]}[args.graphs]
    if device.type != "cuda":
        graph_modes = [False]
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu"
    print(f"{args.config} on {name}, torch {torch.__version__}, {args.steps} steps per row")
    print(HEADER)
    results: list[Result] = []
    # As the engine does: no torch.compile on a CPU (minutes of compiling, a C++ toolchain).
    compiling = contextlib.nullcontext() if device.type == "cuda" else no_compile()
    with compiling, torch.no_grad():
        if device.type == "cuda":
            for mode in modes:
                results += _run_on_gpu(args, device, mode, batches, graph_modes)
        else:
            results = run_interleaved(args, batches, modes)
            for result in results:
                print(result.row())
    for mode in modes:
        for graphs in graph_modes:
            label = "graphs on" if graphs else "graphs off"
            quantized = f", {mode}" if len(modes) > 1 else ""
            print(
                f"largest batch with p50 within {REAL_TIME_MS:g} ms ({label}{quantized}): "
                f"{largest_within(results, graphs, REAL_TIME_MS, mode)}; within {GOAL_MS:g} ms: "
                f"{largest_within(results, graphs, GOAL_MS, mode)}"
            )
    if len(modes) > 1:
        for graphs in graph_modes:
            print("\n".join(mode_columns(results, graphs, modes)))
    by_batch = {
        r.batch: r.p50 for r in results if r.graphs == graph_modes[0] and r.quantize == modes[0]
    }
    if 1 in by_batch and 4 in by_batch:
        print(
            f"batching gain: one step at B=4 {by_batch[4]:.1f} ms / four steps at B=1 "
            f"{4 * by_batch[1]:.1f} ms = {by_batch[4] / (4 * by_batch[1]):.2f}"
        )
    return 0


def _run_on_gpu(
    args: argparse.Namespace,
    device: torch.device,
    mode: str,
    batches: list[int],
    graph_modes: list[bool],
) -> list[Result]:
    """One mode's model (one copy of the weights on the GPU at a time), every batch size."""
    results: list[Result] = []
    lm, mimi = _models(args.config, device, mode)
    for graphs in graph_modes:
        for batch in batches:
            try:
                results.append(run_one(lm, mimi, batch, graphs, args, mode))
            except torch.cuda.OutOfMemoryError:
                # The larger batches would not fit either; the table so far still stands.
                print(f"{batch:>5}  {'on' if graphs else 'off':>6}  {mode:>8}  out of GPU memory")
                break
            print(results[-1].row(), flush=True)
    del lm, mimi
    gc.collect()
    torch.cuda.empty_cache()
    return results


if __name__ == "__main__":
    sys.exit(main())
