"""Prometheus metrics of one server, in a registry of its own (tests run several servers)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Around the 80 ms real-time budget of one frame.
_FRAME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.32, 0.64, 1.28)


class ServerMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.sessions_active = Gauge("moshi_sessions_active", "Conversations now", registry=r)
        self.sessions_capacity = Gauge("moshi_sessions_capacity", "Conversations max", registry=r)
        self.sessions = Counter(
            "moshi_sessions", "Conversations by outcome", ["outcome"], registry=r
        )
        self.frames_in = Counter("moshi_frames_in", "80 ms input frames received", registry=r)
        self.frames_out = Counter("moshi_frames_out", "Audio messages sent", registry=r)
        self.frames_dropped = Counter(
            "moshi_frames_dropped",
            "Input frames dropped because the engine fell behind real time",
            registry=r,
        )
        self.frame_seconds = Histogram(
            "moshi_frame_processing_seconds",
            "Engine time per 80 ms input frame",
            buckets=_FRAME_BUCKETS,
            registry=r,
        )

    def render(self) -> bytes:
        return generate_latest(self.registry)
