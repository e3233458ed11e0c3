from __future__ import annotations

import numpy as np
import pytest

from moshi_backend.step_times import StepTimes


def test_nothing_recorded_has_no_percentile() -> None:
    assert StepTimes().percentile(50) is None


@pytest.mark.parametrize("q", [1, 50, 90, 99, 100])
def test_percentiles_are_within_2_percent_above_numpys(q: float) -> None:
    values = np.random.default_rng(16).lognormal(mean=3.0, sigma=1.0, size=5000)  # ms, ~20 ms
    times = StepTimes()
    for value in values:
        times.add(float(value))
    exact = float(np.percentile(values, q, method="inverted_cdf"))
    estimate = times.percentile(q)
    assert times.count == 5000 and estimate is not None
    assert exact <= estimate <= exact * 1.02 + 1e-9


def test_values_beyond_the_buckets_stay_counted() -> None:
    times = StepTimes()
    for value in (0.0, 0.001, 1e9):
        times.add(value)
    assert times.percentile(1) == pytest.approx(0.01)
    top = times.percentile(100)
    assert top is not None and top > 90_000  # the last bound, about 100 s
