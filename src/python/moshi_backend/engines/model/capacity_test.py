"""How many conversation slots a model process holds, from the configuration and free memory."""

from __future__ import annotations

import pytest
import torch

from moshi_backend.engines.base import EngineError
from moshi_backend.engines.model.architecture import PERSONAPLEX_7B_LM, Architecture
from moshi_backend.engines.model.capacity import DEFAULT_SLOT_CAP, plan_slots, slot_state_bytes
from moshi_backend.engines.model.devices import GIB
from moshi_backend.engines.model.slots import SlotTable
from moshi_backend.engines.model.weights import lm_parameter_bytes

PERSONAPLEX = Architecture(lm=PERSONAPLEX_7B_LM)


def test_a_personaplex_slot_is_mostly_its_kv_cache() -> None:
    # 32 layers x 3000 positions x 4096 x (keys, values) x 2 bytes = 1.46 GiB, plus Mimi's
    # caches and the step's buffers.
    per_slot = slot_state_bytes(PERSONAPLEX, torch.bfloat16)
    assert 1.46 * GIB < per_slot < 1.6 * GIB
    assert slot_state_bytes(PERSONAPLEX, torch.float32) > 2 * 1.46 * GIB


@pytest.mark.parametrize(
    ("free_gib", "requested", "slots"),
    [
        (79.0, None, DEFAULT_SLOT_CAP),  # an 80 GB H100: room for 38, the cap applies
        (21.0, None, 1),  # a 24 GB L4: the weights (15.6 GiB) and one conversation
        (46.0, None, 16),  # a 48 GB L40S: room for 17
        (79.0, 24, 24),  # asked for, and it fits
    ],
)
def test_the_default_is_what_fits_up_to_the_cap(
    free_gib: float, requested: int | None, slots: int
) -> None:
    weights = lm_parameter_bytes(PERSONAPLEX, torch.bfloat16)
    per_slot = slot_state_bytes(PERSONAPLEX, torch.bfloat16)
    plan = plan_slots(requested, weights, per_slot, int(free_gib * GIB), "cuda:0 (test)")
    assert plan.slots == slots
    line = plan.describe()
    assert "\n" not in line and f"{slots} conversation slot(s) on cuda:0 (test)" in line
    assert "per-slot state" in line and f"{free_gib:.1f} GiB free" in line


def test_an_explicit_number_that_does_not_fit_fails_in_one_line() -> None:
    weights = lm_parameter_bytes(PERSONAPLEX, torch.bfloat16)
    per_slot = slot_state_bytes(PERSONAPLEX, torch.bfloat16)
    with pytest.raises(EngineError) as refused:
        plan_slots(4, weights, per_slot, 21 * GIB, "cuda:0 (L4)")
    message = str(refused.value)
    assert "\n" not in message
    assert "cuda:0 (L4) for 4 conversation slot(s)" in message
    assert "21.0 GiB are free, room for 1" in message and "MOSHI_MAX_SESSIONS=1" in message


def test_the_slot_table_hands_out_the_lowest_free_slot_and_refuses_when_full() -> None:
    table = SlotTable(3)
    assert [table.claim() for _ in range(3)] == [0, 1, 2]
    with pytest.raises(EngineError, match="busy: 3 of 3 conversation slots are in use"):
        table.claim()
    table.release(1)
    assert table.in_use == 2 and table.claim() == 1
    table.release(0)
    with pytest.raises(ValueError, match="slot 0 is not taken"):
        table.release(0)
