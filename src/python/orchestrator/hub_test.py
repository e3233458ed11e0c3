from __future__ import annotations

import asyncio
import errno
import threading

from orchestrator.events import Event, LogLine, Notice, Progress, ResourceState, StateChanged
from orchestrator.hub import EventHub, StackState


class Recorder:
    def __init__(self) -> None:
        self.seen: list[tuple[Event, ResourceState]] = []

    def on_event(self, event: Event, state: StackState) -> None:
        self.seen.append((event, state.view("svc").state))


async def test_one_loop_applies_events_in_order_then_tells_subscribers() -> None:
    hub = EventHub(maxsize=4)
    recorder = Recorder()
    hub.subscribe(recorder)
    runner = asyncio.create_task(hub.run())
    try:
        await hub.publish(StateChanged("svc", ResourceState.STARTING))
        await hub.publish(Progress("svc", 0.5, "loading"))
        for n in range(10):  # more than the queue holds: publishers wait, nothing is lost
            await hub.publish(LogLine("svc", f"line {n}"))
        await hub.publish(StateChanged("svc", ResourceState.HEALTHY, endpoint="http://x"))
        await hub.drain()
    finally:
        runner.cancel()
    assert [state for _, state in recorder.seen][0] is ResourceState.STARTING
    assert recorder.seen[-1][1] is ResourceState.HEALTHY
    view = hub.state.view("svc")
    assert view.endpoint == "http://x" and view.progress is None
    assert hub.recent_lines("svc", 3) == ["line 7", "line 8", "line 9"]


async def test_threads_publish_through_the_loop() -> None:
    hub = EventHub()
    runner = asyncio.create_task(hub.run())
    hub.bind()
    try:
        delivered = await asyncio.to_thread(hub.publish_threadsafe, LogLine("svc", "from a thread"))
        await hub.drain()
    finally:
        runner.cancel()
    assert delivered and hub.recent_lines("svc") == ["from a thread"]


def test_publishing_after_the_loop_is_gone_reports_false() -> None:
    hub = EventHub()

    async def bind_only() -> None:
        hub.bind()

    asyncio.run(bind_only())
    assert hub.publish_threadsafe(LogLine("svc", "late")) is False


class Breaks:
    """An in-memory subscriber with a defect: it raises on its third event."""

    def __init__(self) -> None:
        self.calls = 0

    def on_event(self, event: Event, state: StackState) -> None:
        self.calls += 1
        if self.calls == 3:
            raise KeyError("boom")


class DiskFull:
    """A sink whose writes fail, as a log file on a full disk does."""

    def __init__(self) -> None:
        self.written = 0

    def on_event(self, event: Event) -> None:
        if self.written == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        self.written += 1


class Stalled:
    """A sink whose writes never return, as a terminal nobody reads does."""

    def __init__(self) -> None:
        self.release = threading.Event()

    def on_event(self, event: Event) -> None:
        self.release.wait(60)


def _notices(recorder: Recorder) -> list[str]:
    return [event.text for event, _ in recorder.seen if isinstance(event, Notice)]


async def test_a_failing_subscriber_is_dropped_with_one_notice_and_the_hub_carries_on() -> None:
    hub = EventHub()
    broken, recorder = Breaks(), Recorder()
    hub.subscribe(broken)
    hub.subscribe(recorder)
    runner = asyncio.create_task(hub.run())
    try:
        for n in range(10):
            await hub.publish(LogLine("svc", f"line {n}"))
        await hub.drain()
    finally:
        runner.cancel()
    assert broken.calls == 3  # nothing after its failure
    assert hub.recent_lines("svc", 10) == [f"line {n}" for n in range(10)]
    (notice,) = _notices(recorder)
    assert "Breaks failed (KeyError" in notice and "no more events" in notice


async def test_a_sink_that_fails_is_dropped_with_one_notice() -> None:
    hub = EventHub()
    full, recorder = DiskFull(), Recorder()
    hub.attach(full, "log archive")
    hub.subscribe(recorder)
    runner = asyncio.create_task(hub.run())
    try:
        for n in range(20):
            await hub.publish(LogLine("svc", f"line {n}"))
        await hub.drain()
        await hub.close_sinks()
    finally:
        runner.cancel()
    assert full.written == 2
    (notice,) = _notices(recorder)
    assert notice.startswith("log archive failed (OSError") and "No space left" in notice
    assert len([e for e, _ in recorder.seen if isinstance(e, LogLine)]) == 20


async def test_a_stalled_sink_never_holds_the_hub_or_its_publishers() -> None:
    hub = EventHub(maxsize=8, sink_capacity=16)
    stalled, recorder = Stalled(), Recorder()
    hub.attach(stalled, "terminal")
    hub.subscribe(recorder)
    runner = asyncio.create_task(hub.run())
    try:
        # Far more than the hub's queue and the sink's together: publishers never wait long.
        async with asyncio.timeout(10):
            for n in range(500):
                await hub.publish(LogLine("svc", f"line {n}"))
            await hub.drain()
    finally:
        stalled.release.set()
        runner.cancel()
    assert len([e for e, _ in recorder.seen if isinstance(e, LogLine)]) == 500
    (notice,) = _notices(recorder)
    assert notice == "terminal stalled (16 events behind); it gets no more events"
    assert hub.dropped == 0
