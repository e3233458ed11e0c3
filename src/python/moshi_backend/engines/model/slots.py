"""Which conversation slots of a model process are taken; claims and releases from any thread."""

from __future__ import annotations

import heapq
import threading

from moshi_backend.engines.base import EngineError


class SlotTable:
    def __init__(self, capacity: int) -> None:
        if capacity < 1:
            raise ValueError("capacity must be >= 1")
        self.capacity = capacity
        # A heap: the lowest free slot in O(log n), instead of a scan over every slot.
        self._free = list(range(capacity))
        self._taken: set[int] = set()
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        with self._lock:
            return len(self._taken)

    def claim(self) -> int:
        """The lowest free slot; EngineError at once when every slot is taken."""
        with self._lock:
            if not self._free:
                raise EngineError(
                    f"busy: {self.capacity} of {self.capacity} conversation slots are in use"
                )
            slot = heapq.heappop(self._free)
            self._taken.add(slot)
            return slot

    def release(self, slot: int) -> None:
        with self._lock:
            if slot not in self._taken:
                raise ValueError(f"slot {slot} is not taken")
            self._taken.remove(slot)
            heapq.heappush(self._free, slot)
