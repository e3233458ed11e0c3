"""Percentiles of one conversation's step times in constant memory and a few µs per frame."""

from __future__ import annotations

import bisect
import math

# Geometric buckets 2% apart from 0.01 ms to 100 s: a percentile is read as its bucket's upper
# bound, at most 2% above the true value; a conversation of hours costs the same few KiB.
_LOWEST_MS = 0.01
_RATIO = 1.02
_BOUNDS = tuple(
    _LOWEST_MS * _RATIO**i for i in range(math.ceil(math.log(1e7) / math.log(_RATIO)))
)


class StepTimes:
    def __init__(self) -> None:
        self._counts = [0] * (len(_BOUNDS) + 1)
        self.count = 0

    def add(self, ms: float) -> None:
        self._counts[bisect.bisect_left(_BOUNDS, ms)] += 1
        self.count += 1

    def percentile(self, q: float) -> float | None:
        """The q-th percentile (0-100) in ms, to 2%; None before the first step."""
        if not self.count:
            return None
        rank = max(1, math.ceil(self.count * q / 100))
        seen = 0
        for index, count in enumerate(self._counts):
            seen += count
            if seen >= rank:
                return _BOUNDS[min(index, len(_BOUNDS) - 1)]
        raise AssertionError("unreachable: the counts add up to count")
