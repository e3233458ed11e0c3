from __future__ import annotations

import asyncio

from orchestrator.events import Event, LogLine, Progress, ResourceState, StateChanged
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
