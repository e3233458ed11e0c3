"""The model engines: PersonaPlex-7B (persona prompts) and Kyutai's Moshi, on moshi's LMModel.

Everything here blocks (downloads, weights, compute); the server calls it from worker threads.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import sentencepiece
import torch
from moshi.models.compression import MimiModel
from moshi.models.lm import LMModel
from moshi.utils.compile import no_compile

from moshi_backend.engines.base import (
    Engine,
    EngineError,
    EngineInfo,
    EngineSession,
    Pcm,
    ProgressCallback,
    StepResult,
)
from moshi_backend.engines.model import prompts
from moshi_backend.engines.model.architecture import (
    CONFIG,
    VOICES_ARCHIVE,
    Architecture,
    architecture_from_config,
)
from moshi_backend.engines.model.devices import check_memory, resolve_device
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_backend.engines.model.offload import offload_layers
from moshi_backend.engines.model.repository import (
    DownloadProgress,
    FileRequest,
    ModelRepository,
    unpack_voices,
)
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.weights import build_lm, build_mimi, lm_parameter_bytes
from moshi_protocol.messages import FRAME_SAMPLES
from moshi_protocol.params import ChatParams

log = logging.getLogger(__name__)

# Shares of the whole load that /health reports for each stage.
_DOWNLOAD_SHARE, _LOAD_SHARE = 0.70, 0.25
_WARMUP_FRAMES = 4
_TEXT_TOKENS_SKIPPED = {0, 3}  # end-of-padding and padding: silence in the text stream


@dataclass(frozen=True)
class ModelEngineConfig:
    name: str  # "personaplex" or "moshi"
    repo: str
    default_lm: Mapping[str, object]
    persona: bool
    device: str = "auto"
    cpu_offload: bool = False
    cuda_graphs: bool = True
    torch_compile: bool = True
    hf_token: str | None = None
    voice_dir: Path | None = None
    silence_s: float = 0.5
    # Where the hub is and where its files are kept; None: huggingface_hub's own defaults.
    hub_endpoint: str | None = None
    hub_cache: Path | None = None
    offline: bool | None = None


@dataclass
class _Loaded:
    mimi: MimiModel
    lm: LMModel
    tokenizer: sentencepiece.SentencePieceProcessor
    voice_dir: Path | None


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
        self._loaded: _Loaded | None = None
        self._busy = threading.Lock()
        self._voices: dict[Path, tuple[float, prompts.Voice]] = {}
        self._switches = contextlib.ExitStack()
        self._info = EngineInfo(
            name=config.name,
            model=config.repo,
            device=str(self._device),
            capacity=1,
            voices=(),
        )

    @property
    def info(self) -> EngineInfo:
        if self._loaded is None or self._loaded.voice_dir is None:
            return self._info
        # Read each time: a voice file dropped into the directory is usable without a restart.
        return replace(self._info, voices=self._list_voices(self._loaded.voice_dir))

    @property
    def loaded(self) -> _Loaded:
        if self._loaded is None:
            raise EngineError("the model is not loaded yet")
        return self._loaded

    # Loading -------------------------------------------------------------------------------

    def load(self, progress: ProgressCallback) -> None:
        repository = ModelRepository(
            self.config.repo,
            self.config.hf_token,
            offline=self.config.offline,
            endpoint=self.config.hub_endpoint,
            cache_dir=self.config.hub_cache,
        )
        progress(0.0, "downloading")
        # config.json names the other files; it is a few kB, so it is not counted.
        config_path = repository.fetch([FileRequest(CONFIG, required=False)], _ignore)[CONFIG]
        architecture = architecture_from_config(config_path, dict(self.config.default_lm))
        log.info("%s: %s", self.config.repo, architecture.describe())
        wanted = [
            FileRequest(architecture.text_tokenizer),
            FileRequest(architecture.mimi_weights),
            FileRequest(architecture.lm_weights),
        ]
        if self.config.persona and self.config.voice_dir is None:
            wanted.append(FileRequest(VOICES_ARCHIVE, required=False))
        files = self._fetch(repository, wanted, progress)
        if self._device.type == "cuda":
            check_memory(
                lm_parameter_bytes(architecture, self._dtype),
                self._device,
                self.config.cpu_offload,
            )
        tokenizer = self._tokenizer(files[architecture.text_tokenizer], architecture)
        progress(_DOWNLOAD_SHARE, "loading Mimi")
        mimi = build_mimi(_present(files, architecture.mimi_weights), architecture, self._device)
        layers = int(architecture.lm["num_layers"])

        def layer_done(done: int, total: int) -> None:
            fraction = _DOWNLOAD_SHARE + _LOAD_SHARE * done / max(total, 1)
            progress(fraction, "loading LM", {"layers_loaded": done, "layers_total": total})

        lm_device = torch.device("cpu") if self.config.cpu_offload else self._device
        lm = build_lm(
            _present(files, architecture.lm_weights),
            architecture,
            lm_device,
            self._dtype,
            layer_done,
        )
        if self.config.cpu_offload and self._device.type == "cuda":
            offload_layers(lm, self._device)
        elif lm_device != self._device:
            lm.to(self._device)
        voice_dir = self._voice_dir(files.get(VOICES_ARCHIVE))
        self._loaded = _Loaded(mimi, lm, tokenizer, voice_dir)
        mimi.streaming_forever(1)
        lm.streaming_forever(1)
        if self._device.type != "cuda" or not self.config.torch_compile:
            # On a CPU, compiling costs tens of seconds per kernel and needs a C++ compiler,
            # which the runtime image does not have. moshi's switch is process-wide.
            self._switches.enter_context(no_compile())
        progress(_DOWNLOAD_SHARE + _LOAD_SHARE, "warming up", {"layers_loaded": layers})
        self._warm_up()
        self._info = replace(self._info, model=f"{self.config.repo} ({architecture.describe()})")
        progress(1.0, "ready")

    def _fetch(
        self, repository: ModelRepository, files: list[FileRequest], progress: ProgressCallback
    ) -> dict[str, Path | None]:
        def downloaded(state: DownloadProgress) -> None:
            detail = {
                "files_done": state.files_done,
                "files_total": state.files_total,
                "bytes_done": state.bytes_done,
                "bytes_total": state.bytes_total,
            }
            progress(_DOWNLOAD_SHARE * state.fraction, "downloading", detail)

        return repository.fetch(files, downloaded)

    def _tokenizer(
        self, path: Path | None, architecture: Architecture
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

    def _voice_dir(self, archive: Path | None) -> Path | None:
        if not self.config.persona:
            return None
        if self.config.voice_dir is not None:
            if not self.config.voice_dir.is_dir():
                raise EngineError(f"MOSHI_VOICE_DIR {self.config.voice_dir} is not a directory")
            return self.config.voice_dir
        if archive is None:
            raise EngineError(
                f"{self.config.repo} has no {VOICES_ARCHIVE}; set MOSHI_VOICE_DIR to a directory "
                "of voice prompts (.pt stored voices or audio files)"
            )
        return unpack_voices(archive)

    @staticmethod
    def _list_voices(voice_dir: Path | None) -> tuple[str, ...]:
        if voice_dir is None:
            return ()
        suffixes = (prompts.STORED_VOICE_SUFFIX, *prompts.AUDIO_VOICE_SUFFIXES)
        return tuple(sorted(p.name for p in voice_dir.iterdir() if p.suffix in suffixes))

    def _warm_up(self) -> None:
        # First steps allocate caches and pick kernels; a user should not wait for that.
        started = time.perf_counter()
        session = self._open(Sampling(), seed=0, persona=None)
        try:
            silence = np.zeros(FRAME_SAMPLES, dtype=np.float32)
            for _ in range(_WARMUP_FRAMES):
                session.step(silence)
        finally:
            session.close()
        log.info("warm-up: %d frames in %.2f s", _WARMUP_FRAMES, time.perf_counter() - started)

    # Conversations --------------------------------------------------------------------------

    def start_session(self, params: ChatParams) -> ModelSession:
        sampling = Sampling(
            temperature=params.temperature,
            temperature_text=params.temperature_text,
            top_k=params.top_k,
        )
        seed = params.seed if params.seed is not None else int.from_bytes(os.urandom(4), "little")
        return self._open(sampling, seed, params if self.config.persona else None)

    def _open(self, sampling: Sampling, seed: int, persona: ChatParams | None) -> ModelSession:
        loaded = self.loaded
        if not self._busy.acquire(blocking=False):
            raise EngineError("the model is serving another conversation")
        try:
            torch.manual_seed(seed)
            loaded.mimi.reset_streaming()
            loaded.lm.reset_streaming()
            # CUDA graphs cannot hold the CPU half of an offloaded model.
            graphs = self.config.cuda_graphs and not self.config.cpu_offload
            generator = PersonaGenerator(loaded.lm, sampling, cuda_graphs=graphs)
            if persona is not None:
                started = time.perf_counter()
                self._prompt(generator, persona)
                log.info(
                    "persona prompts (voice %s, %d text tokens, seed %d) in %.2f s",
                    persona.voice_prompt,
                    len(self._text_tokens(persona.text_prompt)),
                    seed,
                    time.perf_counter() - started,
                )
            return ModelSession(self, generator)
        except BaseException:
            self._busy.release()
            raise

    def _text_tokens(self, text: str) -> list[int]:
        return list(self.loaded.tokenizer.Encode(prompts.system_prompt(text)))

    def _prompt(self, generator: PersonaGenerator, params: ChatParams) -> None:
        silence_frames = round(self.config.silence_s * 12.5)
        voice = self.voice(params.voice_prompt)
        loaded = self.loaded
        prompter = prompts.PersonaPrompter(
            generator, loaded.mimi, loaded.lm.text_padding_token_id, self._observer
        )
        prompter.run(voice, self._text_tokens(params.text_prompt), silence_frames)

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

    def release(self) -> None:
        self._busy.release()


class ModelSession(EngineSession):
    def __init__(self, engine: ModelEngine, generator: PersonaGenerator) -> None:
        self._engine = engine
        self._loaded = engine.loaded
        self._generator = generator
        self._device = generator.cache.device
        self._streams = generator.streams
        self._closed = False

    @torch.no_grad()
    def step(self, frame: Pcm) -> StepResult:
        loaded = self._loaded
        pcm = torch.from_numpy(np.ascontiguousarray(frame, dtype=np.float32))
        codes = loaded.mimi.encode(pcm.to(self._device)[None, None])
        tokens = self._generator.step(user=codes[0, :, 0])
        if tokens is None:
            return StepResult(pcm=np.zeros(0, dtype=np.float32))
        audio = loaded.mimi.decode(tokens[1:].view(1, self._streams, 1))
        out = audio[0, 0].float().cpu().numpy()
        return StepResult(pcm=out, text=self._text(int(tokens[0])))

    def _text(self, token: int) -> tuple[str, ...]:
        tokenizer = self._loaded.tokenizer
        if token in _TEXT_TOKENS_SKIPPED or token >= tokenizer.GetPieceSize():
            return ()
        if tokenizer.IsControl(token) or tokenizer.IsUnknown(token):
            return ()
        return (tokenizer.IdToPiece(token).replace("\u2581", " "),)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._engine.release()


def _ignore(state: DownloadProgress) -> None:
    pass


def _present(files: Mapping[str, Path | None], name: str) -> Path:
    path = files.get(name)
    if path is None:
        raise EngineError(f"{name} is missing")
    return path
