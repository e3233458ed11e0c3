from __future__ import annotations

import asyncio

from orchestrator import events
from orchestrator.dashboard.feed import Feed
from orchestrator.events import LogLine, ResourceState, StateChanged
from orchestrator.hub import EventHub
from orchestrator.masking import MASK, Masker


async def test_a_client_that_never_reads_loses_lines_and_never_holds_the_hub() -> None:
    hub = EventHub(maxsize=8, publish_timeout_s=2.0)
    feed = Feed(Masker(["s3cr3t-value"]), history_lines=50, client_queue_lines=5)
    hub.subscribe(feed)
    runner = asyncio.create_task(hub.run())
    try:
        with feed.follow_logs("svc") as client:
            for n in range(200):
                await hub.publish(LogLine("svc", f"line {n} s3cr3t-value"))
            await asyncio.wait_for(hub.drain(), 5)
            assert hub.dropped == 0
            assert client.queue.qsize() == 5 and client.take_dropped() == 195
            assert client.take_dropped() == 0
    finally:
        runner.cancel()
    history = feed.history("svc")
    assert len(history) == 50 and history[-1].text == f"line 199 {MASK}"
    assert [line.seq for line in feed.history("svc", after=history[-2].seq)] == [history[-1].seq]


async def test_state_changes_wake_watchers_and_are_logged_as_the_orchestrator() -> None:
    feed = Feed(Masker())
    hub = EventHub()
    hub.subscribe(feed)
    runner = asyncio.create_task(hub.run())
    try:
        with feed.watch_resources() as changed:
            changed.clear()
            await hub.publish(StateChanged(events.FRONTEND, ResourceState.HEALTHY, endpoint="x"))
            await asyncio.wait_for(changed.wait(), 5)
    finally:
        runner.cancel()
    assert [line.text for line in feed.history(events.ORCHESTRATOR)] == ["frontend: healthy at x"]
    assert feed.log_resources() == [events.ORCHESTRATOR]
