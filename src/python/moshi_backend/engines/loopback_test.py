from __future__ import annotations

import numpy as np

from moshi_backend.engines.base import Pcm
from moshi_backend.engines.loopback import LoopbackEngine
from moshi_protocol.messages import FRAME_SAMPLES
from moshi_protocol.params import ChatParams


def _frames(count: int) -> list[Pcm]:
    ramp = np.arange(count * FRAME_SAMPLES, dtype=np.float32) / (count * FRAME_SAMPLES)
    return list(ramp.reshape(count, FRAME_SAMPLES))


def test_zero_delay_echoes_each_frame_at_once() -> None:
    session = LoopbackEngine(delay_ms=0).start_session(ChatParams())
    for frame in _frames(3):
        np.testing.assert_array_equal(session.step(frame).pcm, frame)


def test_delay_is_silence_then_the_same_samples() -> None:
    session = LoopbackEngine(delay_ms=100).start_session(ChatParams())
    frames = _frames(4)
    out = np.concatenate([session.step(f).pcm for f in frames])
    delay = 100 * 24  # samples at 24 kHz
    assert not out[:delay].any()
    np.testing.assert_array_equal(out[delay:], np.concatenate(frames)[: len(out) - delay])


def test_says_it_is_a_development_engine() -> None:
    engine = LoopbackEngine(delay_ms=0, capacity=3)
    assert engine.info.development and engine.info.capacity == 3
    assert "development" in engine.start_session(ChatParams()).opening_text[0]
