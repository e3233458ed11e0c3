"""`build`: the backend image (with --prod, the frontend image too), as `up` would build it."""

from __future__ import annotations

from collections.abc import Callable

from orchestrator.containers.connection import DockerConnector, docker_client
from orchestrator.containers.engine import DockerEngine
from orchestrator.containers.service_images import (
    backend_build,
    build_service_image,
    frontend_build,
    require_base_image,
)
from orchestrator.errors import OrchestratorError
from orchestrator.hub import EventHub
from orchestrator.processes.local_process import ProcessLauncher
from orchestrator.settings import GpuMode, StackSettings


async def build(
    settings: StackSettings,
    hub: EventHub,
    *,
    launcher: ProcessLauncher,
    connect_docker: DockerConnector,
    environ: dict[str, str],
    say: Callable[[str], None],
) -> int:
    async with docker_client(connect_docker) as (client, reason):
        if client is None:
            raise OrchestratorError(f"`build` needs a Docker engine, and none answers: {reason}")
        engine = DockerEngine(client, hub, settings.project)
        gpu = settings.moshi_gpu is GpuMode.ON or (
            settings.moshi_gpu is GpuMode.AUTO and await engine.nvidia_runtime()
        )
        images = [backend_build(settings, gpu)]
        if settings.prod:
            images.append(frontend_build(settings))
        for image in images:
            await require_base_image(engine, image.recipe, image.base_image)
            image_id = await build_service_image(
                engine, image, repo_root=settings.repo_root, launcher=launcher, environ=environ
            )
            say(f"built {image.recipe.tag(settings.project)} ({image_id[:19]})")
    return 0
