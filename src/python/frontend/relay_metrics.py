"""The relay's OTLP metrics: relays open now and relays since the start."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from opentelemetry.metrics import Meter


class RelayMetrics:
    def __init__(self, meter: Meter) -> None:
        self._active = meter.create_up_down_counter(
            "frontend.relays.active", unit="{relay}", description="/proxy/moshi relays open now"
        )
        self._total = meter.create_counter(
            "frontend.relays.total", unit="{relay}", description="/proxy/moshi relays accepted"
        )

    @contextmanager
    def relaying(self) -> Iterator[None]:
        """Counts one relay while the block runs (in memory; the reader's thread exports)."""
        self._total.add(1)
        self._active.add(1)
        try:
            yield
        finally:
            self._active.add(-1)
