from __future__ import annotations

import pytest

from moshi_backend.bench.roundtrip_times import SessionTimes, merged, round_trips


def test_round_trips_pair_pages_with_echoes_after_the_warm_up() -> None:
    times = [
        SessionTimes(sent=(0.0, 0.08, 0.16, 0.24), received=(0.5, 0.081, 0.162, 0.243)),
        SessionTimes(sent=(1.0, 1.08, 1.16), received=(1.5, 1.084)),
    ]
    result = round_trips("x", times, warmup_frames=1)
    assert result.sessions == 2 and result.frames_sent == 7 and result.frames_lost == 1
    assert result.latencies_ms == pytest.approx((1.0, 2.0, 3.0, 4.0))
    assert result.p50 == pytest.approx(2.5)
    both = merged([result, round_trips("x", times[:1], warmup_frames=3)])
    assert both.frames_sent == 11 and both.frames_lost == 1 and both.frames == 5
