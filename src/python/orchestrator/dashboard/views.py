"""What the resources table shows, computed from the hub's state: plain, masked data."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from orchestrator import events
from orchestrator.events import ResourceState
from orchestrator.hub import ResourceView, StackState
from orchestrator.masking import Masker
from orchestrator.stack.lifecycle import Action, Controls

# Log sources that are not resources of the stack.
_NOT_RESOURCES = frozenset({events.BUILD, events.ORCHESTRATOR})
_LINKS: dict[str, tuple[tuple[str, str], ...]] = {
    events.FRONTEND: (("UI", "/"), ("/health", "/health")),
    events.BACKEND: (("/health", "/health"), ("/metrics", "/metrics")),
}
# The resource graph's edges (the browser's is the page's own): who calls whom.
DEPENDS_ON: dict[str, tuple[str, ...]] = {events.FRONTEND: (events.BACKEND,)}
_UNHEALTHY_STATES = frozenset({ResourceState.FAILED, ResourceState.STOPPED})


@dataclass(frozen=True)
class Link:
    label: str
    url: str


@dataclass(frozen=True)
class ResourceRow:
    name: str
    kind: str
    state: str
    health: str
    detail: str
    waiting_for: str
    depends_on: list[str]
    endpoints: list[str]
    links: list[Link]
    image: str
    uptime_s: float | None
    restarts: int
    actions: list[str]
    progress: float | None


def _actions(name: str, controls: Controls) -> list[str]:
    lifecycle = controls.get(name)
    if lifecycle is None or lifecycle.busy:
        return []
    if lifecycle.running:
        return [Action.RESTART.value, Action.STOP.value]
    return [Action.START.value]


def _row(
    view: ResourceView, health: Mapping[str, str], controls: Controls, mask: Masker, now: float
) -> ResourceRow:
    endpoint = view.endpoint if view.state is not ResourceState.STOPPED else None
    links = [Link(label, f"{endpoint}{path}") for label, path in _LINKS.get(view.name, ())]
    shown_health = "-" if view.state in _UNHEALTHY_STATES else health.get(view.name, "-")
    return ResourceRow(
        name=view.name,
        kind=view.kind.value if view.kind else "-",
        state=view.state.value,
        health=shown_health,
        detail=mask(view.detail),
        waiting_for=mask(view.waiting_for),
        depends_on=list(DEPENDS_ON.get(view.name, ())),
        endpoints=[mask(endpoint)] if endpoint else [],
        links=[Link(link.label, mask(link.url)) for link in links] if endpoint else [],
        image=mask(view.image) if view.image else "-",
        uptime_s=round(now - view.started_at, 1) if view.started_at is not None else None,
        restarts=view.restarts,
        actions=_actions(view.name, controls),
        progress=view.progress.fraction if view.progress else None,
    )


def resource_rows(
    state: StackState, health: Mapping[str, str], controls: Controls, mask: Masker, now: float
) -> list[dict[str, Any]]:
    return [
        asdict(_row(view, health, controls, mask, now))
        for name, view in state.resources.items()
        if name not in _NOT_RESOURCES
    ]
