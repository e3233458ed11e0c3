"""The process's memory and CPU as observable gauges, read when the metric reader collects."""

from __future__ import annotations

from collections.abc import Iterable

import psutil
from opentelemetry.metrics import CallbackOptions, Meter, Observation


def register_process_metrics(meter: Meter) -> None:
    """process.memory.rss (bytes) and process.cpu.utilization (1 = one core busy).

    The callbacks run on the reader's thread at each collection, never on an event loop.
    """
    process = psutil.Process()
    # The first reading of cpu_percent has nothing to compare with and says 0; this one is it.
    process.cpu_percent(interval=None)

    def rss(options: CallbackOptions) -> Iterable[Observation]:
        yield Observation(process.memory_info().rss)

    def cpu(options: CallbackOptions) -> Iterable[Observation]:
        # Since the previous collection: cpu_percent keeps the last reading itself.
        yield Observation(process.cpu_percent(interval=None) / 100.0)

    meter.create_observable_gauge(
        "process.memory.rss", callbacks=[rss], unit="By", description="Resident set size"
    )
    meter.create_observable_gauge(
        "process.cpu.utilization",
        callbacks=[cpu],
        unit="1",
        description="CPU time per wall time since the last collection (1 = one core)",
    )
