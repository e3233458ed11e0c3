"""The backend's OTLP metrics, read from the same counts as its Prometheus ones (metrics.py).

Observable instruments are read by the metric reader's thread at each collection; the only
instrument recorded on the event loop is the step histogram, which the SDK aggregates in memory.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from opentelemetry.metrics import CallbackOptions, Histogram, Meter, Observation

from moshi_backend.metrics import ServerMetrics

# 1-500 ms finely (a GPU's step is 20-80 ms, a CPU's hundreds), a few beyond for stalls.
STEP_MS_BUCKETS = (
    1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 40.0, 50.0, 60.0, 70.0, 80.0, 100.0, 120.0, 160.0, 200.0,
    250.0, 320.0, 400.0, 500.0, 750.0, 1000.0, 2000.0, 5000.0,
)  # fmt: skip


class OtelMetrics:
    def __init__(self, meter: Meter, prometheus: ServerMetrics, active: Callable[[], int]) -> None:
        self.step_ms: Histogram = meter.create_histogram(
            "moshi.step.duration",
            unit="ms",
            description="Time one conversation's 80 ms frame took through the engine",
            explicit_bucket_boundaries_advisory=STEP_MS_BUCKETS,
        )

        def conversations(options: CallbackOptions) -> Iterable[Observation]:
            yield Observation(active())

        meter.create_observable_gauge(
            "moshi.conversations.active",
            callbacks=[conversations],
            unit="{conversation}",
            description="Conversations open now",
        )
        registry = prometheus.registry

        def counted(sample: str) -> Callable[[CallbackOptions], Iterable[Observation]]:
            # The Prometheus counter is the one count: the two exports cannot disagree.
            def read(options: CallbackOptions) -> Iterable[Observation]:
                yield Observation(registry.get_sample_value(sample) or 0.0)

            return read

        meter.create_observable_counter(
            "moshi.frames.dropped",
            callbacks=[counted("moshi_frames_dropped_total")],
            unit="{frame}",
            description="Input frames dropped because the engine fell behind real time",
        )
        meter.create_observable_counter(
            "moshi.frames.late",
            callbacks=[counted("moshi_frames_late_total")],
            unit="{frame}",
            description="Frames answered more than 80 ms after they reached the model",
        )
