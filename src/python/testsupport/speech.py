"""Synthetic speech for the fake microphone of browser tests (espeak-ng, then sox to 48 kHz)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from testsupport.gate import Unavailable

# Long enough to hold a few model frames of speech and pauses; Chromium loops the file.
SPEECH_TEXT = (
    "Hello! I would like to book a bike for tomorrow morning. "
    "How much does it cost for two hours, and are you open at eight?"
)


def make_speech_wav(directory: Path, text: str = SPEECH_TEXT) -> Path:
    """A 48 kHz mono WAV of synthetic speech; Unavailable without espeak-ng or sox."""
    espeak, sox = shutil.which("espeak-ng"), shutil.which("sox")
    if espeak is None or sox is None:
        raise Unavailable("espeak-ng and sox are needed to make the microphone's speech")
    raw, wav = directory / "espeak.wav", directory / "speech.wav"
    for command in (
        [espeak, "-w", str(raw), text],
        [sox, str(raw), "-r", "48000", "-c", "1", str(wav)],
    ):
        result = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
        if result.returncode != 0:
            raise Unavailable(f"{command[0]} exited {result.returncode}: {result.stderr.strip()}")
    return wav
