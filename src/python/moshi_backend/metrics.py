"""Prometheus metrics of one server, in a registry of its own (tests run several servers)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Around the 80 ms real-time budget of one frame.
_FRAME_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.12, 0.16, 0.32, 0.64, 1.28)
# A batched model step: 20-80 ms finely (a GPU's range within the frame), then a CPU's.
_STEP_BUCKETS = (0.01, 0.02, 0.03, 0.04, 0.05, 0.06, 0.07, 0.08, 0.1, 0.16, 0.32, 0.64, 1.28, 2.56)
_BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64)


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
        self.step_seconds = Histogram(
            "moshi_step_seconds",
            "Time of one batched model step (Mimi encode, LM, Mimi decode of every slot)",
            buckets=_STEP_BUCKETS,
            registry=r,
        )
        self.step_batch_size = Histogram(
            "moshi_step_batch_size",
            "Conversations one model step advanced (live and prompting)",
            buckets=_BATCH_BUCKETS,
            registry=r,
        )
        self.frames_late = Counter(
            "moshi_frames_late",
            "Frames answered more than a frame period (80 ms) after they reached the model",
            registry=r,
        )

    def record_step(self, batch_size: int, seconds: float, late_frames: int) -> None:
        """A StepObserver: called by batching engines from their step thread."""
        self.step_seconds.observe(seconds)
        self.step_batch_size.observe(batch_size)
        if late_frames:
            self.frames_late.inc(late_frames)

    def render(self) -> bytes:
        return generate_latest(self.registry)
