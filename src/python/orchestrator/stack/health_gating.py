"""A service's start ends at its health gate: healthy (its endpoint recorded and announced), or
failed with the last lines it printed."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

from orchestrator.endpoints import Endpoint
from orchestrator.errors import ServiceFailed
from orchestrator.events import ResourceState, StateChanged
from orchestrator.health.gate import Gate, wait_healthy
from orchestrator.health.probe import HealthAnswer
from orchestrator.stack.context import StackContext

_LOG_LINES_ON_FAILURE = 25


class Watched(Protocol):
    """A started service, process or container."""

    async def exit_description(self) -> str | None:
        ...

    async def logs_done(self, timeout_s: float) -> None:
        ...


async def gate_on_health(
    stack: StackContext,
    resource: str,
    endpoint: Endpoint,
    service: Watched,
    ready: Callable[[HealthAnswer], bool] | None = None,
) -> None:
    gate = Gate(resource, endpoint.url("/health"), stack.settings.health_timeout_s)
    options: dict[str, Any] = {"ready": ready} if ready else {}
    try:
        await wait_healthy(
            gate,
            probe=stack.probe,
            exited=service.exit_description,
            hub=stack.hub,
            clock=stack.seams.clock,
            **options,
        )
    except ServiceFailed as error:
        # The lines a dying service printed last are the explanation: wait for them.
        await service.logs_done(5.0)
        await stack.hub.drain()
        lines = stack.hub.recent_lines(resource, _LOG_LINES_ON_FAILURE)
        await stack.hub.publish(StateChanged(resource, ResourceState.FAILED, error.message))
        details = "\n".join(f"  {resource} | {line}" for line in lines)
        raise ServiceFailed(
            error.message, details=f"last lines of {resource}:\n{details}" if lines else ""
        ) from None
    url = endpoint.url()
    stack.record.endpoints[resource] = url
    stack.save_record()
    await stack.hub.publish(StateChanged(resource, ResourceState.HEALTHY, endpoint=url))


def answers_200(answer: HealthAnswer) -> bool:
    """The frontend's verdict: its /health is 200 even while the backend it reports is not."""
    return answer.status_code == 200
