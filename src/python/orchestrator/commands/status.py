"""`status`: what of the project runs, whether it is healthy, and where."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import astuple, dataclass, fields

from docker.models.containers import Container

from orchestrator.containers.connection import DockerConnector, docker_client
from orchestrator.containers.engine import DockerEngine
from orchestrator.containers.labels import LABEL_PERSISTENT, LABEL_SERVICE
from orchestrator.containers.service_container import published_address
from orchestrator.errors import OrchestratorError
from orchestrator.health.probe import HealthProbe, health_word
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import RunRecord, RunState, group_alive, pid_alive
from orchestrator.settings import StackSettings

Say = Callable[[str], None]


@dataclass(frozen=True)
class Row:
    service: str
    runs_as: str
    state: str
    health: str
    endpoint: str
    ident: str


async def _health(probe: HealthProbe, endpoint: str) -> str:
    if not endpoint.startswith("http"):
        return "-"
    return health_word(await probe(f"{endpoint}/health"))


def _container_endpoint(container: Container, scheme: str) -> str:
    try:
        host, port = published_address(container)
    except OrchestratorError:
        return "-"
    return f"{scheme}://{host}:{port}"


async def _process_rows(record: RunRecord | None, probe: HealthProbe) -> list[Row]:
    if record is None:
        return []
    rows = []
    for process in record.processes:
        alive = group_alive(process.pgid)
        endpoint = record.endpoints.get(process.service, "-")
        health = await _health(probe, endpoint) if alive else "-"
        state = "running" if alive else "gone"
        rows.append(Row(process.service, "process", state, health, endpoint, f"pid {process.pid}"))
    return rows


async def _container_rows(engine: DockerEngine, scheme: str, probe: HealthProbe) -> list[Row]:
    rows = []
    for container in await engine.owned_containers():
        endpoint = _container_endpoint(container, scheme)
        running = container.status == "running"
        health = await _health(probe, endpoint) if running else "-"
        lifetime = "persistent" if container.labels.get(LABEL_PERSISTENT) == "1" else "session"
        rows.append(
            Row(
                container.labels.get(LABEL_SERVICE, str(container.name)),
                f"container ({lifetime})",
                container.status,
                health,
                endpoint,
                str(container.id)[:12],
            )
        )
    return rows


def _table(rows: list[Row]) -> list[str]:
    header = Row("SERVICE", "RUNS AS", "STATE", "HEALTH", "ENDPOINT", "ID")
    table = [astuple(row) for row in (header, *rows)]
    widths = [max(len(cells[i]) for cells in table) for i in range(len(fields(Row)))]
    return [
        "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        for cells in table
    ]


async def status(
    settings: StackSettings,
    run_state: RunState,
    *,
    probe: HealthProbe,
    connect_docker: DockerConnector,
    say: Say,
) -> int:
    scheme = "https" if settings.moshi_use_ssl else "http"
    record = run_state.load()
    rows = await _process_rows(record, probe)
    async with docker_client(connect_docker) as (client, reason):
        if client is not None:
            engine = DockerEngine(client, EventHub(), settings.project)
            rows += await _container_rows(engine, scheme, probe)
    if record is not None and pid_alive(record.orchestrator_pid):
        say(f"`up` is running: pid {record.orchestrator_pid}, session {record.session}")
    if not rows:
        note = "" if client is not None else f" (no Docker engine answers: {reason})"
        say(f"nothing of project {settings.project} is running{note}")
        return 0
    for line in _table(rows):
        say(line)
    return 0
