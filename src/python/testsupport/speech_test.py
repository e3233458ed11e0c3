from __future__ import annotations

import wave
from pathlib import Path

import pytest

from testsupport.gate import Unavailable, require
from testsupport.speech import make_speech_wav


def test_speech_is_48khz_mono_and_seconds_long(tmp_path: Path) -> None:
    wav = require("espeak-ng and sox", lambda: make_speech_wav(tmp_path, "Testing one two."))
    with wave.open(str(wav)) as audio:
        assert (audio.getframerate(), audio.getnchannels()) == (48_000, 1)
        assert audio.getnframes() / audio.getframerate() > 0.5


def test_missing_tools_are_unavailable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(Unavailable, match="espeak-ng and sox"):
        make_speech_wav(tmp_path)
