"""`status`, `down`, `logs` and `build`: looking at and acting on what `up` left running."""

from __future__ import annotations

import asyncio
import os
import signal
from collections.abc import Callable
from dataclasses import dataclass

import docker
import docker.errors
from docker.models.containers import Container

from orchestrator import events
from orchestrator.clock import Clock
from orchestrator.docker_backend import LABEL_PERSISTENT, LABEL_SERVICE, DockerEngine
from orchestrator.errors import OrchestratorError
from orchestrator.health_gate import HealthProbe, health_word
from orchestrator.hub import EventHub
from orchestrator.images import backend_build, build_service_image, frontend_build
from orchestrator.local_process import ProcessLauncher
from orchestrator.runstate import RunState, group_alive, kill_group, pid_alive
from orchestrator.settings import GpuMode, StackSettings
from orchestrator.supervisor import DockerConnector

Say = Callable[[str], None]
_DOWN_WAIT_S = 30.0


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
    for bindings in (container.attrs["NetworkSettings"]["Ports"] or {}).values():
        for binding in bindings or []:
            host = binding.get("HostIp") or "127.0.0.1"
            host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
            return f"{scheme}://{host}:{binding['HostPort']}"
    return "-"


async def status(
    settings: StackSettings,
    run_state: RunState,
    *,
    probe: HealthProbe,
    connect_docker: DockerConnector,
    say: Say,
) -> int:
    record = run_state.load()
    scheme = "https" if settings.moshi_use_ssl else "http"
    rows: list[Row] = []
    if record is not None:
        for process in record.processes:
            alive = group_alive(process.pgid)
            endpoint = record.endpoints.get(process.service, "-")
            health = await _health(probe, endpoint) if alive else "-"
            state = "running" if alive else "gone"
            rows.append(
                Row(process.service, "process", state, health, endpoint, f"pid {process.pid}")
            )
    client, reason = await connect_docker()
    if client is not None:
        try:
            for container in await DockerEngine(
                client, EventHub(), settings.project
            ).owned_containers():
                endpoint = _container_endpoint(container, scheme)
                running = container.status == "running"
                health = await _health(probe, endpoint) if running else "-"
                lifetime = (
                    "persistent" if container.labels.get(LABEL_PERSISTENT) == "1" else "session"
                )
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
        finally:
            client.close()
    if record is not None and pid_alive(record.orchestrator_pid):
        say(f"`up` is running: pid {record.orchestrator_pid}, session {record.session}")
    if not rows:
        note = "" if client is not None else f" (no Docker engine answers: {reason})"
        say(f"nothing of project {settings.project} is running{note}")
        return 0
    header = Row("SERVICE", "RUNS AS", "STATE", "HEALTH", "ENDPOINT", "ID")
    table = [header, *rows]
    widths = [max(len(getattr(row, f)) for row in table) for f in Row.__dataclass_fields__]
    for row in table:
        cells = [getattr(row, f) for f in Row.__dataclass_fields__]
        say(
            "  ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True)).rstrip()
        )
    return 0


async def down(
    settings: StackSettings,
    run_state: RunState,
    *,
    connect_docker: DockerConnector,
    clock: Clock,
    say: Say,
    remove_volume: bool = False,
) -> int:
    record = run_state.load()
    if record is not None:
        if record.orchestrator_pid != os.getpid() and pid_alive(record.orchestrator_pid):
            # The running `up` stops its own services; it is asked first, then made sure of.
            say(f"stopping `up` (pid {record.orchestrator_pid})")
            os.kill(record.orchestrator_pid, signal.SIGTERM)
            deadline = clock.monotonic() + _DOWN_WAIT_S
            while pid_alive(record.orchestrator_pid) and clock.monotonic() < deadline:
                await clock.sleep(0.2)
        for process in record.processes:
            if kill_group(process, signal.SIGKILL):
                say(f"killed {process.service} (pid {process.pid})")
        run_state.clear()
    client, reason = await connect_docker()
    if client is None:
        say(f"no Docker engine answers ({reason}); no containers to remove")
    else:
        try:
            engine = DockerEngine(client, EventHub(), settings.project)
            for name in await engine.remove_all():
                say(f"removed container {name}")
            for name in await engine.remove_networks():
                say(f"removed network {name}")
            if remove_volume:
                volume = await asyncio.to_thread(_remove_volume, client, settings.hf_cache_volume)
                if volume:
                    say(f"removed volume {settings.hf_cache_volume}")
        finally:
            client.close()
    say(f"project {settings.project} is down")
    return 0


def _remove_volume(client: docker.DockerClient, name: str) -> bool:
    try:
        client.volumes.get(name).remove(force=True)
    except docker.errors.NotFound:
        return False
    return True


async def logs(
    settings: StackSettings,
    run_state: RunState,
    service: str | None,
    *,
    tail: int,
    connect_docker: DockerConnector,
    say_line: Callable[[str, str], None],
) -> int:
    known = (events.BACKEND, events.FRONTEND)
    if service is not None and service not in known:
        raise OrchestratorError(
            f"unknown service {service}; known: {', '.join(known)}", exit_code=2
        )
    wanted = [service] if service else list(known)
    from_containers: set[str] = set()
    client, _ = await connect_docker()
    if client is not None:
        try:
            for container in await DockerEngine(
                client, EventHub(), settings.project
            ).owned_containers():
                name = container.labels.get(LABEL_SERVICE, "")
                if name in wanted:
                    raw = await asyncio.to_thread(container.logs, tail=tail)
                    for line in bytes(raw).decode(errors="replace").splitlines():
                        say_line(name, line)
                    from_containers.add(name)
        finally:
            client.close()
    for name in wanted:
        if name in from_containers:
            continue
        path = run_state.log_path(name)
        if path.is_file():
            lines = (await asyncio.to_thread(path.read_text, errors="replace")).splitlines()
            for line in lines[-tail:]:
                say_line(name, line)
    return 0


async def build(
    settings: StackSettings,
    hub: EventHub,
    *,
    launcher: ProcessLauncher,
    connect_docker: DockerConnector,
    environ: dict[str, str],
    say: Say,
) -> int:
    client, reason = await connect_docker()
    if client is None:
        raise OrchestratorError(f"`build` needs a Docker engine, and none answers: {reason}")
    try:
        engine = DockerEngine(client, hub, settings.project)
        gpu = settings.moshi_gpu is GpuMode.ON or (
            settings.moshi_gpu is GpuMode.AUTO and await engine.nvidia_runtime()
        )
        images = [backend_build(settings, gpu)]
        if settings.prod:
            images.append(frontend_build(settings))
        for image in images:
            if not await engine.base_image_available(image.base_image):
                raise OrchestratorError(
                    f"base image {image.base_image} is not present and cannot be pulled; "
                    f"pass a local one with {image.recipe.base_image_option}"
                )
            image_id = await build_service_image(
                engine,
                image,
                project=settings.project,
                repo_root=settings.repo_root,
                launcher=launcher,
                hub=hub,
                environ=environ,
            )
            say(f"built {image.recipe.tag(settings.project)} ({image_id[:19]})")
    finally:
        client.close()
    return 0
