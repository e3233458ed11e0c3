"""The one thread that owns the model: it steps every conversation slot that has work, together.

Sessions hand it frames through bounded inboxes and wait for the answer with a timeout; a new
conversation (join) and an ended one (leave) are commands it applies between steps, so the model
is touched from this thread only and a slot is reset before its next conversation runs.

When it steps:
- Live slots step when their client's frame is there: as soon as every live slot has its frame,
  or once the oldest waiting frame has waited the gather window (the frame period less the
  expected step time). Clients' frames arrive unaligned; one step for all of them costs what one
  costs, and no frame waits so long that its answer comes later than a frame period.
- A slot running its persona prompt takes one prompt step in every live step (the batch runs
  whole anyway) and prompt-only steps in between when one fits before the next live frame is
  due: a joining conversation does not make the others' frames late.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future, InvalidStateError
from dataclasses import dataclass, field
from typing import Any, Protocol

from moshi_backend.engines.base import EngineError, Pcm, StepObserver
from moshi_backend.engines.model.batch_step import FrameOut
from moshi_backend.engines.model.prompts import PromptStep
from moshi_backend.engines.model.sampling import Sampling

log = logging.getLogger(__name__)

FRAME_S = 0.08
# A session has one frame in flight at a time; one more is room for a retry, not a queue.
_INBOX_FRAMES = 2
_IDLE_WAIT_S = 1.0
_STOP_WAIT_S = 10.0


class Stepper(Protocol):
    """What the loop drives (BatchStepper; a fake in tests)."""

    def assign(self, slot: int, sampling: Sampling, seed: int) -> None:
        ...

    def reset(self, slots: list[int]) -> None:
        ...

    def step(
        self, live: Mapping[int, Pcm], prompting: Mapping[int, PromptStep]
    ) -> dict[int, FrameOut]:
        ...


@dataclass
class _Frame:
    pcm: Pcm
    arrived: float
    answer: Future[FrameOut] = field(default_factory=Future)


@dataclass
class _Conversation:
    ticket: int
    prompt: deque[PromptStep]
    ready: Future[None]
    inbox: deque[_Frame] = field(default_factory=deque)
    last_arrival: float | None = None


@dataclass(frozen=True)
class _Join:
    slot: int
    conversation: _Conversation
    sampling: Sampling
    seed: int


@dataclass(frozen=True)
class _Leave:
    slot: int
    ticket: int


@dataclass(frozen=True)
class _Sync:
    done: Future[None]


@dataclass(frozen=True)
class _Work:
    live: dict[int, _Frame]
    prompts: dict[int, PromptStep]


class StepLoop:
    def __init__(
        self,
        stepper: Stepper,
        *,
        step_estimate_s: float,
        observer: StepObserver | None = None,
        period_s: float = FRAME_S,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._stepper = stepper
        self._observer = observer
        self._period = period_s
        self._clock = clock
        # Expected seconds of a step with live slots (Mimi both ways) and of a prompt-only one.
        self._live_step_s = step_estimate_s
        self._prompt_step_s = step_estimate_s
        self._cond = threading.Condition()
        self._commands: deque[_Join | _Leave | _Sync] = deque()
        self._slots: dict[int, _Conversation] = {}
        self._tickets = itertools.count(1)
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name="model-steps", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        if self._thread.is_alive():
            self._thread.join(_STOP_WAIT_S)
        self._fail_all(EngineError("the engine is shutting down"))
        with self._cond:
            syncs = [c for c in self._commands if isinstance(c, _Sync)]
        for sync in syncs:
            _settle(sync.done, None)

    # Called by sessions, from any thread --------------------------------------------------

    def join(
        self, slot: int, prompt: list[PromptStep], sampling: Sampling, seed: int
    ) -> tuple[int, Future[None]]:
        """A new conversation in slot: (its ticket, done when its persona prompt has run)."""
        with self._cond:
            self._check_running()
            conversation = _Conversation(next(self._tickets), deque(prompt), Future())
            self._commands.append(_Join(slot, conversation, sampling, seed))
            self._cond.notify()
        return conversation.ticket, conversation.ready

    def leave(self, slot: int, ticket: int) -> None:
        with self._cond:
            self._commands.append(_Leave(slot, ticket))
            self._cond.notify()

    def sync(self) -> Future[None]:
        """Done once the loop has applied every join and leave queued before this call, and so
        has finished any step that began before them (a left slot is stepped no more)."""
        done: Future[None] = Future()
        with self._cond:
            if self._stopping or not self._thread.is_alive():
                done.set_result(None)
                return done
            self._commands.append(_Sync(done))
            self._cond.notify()
        return done

    def submit(self, slot: int, ticket: int, pcm: Pcm) -> Future[FrameOut]:
        """A frame of the user's audio; the future holds what the model made of it."""
        with self._cond:
            self._check_running()
            conversation = self._slots.get(slot)
            joining = any(
                isinstance(c, _Join) and c.conversation.ticket == ticket for c in self._commands
            )
            if joining:
                raise EngineError("the persona prompt is still running")
            if conversation is None or conversation.ticket != ticket:
                raise EngineError("this conversation has ended")
            if conversation.prompt:
                raise EngineError("the persona prompt is still running")
            if len(conversation.inbox) >= _INBOX_FRAMES:
                raise EngineError("frames arrive faster than they are stepped")
            frame = _Frame(pcm, self._clock())
            conversation.inbox.append(frame)
            self._cond.notify()
        return frame.answer

    def _check_running(self) -> None:
        if self._stopping:
            raise EngineError("the engine is shutting down")
        if not self._thread.is_alive():
            raise EngineError("the model's step loop has stopped; see the log")

    # The loop thread ----------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                self._apply_commands()
                with self._cond:
                    if self._stopping:
                        return
                    work, wait_s = self._plan(self._clock())
                    if work is None:
                        if not self._commands:
                            self._cond.wait(wait_s)
                        continue
                self._step(work)
        except Exception:  # a bug here must fail the sessions, not leave them waiting
            log.exception("the model's step loop stopped")
            self._fail_all(EngineError("the model's step loop stopped; see the log"))

    def _apply_commands(self) -> None:
        ended: list[_Conversation] = []
        with self._cond:
            syncs = [command for command in self._commands if isinstance(command, _Sync)]
            commands = [command for command in self._commands if not isinstance(command, _Sync)]
            self._commands.clear()
            for command in commands:
                current = self._slots.get(command.slot)
                if isinstance(command, _Join):
                    if current is not None:
                        ended.append(current)
                    self._slots[command.slot] = command.conversation
                elif current is not None and current.ticket == command.ticket:
                    ended.append(self._slots.pop(command.slot))
        if not commands:
            for sync in syncs:
                _settle(sync.done, None)
            return
        for conversation in ended:
            _fail(conversation, EngineError("this conversation has ended"))
        joins = [command for command in commands if isinstance(command, _Join)]
        for join in joins:
            self._stepper.assign(join.slot, join.sampling, join.seed)
        # One masked reset for every slot that changed hands, before any of them steps again.
        self._stepper.reset(sorted({command.slot for command in commands}))
        for join in joins:
            if not join.conversation.prompt:
                _settle(join.conversation.ready, None)
        for sync in syncs:
            _settle(sync.done, None)

    def _plan(self, now: float) -> tuple[_Work | None, float]:
        live = {slot: c for slot, c in self._slots.items() if not c.prompt}
        prompting = [slot for slot, c in self._slots.items() if c.prompt]
        waiting = [slot for slot, c in live.items() if c.inbox]
        window = max(self._period - self._live_step_s, 0.0)
        if waiting:
            due = min(live[slot].inbox[0].arrived for slot in waiting) + window
            if len(waiting) == len(live) or now >= due:
                return self._take(waiting, prompting), 0.0
        else:
            arrivals = [c.last_arrival for c in live.values() if c.last_arrival is not None]
            # A live client's next frame is due a period after its last one.
            expected = [arrival + self._period for arrival in arrivals]
            due = min(expected) + window if expected else now
        if prompting and (now >= due or now + self._prompt_step_s <= due):
            return self._take([], prompting), 0.0
        return None, max(due - now, 0.0) if waiting or prompting else _IDLE_WAIT_S

    def _take(self, live: list[int], prompting: list[int]) -> _Work:
        frames = {}
        for slot in live:
            conversation = self._slots[slot]
            frames[slot] = conversation.inbox.popleft()
            conversation.last_arrival = frames[slot].arrived
        return _Work(frames, {slot: self._slots[slot].prompt.popleft() for slot in prompting})

    def _step(self, work: _Work) -> None:
        started = self._clock()
        try:
            made = self._stepper.step(
                {slot: frame.pcm for slot, frame in work.live.items()}, work.prompts
            )
        except Exception as error:  # the slots of this step cannot go on; the others can
            log.exception("model step failed (slots %s)", sorted([*work.live, *work.prompts]))
            failure = EngineError(f"the model step failed: {error}")
            for frame in work.live.values():
                _settle(frame.answer, error=failure)
            self._drop([*work.live, *work.prompts], failure)
            return
        finished = self._clock()
        elapsed = finished - started
        if work.live:
            self._live_step_s = _smoothed(self._live_step_s, elapsed)
        else:
            self._prompt_step_s = _smoothed(self._prompt_step_s, elapsed)
        late = 0
        for slot, frame in work.live.items():
            late += finished - frame.arrived > self._period
            _settle(frame.answer, made[slot])
        with self._cond:
            prompted = [self._slots.get(slot) for slot in work.prompts]
        for conversation in prompted:
            if conversation is not None and not conversation.prompt:
                _settle(conversation.ready, None)
        if self._observer is not None:
            self._observer(len(work.live) + len(work.prompts), elapsed, late)

    def _drop(self, slots: list[int], error: EngineError) -> None:
        with self._cond:
            dropped = [self._slots.pop(slot) for slot in slots if slot in self._slots]
        for conversation in dropped:
            _fail(conversation, error)

    def _fail_all(self, error: EngineError) -> None:
        with self._cond:
            conversations = list(self._slots.values())
            conversations += [c.conversation for c in self._commands if isinstance(c, _Join)]
        for conversation in conversations:
            _fail(conversation, error)


def _smoothed(estimate: float, measured: float) -> float:
    return 0.8 * estimate + 0.2 * measured


def _fail(conversation: _Conversation, error: EngineError) -> None:
    _settle(conversation.ready, error=error)
    while conversation.inbox:
        _settle(conversation.inbox.popleft().answer, error=error)


def _settle(future: Future[Any], result: Any = None, error: BaseException | None = None) -> None:
    # The waiting side may have given up (cancelled) or the future be settled already: both fine.
    try:
        if error is None:
            future.set_result(result)
        else:
            future.set_exception(error)
    except InvalidStateError:
        pass
