"""Ogg/Opus streams of `/api/chat` audio, cut into the model's 80 ms frames."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt
import sphn

from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE, CloseCode, ProtocolError

Pcm = npt.NDArray[np.float32]


class OpusFrameDecoder:
    """Ogg/Opus bytes in, in pieces of any size; whole 1920-sample frames out."""

    def __init__(self) -> None:
        self._reader = sphn.OpusStreamReader(SAMPLE_RATE)
        self._carry: Pcm = np.zeros(0, dtype=np.float32)

    def feed(self, data: bytes) -> list[Pcm]:
        try:
            pcm = self._reader.append_bytes(data)
        except ValueError as error:
            raise ProtocolError(
                f"audio is not an Ogg/Opus stream ({error})", CloseCode.UNSUPPORTED_DATA
            ) from None
        if pcm.size == 0:
            return []
        samples = np.concatenate([self._carry, pcm.astype(np.float32, copy=False)])
        whole = samples.size - samples.size % FRAME_SAMPLES
        self._carry = samples[whole:]
        return list(samples[:whole].reshape(-1, FRAME_SAMPLES))


class OpusEncoder:
    """PCM in; the Ogg/Opus bytes that are ready out (possibly none yet)."""

    def __init__(self) -> None:
        self._writer = sphn.OpusStreamWriter(SAMPLE_RATE)

    def encode(self, pcm: Pcm) -> bytes:
        return bytes(self._writer.append_pcm(pcm.astype(np.float32, copy=False)))
