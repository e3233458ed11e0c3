"""The model engines: PersonaPlex-7B (persona prompts) and Kyutai's Moshi, on moshi's LMModel.

One process holds N conversation slots (capacity.py) that one step loop advances together
(step_loop.py). Loading and opening conversations block (downloads, files); the server calls
them from worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from concurrent.futures import Future
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import torch
from moshi.utils.compile import no_compile

from moshi_backend.engines.base import (
    Engine,
    EngineError,
    EngineInfo,
    ProgressCallback,
    StepObserver,
)
from moshi_backend.engines.model import prompts
from moshi_backend.engines.model.batch_step import BatchStepper
from moshi_backend.engines.model.devices import resolve_device
from moshi_backend.engines.model.engine_config import ModelEngineConfig
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.loader import (
    DOWNLOAD_SHARE,
    LOAD_SHARE,
    LoadedModel,
    list_voices,
    load_model,
)
from moshi_backend.engines.model.model_session import ModelSession
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.slot_sampling import SlotSampling
from moshi_backend.engines.model.slots import SlotTable
from moshi_backend.engines.model.step_loop import StepLoop
from moshi_protocol.messages import FRAME_SAMPLES
from moshi_protocol.params import ChatParams

log = logging.getLogger(__name__)

# Enough steps for every CUDA graph to be captured (second call) and replayed once.
_WARMUP_FRAMES = 5


@dataclass
class _Serving:
    slots: SlotTable
    stepper: BatchStepper
    loop: StepLoop
    # What persona prompts are made of (None for an engine without them).
    prompt_tokens: prompts.PromptTokens | None


# A GPU slot is the scarce thing: a conversation (or a tab left open) holds one for at most this
# long unless MOSHI_MAX_CONVERSATION_S says otherwise.
MAX_CONVERSATION_S = 15 * 60.0


class ModelEngine(Engine):
    def __init__(
        self,
        config: ModelEngineConfig,
        prompt_observer: prompts.PromptObserver | None = None,
    ) -> None:
        self.config = config
        self._device = resolve_device(config.device)
        self._dtype = torch.bfloat16 if self._device.type == "cuda" else torch.float32
        self._observer = prompt_observer
        self._step_observers: list[StepObserver] = []
        self._loaded: LoadedModel | None = None
        self._serving: _Serving | None = None
        self._voices: dict[Path, tuple[float, prompts.Voice]] = {}
        self._switches = contextlib.ExitStack()
        # Until the load has planned the slots: the requested number, else the CPU's default.
        self._info = EngineInfo(
            name=config.name,
            model=config.repo,
            device=str(self._device),
            capacity=config.max_sessions or 1,
            voices=(),
            max_conversation_s=MAX_CONVERSATION_S,
            persona_prompts=config.persona,
        )

    @property
    def info(self) -> EngineInfo:
        if self._loaded is None or self._loaded.voice_dir is None:
            return self._info
        # Read each time: a voice file dropped into the directory is usable without a restart.
        return replace(self._info, voices=list_voices(self._loaded.voice_dir))

    @property
    def loaded(self) -> LoadedModel:
        if self._loaded is None:
            raise EngineError("the model is not loaded yet")
        return self._loaded

    @property
    def conversations(self) -> int:
        """Slots taken now: conversations open, prompting or live."""
        return self._serving.slots.in_use if self._serving is not None else 0

    def sync_steps(self) -> Future[None]:
        """Done once the step loop has applied every join and leave so far (StepLoop.sync)."""
        if self._serving is None:
            done: Future[None] = Future()
            done.set_result(None)
            return done
        return self._serving.loop.sync()

    def observe_steps(self, observer: StepObserver) -> None:
        self._step_observers.append(observer)

    def _observe_step(self, batch_size: int, seconds: float, late_frames: int) -> None:
        for observer in self._step_observers:
            observer(batch_size, seconds, late_frames)

    # Loading -------------------------------------------------------------------------------

    def load(self, progress: ProgressCallback) -> None:
        loaded = load_model(self.config, self._device, self._dtype, progress)
        slots = loaded.slots
        loaded.mimi.streaming_forever(slots)
        loaded.lm.streaming_forever(slots)
        if self._device.type != "cuda" or not self.config.torch_compile:
            # On a CPU, compiling costs tens of seconds per kernel and needs a C++ compiler,
            # which the runtime image does not have. moshi's switch is process-wide.
            self._switches.enter_context(no_compile())
        layers = int(loaded.architecture.lm["num_layers"])
        progress(DOWNLOAD_SHARE + LOAD_SHARE, "warming up", {"layers_loaded": layers})
        # CUDA graphs cannot hold the CPU half of an offloaded model.
        graphs = self.config.cuda_graphs and not self.config.cpu_offload
        generator = PersonaGenerator(
            loaded.lm, SlotSampling(slots, self._device), cuda_graphs=graphs
        )
        stepper = BatchStepper(loaded.mimi, generator, self._observer)
        estimate = _warm_up(stepper)
        loop = StepLoop(stepper, step_estimate_s=estimate, observer=self._observe_step)
        loop.start()
        tokens = None
        if self.config.persona:
            pad = loaded.lm.text_padding_token_id
            tokens = prompts.PromptTokens.for_generator(generator, pad)
        self._serving = _Serving(SlotTable(slots), stepper, loop, tokens)
        self._loaded = loaded
        weights = "" if self.config.quantize == "none" else f", {self.config.quantize} weights"
        model = f"{self.config.repo} ({loaded.architecture.describe()}{weights})"
        self._info = replace(self._info, model=model, capacity=slots)
        progress(1.0, "ready")

    def close(self) -> None:
        if self._serving is not None:
            self._serving.loop.stop()

    # Conversations --------------------------------------------------------------------------

    def start_session(self, params: ChatParams) -> ModelSession:
        serving = self._serving
        if serving is None:
            raise EngineError("the model is not loaded yet")
        sampling = Sampling(
            temperature=params.temperature,
            temperature_text=params.temperature_text,
            top_k=params.top_k,
            top_k_text=params.top_k_text,
        )
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
        prompt = []
        if serving.prompt_tokens is not None:
            prompt = self._persona_prompt(params, serving.prompt_tokens)
        slot = serving.slots.claim()
        try:
            ticket, ready = serving.loop.join(slot, prompt, sampling, seed)
        except BaseException:
            serving.slots.release(slot)
            raise
        if self.config.persona:
            _log_when_ready(ready, params, prompt, seed, slot)
        return ModelSession(
            serving.loop, slot, ticket, ready, self.loaded.tokenizer, serving.slots.release
        )

    def _persona_prompt(
        self, params: ChatParams, tokens: prompts.PromptTokens
    ) -> list[prompts.PromptStep]:
        silence_frames = round(self.config.silence_s * 12.5)
        text_tokens = list(self.loaded.tokenizer.Encode(prompts.system_prompt(params.text_prompt)))
        voice = self.voice(params.voice_prompt)
        return prompts.persona_steps(voice, text_tokens, silence_frames, tokens)

    def voice(self, name: str) -> prompts.Voice:
        """A voice prompt by file name, read once and kept while the file is unchanged."""
        voice_dir = self.loaded.voice_dir
        if voice_dir is None:
            raise EngineError(f"{self.config.name} takes no voice prompts")
        path = voice_dir / name
        if path.parent != voice_dir or not path.is_file():
            raise EngineError(f"voice {name} is not in {voice_dir.name}/")
        modified = path.stat().st_mtime
        cached = self._voices.get(path)
        if cached is None or cached[0] != modified:
            cached = (modified, prompts.load_voice(path))
            self._voices[path] = cached
        return cached[1]


def _warm_up(stepper: BatchStepper) -> float:
    """Step every slot a few frames (first steps allocate, pick kernels, capture CUDA graphs).

    Returns the duration of the last step, the step loop's first estimate.
    """
    started = time.perf_counter()
    slots = list(range(stepper.slots))
    silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
    for slot in slots:
        stepper.assign(slot, Sampling(), seed=slot)
    stepper.reset(slots)
    last = 0.0
    for _ in range(_WARMUP_FRAMES):
        step_started = time.perf_counter()
        stepper.step({slot: silence for slot in slots}, {})
        last = time.perf_counter() - step_started
    stepper.reset(slots)
    log.info(
        "warm-up: %d frames of %d slot(s) in %.2f s; a step takes %.1f ms",
        _WARMUP_FRAMES,
        len(slots),
        time.perf_counter() - started,
        last * 1000,
    )
    return last


def _log_when_ready(
    ready: Future[None], params: ChatParams, prompt: list[prompts.PromptStep], seed: int, slot: int
) -> None:
    started = time.perf_counter()
    text_steps = sum(step.phase is prompts.Phase.TEXT for step in prompt)

    def done(future: Future[None]) -> None:
        if not future.cancelled() and future.exception() is None:
            log.info(
                "persona prompts (voice %s, %d text tokens, seed %d) in %.2f s (slot %d)",
                params.voice_prompt,
                text_steps,
                seed,
                time.perf_counter() - started,
                slot,
            )

    ready.add_done_callback(done)
