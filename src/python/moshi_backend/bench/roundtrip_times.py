"""Round trips per frame from the send and echo times of each session, and their statistics."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import islice

import numpy as np


@dataclass(frozen=True)
class SessionTimes:
    """Monotonic send time of each page and arrival time of each 0x01 echo, in order."""

    sent: tuple[float, ...]
    received: tuple[float, ...]

    @property
    def lost(self) -> int:
        return len(self.sent) - len(self.received)


@dataclass(frozen=True)
class RoundTrips:
    target: str
    sessions: int
    frames_sent: int
    frames_lost: int
    latencies_ms: tuple[float, ...]
    # What the server spent on the run, handshakes and closes included: unlike the latencies,
    # other work on the machine hardly changes it.
    cpu_seconds: float | None = None

    @property
    def cpu_ms_per_frame(self) -> float | None:
        if self.cpu_seconds is None or not self.frames_sent:
            return None
        return self.cpu_seconds * 1000.0 / self.frames_sent

    @property
    def frames(self) -> int:
        """Frames timed: every echo after the warm-up ones."""
        return len(self.latencies_ms)

    def percentile(self, q: float) -> float:
        return float(np.percentile(np.asarray(self.latencies_ms), q))

    @property
    def p50(self) -> float:
        return self.percentile(50)

    @property
    def p99(self) -> float:
        return self.percentile(99)


def merged(parts: Sequence[RoundTrips]) -> RoundTrips:
    """The slices of one target at one session count, as one sample."""
    return RoundTrips(
        target=parts[0].target,
        sessions=parts[0].sessions,
        frames_sent=sum(part.frames_sent for part in parts),
        frames_lost=sum(part.frames_lost for part in parts),
        latencies_ms=tuple(value for part in parts for value in part.latencies_ms),
        cpu_seconds=(
            None
            if any(part.cpu_seconds is None for part in parts)
            else sum(part.cpu_seconds or 0.0 for part in parts)
        ),
    )


def round_trips(target: str, times: Sequence[SessionTimes], warmup_frames: int) -> RoundTrips:
    # Echoes come back in page order, one per page, so the n-th echo answers the n-th page. A
    # lost echo would shift that pairing; the table reports losses so such a row is not trusted.
    # Not strict: the echoes of the last pages may never have come.
    pairs = (zip(session.sent, session.received, strict=False) for session in times)
    latencies = [
        (received - sent) * 1000.0
        for session_pairs in pairs
        for sent, received in islice(session_pairs, warmup_frames, None)
    ]
    return RoundTrips(
        target=target,
        sessions=len(times),
        frames_sent=sum(len(session.sent) for session in times),
        frames_lost=sum(session.lost for session in times),
        latencies_ms=tuple(latencies),
    )
