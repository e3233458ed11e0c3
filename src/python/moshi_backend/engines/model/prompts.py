"""PersonaPlex's persona conditioning: what runs through the model before the handshake.

Order: the voice prompt (its Mimi tokens forced as the model's own audio), silence, the
`<system> ... <system>` text prompt one token per frame, silence. Meanwhile the user's stream is
held at a fixed "sine" frame and the text at padding, as in PersonaPlex's training.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import numpy as np
import pyloudnorm
import sphn
import torch
from moshi.models.compression import MimiModel

from moshi_backend.engines.base import EngineError, Pcm
from moshi_backend.engines.model.generator import PersonaGenerator
from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE

# Mimi token frames of silence and of a 440 Hz tone, as PersonaPlex-7B-v1 was trained with them.
SILENCE_TOKENS = (948, 243, 1178, 546, 1736, 1030, 1978, 2008)
SINE_TOKENS = (430, 1268, 381, 1611, 1095, 1495, 56, 472)
# PersonaPlex's voice prompts were encoded at this integrated loudness (ITU-R BS.1770), which
# NVIDIA's reference measures with pyloudnorm; an audio voice prompt is brought to it first.
VOICE_LOUDNESS_LUFS = -24.0
AUDIO_VOICE_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
STORED_VOICE_SUFFIX = ".pt"


class Phase(str, Enum):
    VOICE = "voice"
    SILENCE = "silence"
    TEXT = "text"


# Called once per prompt frame: phase, the forced text token, own-audio and user-audio tokens.
PromptObserver = Callable[[Phase, int, tuple[int, ...], tuple[int, ...]], None]


def system_prompt(text: str) -> str:
    cleaned = " ".join(text.split())
    if cleaned.startswith("<system>") and cleaned.endswith("<system>") and len(cleaned) > 16:
        return cleaned
    return f"<system> {cleaned} <system>"


@dataclass(frozen=True)
class StoredVoice:
    """Per-frame input embeddings of an encoded voice prompt and the token cache after it."""

    embeddings: torch.Tensor  # [frames, 1, 1, dim]
    cache: torch.Tensor  # [1, rows, columns]


@dataclass(frozen=True)
class AudioVoice:
    pcm: Pcm  # mono, 24 kHz, normalised


Voice = StoredVoice | AudioVoice


def load_voice(path: Path) -> Voice:
    if path.suffix == STORED_VOICE_SUFFIX:
        try:
            stored = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # torch raises many types for a damaged file
            raise EngineError(f"voice {path.name} cannot be read: {error}") from None
        if not isinstance(stored, dict) or not {"embeddings", "cache"} <= stored.keys():
            raise EngineError(f"voice {path.name} lacks its 'embeddings' and 'cache'")
        return StoredVoice(stored["embeddings"], stored["cache"])
    try:
        pcm, rate = sphn.read(str(path))
    except Exception as error:  # sphn raises its own types for undecodable audio
        raise EngineError(f"voice {path.name} is not readable audio: {error}") from None
    mono = np.asarray(pcm, dtype=np.float32).reshape(-1, np.asarray(pcm).shape[-1])[0]
    if rate != SAMPLE_RATE:
        mono = sphn.resample(mono, src_sample_rate=rate, dst_sample_rate=SAMPLE_RATE)
    if mono.size == 0:
        raise EngineError(f"voice {path.name} holds no audio")
    return AudioVoice(_at_voice_loudness(np.asarray(mono, dtype=np.float32)))


def _at_voice_loudness(pcm: Pcm) -> Pcm:
    meter = pyloudnorm.Meter(SAMPLE_RATE)
    # pyloudnorm refuses audio shorter than one gating block and measures silence as -inf; such a
    # voice is used as it is instead of becoming an error or NaN.
    if pcm.size < meter.block_size * SAMPLE_RATE:
        return pcm
    loudness = float(meter.integrated_loudness(pcm.astype(np.float64)))
    if not math.isfinite(loudness):
        return pcm
    normalized = pyloudnorm.normalize.loudness(pcm, loudness, VOICE_LOUDNESS_LUFS)
    return np.asarray(normalized, dtype=np.float32)


def _frames(pcm: Pcm) -> Iterator[Pcm]:
    padded = np.concatenate([pcm, np.zeros(-pcm.size % FRAME_SAMPLES, dtype=np.float32)])
    yield from padded.reshape(-1, FRAME_SAMPLES)


class PersonaPrompter:
    """Runs the prompt phases through a fresh generator."""

    def __init__(
        self,
        generator: PersonaGenerator,
        mimi: MimiModel,
        text_pad: int,
        observer: PromptObserver | None = None,
    ) -> None:
        self.generator = generator
        self._mimi = mimi
        self._text_pad = text_pad
        self._observer = observer
        device = generator.cache.device
        streams = generator.streams
        self._silence = self._fixed(SILENCE_TOKENS, streams, device)
        self._sine = self._fixed(SINE_TOKENS, streams, device)

    @staticmethod
    def _fixed(tokens: tuple[int, ...], streams: int, device: torch.device) -> torch.Tensor:
        if streams != len(tokens):
            raise EngineError(f"persona prompts need 8 audio codebooks per stream, not {streams}")
        return torch.tensor(tokens, dtype=torch.long, device=device)

    def run(self, voice: Voice, text_tokens: list[int], silence_frames: int) -> None:
        self.voice(voice)
        self.silence(silence_frames)
        self.text(text_tokens)
        self.silence(silence_frames)

    def _step(self, phase: Phase, own: torch.Tensor, text: int, **extra: torch.Tensor) -> None:
        user = extra.pop("user", self._sine)
        if self._observer is not None:
            self._observer(phase, text, tuple(own.tolist()), tuple(user.tolist()))
        self.generator.step(user=user, own=own, text=text, **extra)

    def voice(self, voice: Voice) -> None:
        generator = self.generator
        if isinstance(voice, StoredVoice):
            dim = generator.lm.dim
            if voice.embeddings.dim() != 4 or voice.embeddings.shape[-1] != dim:
                raise EngineError(
                    f"stored voice has embeddings {tuple(voice.embeddings.shape)}; this model "
                    f"needs [frames, 1, 1, {dim}]: it was made for another model"
                )
            if tuple(voice.cache.shape) != tuple(generator.cache.shape):
                raise EngineError(
                    f"stored voice has a token cache {tuple(voice.cache.shape)}; this model "
                    f"uses {tuple(generator.cache.shape)}: it was made for another model"
                )
            start = generator.initial[0, 1:, 0]
            dtype = next(generator.lm.parameters()).dtype
            for embedded in voice.embeddings:
                self._step(
                    Phase.VOICE,
                    start[: generator.streams],
                    self._text_pad,
                    user=start[generator.streams :],
                    embedded=embedded.to(device=start.device, dtype=dtype),
                )
            generator.restore_cache(voice.cache)
            return
        with torch.no_grad():
            for frame in _frames(voice.pcm):
                pcm = torch.from_numpy(frame).to(generator.cache.device)[None, None]
                codes = self._mimi.encode(pcm)[0, :, 0]
                self._step(Phase.VOICE, codes, self._text_pad)
        self._mimi.reset_streaming()

    def silence(self, frames: int) -> None:
        for _ in range(frames):
            self._step(Phase.SILENCE, self._silence, self._text_pad)

    def text(self, tokens: list[int]) -> None:
        for token in tokens:
            self._step(Phase.TEXT, self._silence, token)
