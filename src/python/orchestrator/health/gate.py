"""Waiting for a service's /health from the host: progress while it loads, fail fast if it dies."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from orchestrator.clock import Clock
from orchestrator.errors import ServiceFailed
from orchestrator.events import Progress
from orchestrator.health.probe import HealthAnswer, HealthProbe
from orchestrator.hub import EventHub

# None while the service runs; otherwise how it ended ("exited with code 2").
ExitCheck = Callable[[], Awaitable[str | None]]


@dataclass(frozen=True)
class Gate:
    resource: str
    url: str
    timeout_s: float
    interval_s: float = 0.5


def _backend_verdict(answer: HealthAnswer) -> bool:
    document = answer.document or {}
    return answer.status_code == 200 and document.get("status", "ready") == "ready"


async def wait_healthy(
    gate: Gate,
    *,
    probe: HealthProbe,
    exited: ExitCheck,
    hub: EventHub,
    clock: Clock,
    ready: Callable[[HealthAnswer], bool] = _backend_verdict,
) -> HealthAnswer:
    """The first healthy answer; ServiceFailed when the service dies, errs or runs out of time."""
    deadline = clock.monotonic() + gate.timeout_s
    shown: tuple[float | None, str] | None = None
    while True:
        ending = await exited()
        if ending is not None:
            raise ServiceFailed(f"{gate.resource} {ending} before it became healthy")
        answer = await probe(gate.url)
        if answer is not None:
            if ready(answer):
                return answer
            document = answer.document or {}
            if document.get("status") == "error":
                raise ServiceFailed(
                    f"{gate.resource} reports an error: {document.get('error') or 'unknown'}"
                )
            progress = _progress_of(document)
            if progress != shown:
                shown = progress
                await hub.publish(Progress(gate.resource, *progress))
        if clock.monotonic() >= deadline:
            raise ServiceFailed(
                f"{gate.resource} was not healthy at {gate.url} within {gate.timeout_s:.0f} s"
                " (raise --health-timeout / PERSONAPLEX_HEALTH_TIMEOUT_S if it loads slowly)"
            )
        await clock.sleep(gate.interval_s)


_GIB = 1024**3


def _progress_of(document: dict[str, Any]) -> tuple[float | None, str]:
    raw = document.get("progress")
    fraction = float(raw) if isinstance(raw, int | float) else None
    status = str(document.get("stage") or document.get("status", "starting"))
    model = document.get("model")
    message = f"{status} {model}" if model else status
    load = document.get("load")
    if isinstance(load, dict):
        message += _load_counts(load)
    return fraction, message


def _load_counts(load: dict[str, Any]) -> str:
    """What a model engine's /health counts while it loads: bytes and files, then layers."""
    if load.get("bytes_total"):
        return (
            f": {load.get('bytes_done', 0) / _GIB:.1f} of {load['bytes_total'] / _GIB:.1f} GiB"
            f" ({load.get('files_done', 0)}/{load.get('files_total', '?')} files)"
        )
    if load.get("layers_total"):
        return f": {load.get('layers_loaded', 0)}/{load['layers_total']} layers"
    return ""
