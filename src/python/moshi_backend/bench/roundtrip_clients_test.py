from __future__ import annotations

import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager

import numpy as np
import pytest

from moshi_backend.bench.roundtrip_clients import Arrival, measure
from moshi_backend.bench.roundtrip_targets import (
    FLOOR,
    SERVER,
    TELEMETRY_OFF,
    TELEMETRY_ON,
    BenchError,
    Target,
    running_targets,
    telemetry_targets,
)
from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.messages import FRAME_SAMPLES, FRAME_SECONDS

_FRAMES = 13
_WARMUP = 3


async def test_a_target_that_is_not_there_is_an_error() -> None:
    nowhere = Target("nowhere", "http://127.0.0.1:9")  # discard port: nothing listens
    with pytest.raises(BenchError, match="nowhere"):
        await measure(nowhere, 2, [b""], warmup_frames=0, connect_timeout_s=5)


@pytest.mark.parametrize(
    ("targets_of", "names"),
    [(running_targets, {SERVER, FLOOR}), (telemetry_targets, {TELEMETRY_ON, TELEMETRY_OFF})],
)
async def test_measures_both_targets_against_real_servers(
    targets_of: Callable[[int], AbstractAsyncContextManager[dict[str, Target]]], names: set[str]
) -> None:
    # No timing thresholds: the numbers depend on the machine; only their sanity is checked.
    pages = ogg_pages(tone(_FRAMES * FRAME_SECONDS)[: _FRAMES * FRAME_SAMPLES])
    assert len(pages) == _FRAMES
    # telemetry_targets fails on the way out when the telemetry target exported nothing.
    async with targets_of(2) as targets:
        assert set(targets) == names
        for name, target in targets.items():
            result = await measure(target, 2, pages, warmup_frames=_WARMUP)
            assert result.target == name and result.sessions == 2
            assert result.frames_sent == 2 * _FRAMES
            # A starved machine may make the server drop a frame; that is counted, not hidden.
            assert result.frames == 2 * (_FRAMES - _WARMUP) - result.frames_lost
            assert result.frames > 0
            latencies = np.asarray(result.latencies_ms)
            assert (latencies > 0).all() and np.isfinite(latencies).all()
            assert 0 < result.p50 <= result.p99
            if sys.platform == "linux":
                assert result.cpu_seconds is not None and result.cpu_seconds > 0


def test_spread_sessions_share_the_frame_period_and_a_burst_starts_them_together() -> None:
    assert Arrival.SPREAD.offsets(4) == [
        0.0,
        FRAME_SECONDS / 4,
        FRAME_SECONDS / 2,
        FRAME_SECONDS * 3 / 4,
    ]
    assert Arrival.BURST.offsets(3) == [0.0, 0.0, 0.0]
