"""`logs`: the last lines of a service, from its container or from the file of a local run."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

from orchestrator import events
from orchestrator.containers.connection import DockerConnector, docker_client
from orchestrator.containers.engine import DockerEngine
from orchestrator.containers.labels import LABEL_SERVICE
from orchestrator.errors import OrchestratorError
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import RunState
from orchestrator.settings import StackSettings

SERVICES = (events.BACKEND, events.FRONTEND)


async def logs(
    settings: StackSettings,
    run_state: RunState,
    service: str | None,
    *,
    tail: int,
    connect_docker: DockerConnector,
    say_line: Callable[[str, str], None],
) -> int:
    if service is not None and service not in SERVICES:
        raise OrchestratorError(
            f"unknown service {service}; known: {', '.join(SERVICES)}", exit_code=2
        )
    wanted = [service] if service else list(SERVICES)
    from_containers: set[str] = set()
    async with docker_client(connect_docker) as (client, _):
        if client is not None:
            engine = DockerEngine(client, EventHub(), settings.project)
            for container in await engine.owned_containers():
                name = container.labels.get(LABEL_SERVICE, "")
                if name in wanted:
                    raw = await asyncio.to_thread(container.logs, tail=tail)
                    for line in bytes(raw).decode(errors="replace").splitlines():
                        say_line(name, line)
                    from_containers.add(name)
    for name in wanted:
        if name in from_containers:
            continue
        path = run_state.log_path(name)
        if path.is_file():
            lines = (await asyncio.to_thread(path.read_text, errors="replace")).splitlines()
            for line in lines[-tail:]:
                say_line(name, line)
    return 0
