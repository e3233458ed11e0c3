from __future__ import annotations

from moshi_backend.bench.roundtrip import run_order
from moshi_backend.bench.roundtrip_targets import FLOOR, SERVER


def test_run_order_gives_each_target_early_and_late_slots() -> None:
    assert run_order(0, 2) == [SERVER, FLOOR, FLOOR, SERVER]
    assert run_order(1, 2) == [FLOOR, SERVER, SERVER, FLOOR]
    assert run_order(0, 1) == [SERVER, FLOOR]
