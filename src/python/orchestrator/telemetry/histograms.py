"""Percentiles estimated from a histogram's buckets, the way Prometheus' histogram_quantile does:
linear interpolation inside the bucket that holds the rank."""

from __future__ import annotations

from collections.abc import Sequence


def explicit_quantile(
    q: float,
    bounds: Sequence[float],
    counts: Sequence[int],
    low: float | None = None,
    high: float | None = None,
) -> float | None:
    """bounds: the upper bounds of all buckets but the last (OTLP's explicit_bounds); counts: one
    per bucket; low/high: the recorded min and max, when sent. None when empty."""
    total = sum(counts)
    if total == 0 or len(counts) != len(bounds) + 1:
        return None
    rank = q * total
    seen = 0
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            if index == 0:
                # The first bucket is open below: durations and sizes start at 0.
                lower = low if low is not None else min(0.0, bounds[0] if bounds else 0.0)
            else:
                lower = bounds[index - 1]
            upper = bounds[index] if index < len(bounds) else (high if high is not None else lower)
            if low is not None:
                lower = max(lower, low)
            if high is not None:
                upper = min(upper, high)
            return lower + (upper - lower) * (rank - seen) / count
        seen += count
    return high


def exponential_quantile(
    q: float, scale: int, zero_count: int, offset: int, counts: Sequence[int]
) -> float | None:
    """Positive buckets only (durations and sizes are never negative): bucket i covers
    (base**(offset+i), base**(offset+i+1)] with base = 2**(2**-scale)."""
    total = zero_count + sum(counts)
    if total == 0:
        return None
    rank = q * total
    if rank <= zero_count:
        return 0.0
    base = 2.0 ** (2.0**-scale)
    seen = zero_count
    for index, count in enumerate(counts):
        if count and seen + count >= rank:
            lower = float(base ** (offset + index))
            upper = float(base ** (offset + index + 1))
            return float(lower + (upper - lower) * (rank - seen) / count)
        seen += count
    return float(base ** (offset + len(counts)))
