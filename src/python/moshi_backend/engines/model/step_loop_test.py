"""The step loop's bookkeeping, with a stepper that records what it is asked (no model)."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Mapping

import numpy as np
import pytest
import torch

from moshi_backend.engines.base import EngineError, Pcm
from moshi_backend.engines.model.batch_step import FrameOut
from moshi_backend.engines.model.prompts import Phase, PromptStep
from moshi_backend.engines.model.sampling import Sampling
from moshi_backend.engines.model.step_loop import StepLoop

_TOKENS = torch.zeros(8, dtype=torch.long)
_FRAME = np.zeros(1920, dtype=np.float32)


def prompt(steps: int) -> list[PromptStep]:
    return [PromptStep(Phase.SILENCE, index, _TOKENS, own=_TOKENS) for index in range(steps)]


class RecordingStepper:
    def __init__(self, seconds: float = 0.0, fail_prompting: int | None = None) -> None:
        self.seconds = seconds
        self.fail_prompting = fail_prompting
        self.calls: list[tuple[set[int], dict[int, int]]] = []
        self.resets: list[list[int]] = []
        self.seeds: dict[int, int] = {}
        self.lock = threading.Lock()

    def assign(self, slot: int, sampling: Sampling, seed: int) -> None:
        self.seeds[slot] = seed

    def reset(self, slots: list[int]) -> None:
        self.resets.append(slots)

    def step(
        self, live: Mapping[int, Pcm], prompting: Mapping[int, PromptStep]
    ) -> dict[int, FrameOut]:
        with self.lock:
            self.calls.append((set(live), {slot: step.text for slot, step in prompting.items()}))
        time.sleep(self.seconds)
        if self.fail_prompting in prompting:
            raise RuntimeError("out of memory")
        return {
            slot: FrameOut(np.full(4, slot, dtype=np.float32), len(self.calls)) for slot in live
        }


@pytest.fixture
def stepper() -> RecordingStepper:
    return RecordingStepper(seconds=0.01)


@pytest.fixture
def loop(stepper: RecordingStepper) -> Iterator[StepLoop]:
    running = StepLoop(stepper, step_estimate_s=0.01)
    running.start()
    yield running
    running.stop()


def test_a_new_conversation_runs_its_prompt_then_takes_frames(
    loop: StepLoop, stepper: RecordingStepper
) -> None:
    ticket, ready = loop.join(0, prompt(3), Sampling(), seed=7)
    with pytest.raises(EngineError, match="persona prompt is still running"):
        loop.submit(0, ticket, _FRAME)
    ready.result(timeout=10)
    assert stepper.seeds == {0: 7} and stepper.resets == [[0]]
    assert stepper.calls == [(set(), {0: 0}), (set(), {0: 1}), (set(), {0: 2})]
    made = [loop.submit(0, ticket, _FRAME).result(timeout=10) for _ in range(2)]
    assert [frame.text_token for frame in made] == [4, 5]
    with pytest.raises(EngineError, match="ended"):
        loop.submit(0, ticket + 1, _FRAME)


def test_a_prompting_slot_steps_within_every_live_step(
    loop: StepLoop, stepper: RecordingStepper
) -> None:
    live, ready = loop.join(0, [], Sampling(), seed=1)
    ready.result(timeout=10)
    joining, joined = loop.join(1, prompt(12), Sampling(), seed=2)
    while not joined.done():
        loop.submit(0, live, _FRAME).result(timeout=10)
    joined.result()
    prompted = [call for call in stepper.calls if 1 in call[1]]
    # Every prompt step once, in order; every live step before the end carried one.
    assert [call[1][1] for call in prompted] == list(range(12))
    last = stepper.calls.index(prompted[-1])
    assert all(1 in prompts for live_slots, prompts in stepper.calls[:last] if live_slots)


def test_leaving_during_the_prompt_stops_it_and_resets_the_slot() -> None:
    stepper = RecordingStepper(seconds=0.05)
    loop = StepLoop(stepper, step_estimate_s=0.05)
    loop.start()
    try:
        ticket, ready = loop.join(2, prompt(1000), Sampling(), seed=3)
        while not stepper.calls:
            time.sleep(0.01)
        loop.leave(2, ticket)
        with pytest.raises(EngineError, match="ended"):
            ready.result(timeout=10)
        loop.sync().result(timeout=10)  # the step in flight at the leave has finished
        steps = len(stepper.calls)
        time.sleep(0.3)
        assert len(stepper.calls) == steps < 1000
        assert stepper.resets == [[2], [2]]
    finally:
        loop.stop()


def test_a_failed_step_fails_its_slots_only() -> None:
    stepper = RecordingStepper(fail_prompting=1)
    loop = StepLoop(stepper, step_estimate_s=0.0)
    loop.start()
    try:
        _, failing = loop.join(1, prompt(5), Sampling(), seed=1)
        with pytest.raises(EngineError, match="the model step failed: out of memory"):
            failing.result(timeout=10)
        ticket, ready = loop.join(0, [], Sampling(), seed=2)
        ready.result(timeout=10)
        assert loop.submit(0, ticket, _FRAME).result(timeout=10).pcm[0] == 0
    finally:
        loop.stop()


def test_stopping_fails_what_waits() -> None:
    stepper = RecordingStepper(seconds=0.02)
    loop = StepLoop(stepper, step_estimate_s=0.02)
    loop.start()
    _, ready = loop.join(0, prompt(1000), Sampling(), seed=1)
    loop.stop()
    with pytest.raises(EngineError, match="shutting down"):
        ready.result(timeout=10)
    with pytest.raises(EngineError, match="shutting down"):
        loop.join(1, [], Sampling(), seed=1)


def test_sync_waits_for_the_step_in_flight(stepper: RecordingStepper) -> None:
    stepper.seconds = 0.3
    loop = StepLoop(stepper, step_estimate_s=0.3)
    loop.start()
    try:
        ticket, _ = loop.join(0, prompt(1000), Sampling(), seed=1)
        while not stepper.calls:
            time.sleep(0.005)
        loop.leave(0, ticket)
        synced = loop.sync()
        assert not synced.done()  # the first prompt step is still sleeping
        synced.result(timeout=10)
        steps = len(stepper.calls)
        time.sleep(0.5)
        assert len(stepper.calls) == steps
    finally:
        loop.stop()
    assert loop.sync().done()  # a stopped loop has nothing left to apply
