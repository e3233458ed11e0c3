"""Audio voice prompts are brought to the level PersonaPlex's voices were encoded at."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pyloudnorm
import pytest
import sphn

from moshi_backend.engines.model.prompts import VOICE_LOUDNESS_LUFS, AudioVoice, load_voice
from moshi_backend.engines.model.testing_checkpoints import voice_audio
from moshi_protocol.messages import SAMPLE_RATE
from moshi_protocol.opus import Pcm

# ITU-R BS.1770's reference: a 0 dBFS 997 Hz sine in one channel measures -3.01 LKFS. pyloudnorm
# designs its K-weighting filters for the sample rate instead of using the recommendation's
# 48 kHz coefficients, and reads a few hundredths of a dB lower.
FULL_SCALE_997_HZ_LUFS = -3.01
REFERENCE_TOLERANCE_DB = 0.1


def loaded_audio(path: Path, pcm: Pcm) -> Pcm:
    sphn.write_wav(str(path), pcm, SAMPLE_RATE)
    voice = load_voice(path)
    assert isinstance(voice, AudioVoice)
    return voice.pcm


def loudness(pcm: Pcm) -> float:
    return float(pyloudnorm.Meter(SAMPLE_RATE).integrated_loudness(pcm.astype(np.float64)))


def test_a_full_scale_997_hz_sine_gets_the_gain_bs1770_prescribes(tmp_path: Path) -> None:
    t = np.arange(5 * SAMPLE_RATE) / SAMPLE_RATE
    sine = np.sin(2 * np.pi * 997.0 * t).astype(np.float32)
    pcm = loaded_audio(tmp_path / "sine.wav", sine)
    gain_db = 20 * math.log10(float(np.abs(pcm).max()) / float(np.abs(sine).max()))
    assert gain_db == pytest.approx(
        VOICE_LOUDNESS_LUFS - FULL_SCALE_997_HZ_LUFS, abs=REFERENCE_TOLERANCE_DB
    )


def test_a_quiet_voice_is_brought_to_minus_24_lufs(tmp_path: Path) -> None:
    quiet = 0.05 * voice_audio(seconds=3.0)
    assert loudness(quiet) < VOICE_LOUDNESS_LUFS - 10
    pcm = loaded_audio(tmp_path / "quiet.wav", quiet)
    assert pcm.dtype == np.float32
    assert loudness(pcm) == pytest.approx(VOICE_LOUDNESS_LUFS, abs=0.01)


def test_a_stereo_voice_uses_its_first_channel(tmp_path: Path) -> None:
    left = 0.05 * voice_audio(seconds=2.0)
    path = tmp_path / "stereo.wav"
    sphn.write_wav(str(path), np.stack([left, np.zeros_like(left)]), SAMPLE_RATE)
    voice = load_voice(path)
    assert isinstance(voice, AudioVoice) and voice.pcm.shape == left.shape
    assert loudness(voice.pcm) == pytest.approx(VOICE_LOUDNESS_LUFS, abs=0.01)


@pytest.mark.parametrize(
    "pcm",
    [np.zeros(SAMPLE_RATE, dtype=np.float32), voice_audio(seconds=0.3)],
    ids=["silence", "shorter than one 400 ms gating block"],
)
def test_unmeasurable_voices_are_used_as_they_are(tmp_path: Path, pcm: Pcm) -> None:
    path = tmp_path / "voice.wav"
    loaded = loaded_audio(path, pcm)
    as_stored, _ = sphn.read(str(path))
    assert np.isfinite(loaded).all()
    assert np.array_equal(loaded, as_stored[0])
