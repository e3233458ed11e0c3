from __future__ import annotations

import asyncio
import logging

from frontend.log_broadcast import LogBroadcast, LogBroadcastHandler, LogEvent


def _event(n: int) -> LogEvent:
    return LogEvent.now("INFO", "test", f"event {n}")


def test_replay_keeps_only_the_last_events() -> None:
    broadcast = LogBroadcast(replay=3)
    for n in range(5):
        broadcast.publish(_event(n))
    assert [e.message for e in broadcast.history()] == ["event 2", "event 3", "event 4"]


def test_slow_subscriber_loses_its_oldest_events_and_nobody_waits() -> None:
    broadcast = LogBroadcast(queue_size=4)
    with broadcast.subscribe() as slow, broadcast.subscribe() as fast:
        for n in range(10):
            broadcast.publish(_event(n))
            if not fast.queue.empty():
                fast.queue.get_nowait()
        assert slow.queue.qsize() == 4 and slow.dropped == 6
        assert [slow.queue.get_nowait().message for _ in range(4)][0] == "event 6"
        assert fast.dropped == 0
    assert broadcast.subscriber_count == 0


async def test_log_records_from_other_threads_become_events() -> None:
    broadcast = LogBroadcast()
    broadcast.bind(asyncio.get_running_loop())
    logger = logging.getLogger("frontend.test-events")
    handler = LogBroadcastHandler(broadcast)
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    try:
        await asyncio.to_thread(logger.warning, "from a worker thread")
        async with asyncio.timeout(5):
            while not broadcast.history():
                await asyncio.sleep(0.01)
    finally:
        logger.removeHandler(handler)
    event = broadcast.history()[-1]
    assert (event.level, event.source, event.message) == (
        "WARNING",
        "frontend",
        "from a worker thread",
    )
