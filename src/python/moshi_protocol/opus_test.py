from __future__ import annotations

import numpy as np
import pytest

from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE, CloseCode, ProtocolError
from moshi_protocol.opus import OpusEncoder, OpusFrameDecoder, Pcm


def _tone(seconds: float, hz: float = 440.0) -> Pcm:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.5 * np.sin(2 * np.pi * hz * t)).astype(np.float32)


def test_round_trip_in_small_pieces_gives_whole_frames() -> None:
    encoder, decoder = OpusEncoder(), OpusFrameDecoder()
    tone = _tone(1.2)
    stream = b"".join(encoder.encode(f) for f in tone.reshape(-1, FRAME_SAMPLES))
    frames = []
    for start in range(0, len(stream), 100):  # pieces that cut Ogg pages anywhere
        frames += decoder.feed(stream[start : start + 100])
    assert all(f.shape == (FRAME_SAMPLES,) for f in frames)
    decoded = np.concatenate(frames)
    assert decoded.size >= tone.size - 2 * FRAME_SAMPLES
    # Lossy codec: compare loudness, not samples.
    rms = float(np.sqrt(np.mean(decoded[FRAME_SAMPLES:] ** 2)))
    assert rms == pytest.approx(0.5 / np.sqrt(2), rel=0.15)


def test_garbage_is_a_protocol_error() -> None:
    with pytest.raises(ProtocolError, match="not an Ogg/Opus stream") as caught:
        OpusFrameDecoder().feed(b"RIFF\x00\x00\x00\x00WAVEfmt " * 8)
    assert caught.value.close_code is CloseCode.UNSUPPORTED_DATA
