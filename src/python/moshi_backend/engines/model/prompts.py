"""PersonaPlex's persona conditioning: what runs through the model before the handshake.

Order: the voice prompt (its Mimi tokens forced as the model's own audio), silence, the
`<system> ... <system>` text prompt one token per frame, silence. Meanwhile the user's stream is
held at a fixed "sine" frame and the text at padding, as in PersonaPlex's training. The prompt is
a list of steps that the step loop feeds to the conversation's slot, beside the other slots' work.
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


@dataclass(frozen=True)
class PromptStep:
    """One frame of a persona prompt: what its slot provides to the model for it."""

    phase: Phase
    text: int
    user: torch.Tensor
    # The model's own audio tokens; None: the Mimi tokens of own_pcm, encoded with the batch.
    own: torch.Tensor | None = None
    own_pcm: Pcm | None = None
    # A stored voice's input embedding, replacing the model's input column.
    embedded: torch.Tensor | None = None
    # After this step: the slot's token cache becomes this one (the end of a stored voice).
    restore_cache: torch.Tensor | None = None
    # After this step: the slot's Mimi starts afresh (the end of an audio voice).
    reset_codec: bool = False


@dataclass(frozen=True)
class PromptTokens:
    """What persona prompts are made of, on the model's device, for one model."""

    silence: torch.Tensor  # [S]
    sine: torch.Tensor  # [S]
    start: torch.Tensor  # [2S]: the start tokens of the model's and the user's audio
    text_pad: int
    dim: int
    dtype: torch.dtype
    cache_shape: tuple[int, ...]  # [1, rows, columns] of one slot's token cache

    @classmethod
    def for_generator(cls, generator: PersonaGenerator, text_pad: int) -> PromptTokens:
        device = generator.cache.device
        streams = generator.streams
        return cls(
            silence=_fixed(SILENCE_TOKENS, streams, device),
            sine=_fixed(SINE_TOKENS, streams, device),
            start=generator.initial[0, 1:, 0],
            text_pad=text_pad,
            dim=generator.lm.dim,
            dtype=generator.lm_dtype,
            cache_shape=(1, *generator.cache.shape[1:]),
        )


def _fixed(tokens: tuple[int, ...], streams: int, device: torch.device) -> torch.Tensor:
    if streams != len(tokens):
        raise EngineError(f"persona prompts need 8 audio codebooks per stream, not {streams}")
    return torch.tensor(tokens, dtype=torch.long, device=device)


def persona_steps(
    voice: Voice, text_tokens: list[int], silence_frames: int, tokens: PromptTokens
) -> list[PromptStep]:
    """The whole persona prompt, frame by frame, in PersonaPlex's order."""
    silence = [PromptStep(Phase.SILENCE, tokens.text_pad, tokens.sine, own=tokens.silence)]
    text = [PromptStep(Phase.TEXT, token, tokens.sine, own=tokens.silence) for token in text_tokens]
    return [
        *voice_steps(voice, tokens),
        *silence * silence_frames,
        *text,
        *silence * silence_frames,
    ]


def voice_steps(voice: Voice, tokens: PromptTokens) -> list[PromptStep]:
    if isinstance(voice, AudioVoice):
        frames = list(_frames(voice.pcm))
        return [
            PromptStep(
                Phase.VOICE,
                tokens.text_pad,
                tokens.sine,
                own_pcm=frame,
                reset_codec=index == len(frames) - 1,
            )
            for index, frame in enumerate(frames)
        ]
    if voice.embeddings.dim() != 4 or voice.embeddings.shape[-1] != tokens.dim:
        raise EngineError(
            f"stored voice has embeddings {tuple(voice.embeddings.shape)}; this model "
            f"needs [frames, 1, 1, {tokens.dim}]: it was made for another model"
        )
    if tuple(voice.cache.shape) != tokens.cache_shape:
        raise EngineError(
            f"stored voice has a token cache {tuple(voice.cache.shape)}; this model "
            f"uses {tokens.cache_shape}: it was made for another model"
        )
    if len(voice.embeddings) == 0:
        raise EngineError("stored voice holds no frames")
    streams = len(tokens.silence)
    device = tokens.silence.device
    embeddings = voice.embeddings.to(device=device, dtype=tokens.dtype)
    return [
        PromptStep(
            Phase.VOICE,
            tokens.text_pad,
            tokens.start[streams:],
            own=tokens.start[:streams],
            embedded=embedded,
            restore_cache=voice.cache if index == len(embeddings) - 1 else None,
        )
        for index, embedded in enumerate(embeddings)
    ]
