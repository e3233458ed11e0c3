"""Live health of the running resources: each one's /health, asked again every few seconds.

The state a resource is in says what the orchestrator did (started it, gated it); its health
says how it is doing now, which is what someone looking at the dashboard wants to know.
"""

from __future__ import annotations

import asyncio
import contextlib

from orchestrator.dashboard.feed import Feed
from orchestrator.events import ResourceState
from orchestrator.health.probe import HealthProbe, health_word
from orchestrator.hub import StackState

_PROBED_STATES = frozenset({ResourceState.HEALTHY, ResourceState.DETACHED})


class HealthMonitor:
    def __init__(
        self, state: StackState, probe: HealthProbe, feed: Feed, interval_s: float = 5.0
    ) -> None:
        self._state = state
        self._probe = probe
        self._feed = feed
        self._interval_s = interval_s
        self.health: dict[str, str] = {}

    async def run(self) -> None:
        """Until cancelled; a change of state (a resource becoming healthy) asks at once."""
        with self._feed.watch_resources() as changed:
            while True:
                changed.clear()
                await self.check()
                # Not wait_for: on 3.11 it swallows a cancel that comes as the flag is set.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self._interval_s):
                        await changed.wait()

    async def check(self) -> None:
        targets = {
            name: view.endpoint
            for name, view in self._state.resources.items()
            if view.state in _PROBED_STATES and view.endpoint
        }
        answers = await asyncio.gather(*(self._probe(f"{url}/health") for url in targets.values()))
        found = {name: health_word(answer) for name, answer in zip(targets, answers, strict=True)}
        if found != self.health:
            self.health = found
            self._feed.changed()
