"""The backend of `up`: a container when a Docker engine answers (built from its Dockerfile, the
model-cache volume mounted, a GPU when the engine has one), otherwise a local process
(stack/local_backend.py)."""

from __future__ import annotations

from contextlib import AsyncExitStack

import docker

from orchestrator import events
from orchestrator.containers.confinement import BACKEND_CONFINEMENT
from orchestrator.containers.container_spec import ContainerSpec
from orchestrator.containers.engine import Action, BaseImageUnavailable, DockerEngine
from orchestrator.containers.service_images import (
    BACKEND_IMAGE,
    backend_build,
    require_base_image,
)
from orchestrator.endpoints import Endpoint
from orchestrator.environments import container_environment
from orchestrator.errors import OrchestratorError
from orchestrator.events import Level, ResourceState, StateChanged
from orchestrator.settings import BackendMode, EngineChoice, GpuMode
from orchestrator.stack.container_service import (
    announce_build,
    run_container_service,
    start_container,
)
from orchestrator.stack.context import StackContext
from orchestrator.stack.local_backend import start_local_backend
from orchestrator.stack.tls import container_tls


async def start_backend(
    stack: StackContext, owned: AsyncExitStack
) -> tuple[Endpoint, DockerEngine | None]:
    """The backend's endpoint, and the engine it runs on when it is a container."""
    mode, prod = stack.settings.backend, stack.settings.prod
    if prod and mode is BackendMode.LOCAL:
        raise OrchestratorError(
            "--prod runs both services as containers; it cannot go with MOSHI_BACKEND=local"
        )
    if mode is not BackendMode.LOCAL:
        await stack.hub.publish(
            StateChanged(
                events.BACKEND, ResourceState.WAITING, waiting_for="the Docker engine to answer"
            )
        )
        client, reason = await stack.seams.connect_docker()
        if client is not None:
            owned.callback(client.close)
            try:
                return await _start_container(stack, owned, client)
            except BaseImageUnavailable as error:
                if prod:
                    raise
                await stack.say(error.message, Level.WARNING)
        elif mode is BackendMode.DOCKER or prod:
            wanted = "--prod" if prod else "MOSHI_BACKEND=docker"
            raise OrchestratorError(f"{wanted} but no Docker engine answers: {reason}")
        else:
            await stack.say(
                f"no Docker engine answers ({reason}); the backend runs as a local process"
            )
    return await start_local_backend(stack, owned), None


async def _start_container(
    stack: StackContext, owned: AsyncExitStack, client: docker.DockerClient
) -> tuple[Endpoint, DockerEngine]:
    s = stack.settings
    engine = DockerEngine(client, stack.hub, s.project)
    swept = await engine.sweep()
    if swept:
        await stack.say(f"removed leftover containers: {', '.join(swept)}", Level.WARNING)
    consequence = "" if s.prod else "; the backend runs as a local process instead"
    await require_base_image(engine, BACKEND_IMAGE, s.moshi_base_image, consequence)
    image = BACKEND_IMAGE.tag(s.project)
    await announce_build(stack, events.BACKEND, image)
    gpu = await _want_gpu(stack, engine)
    build = backend_build(s, gpu)
    if build.target != BACKEND_IMAGE.pants_target and s.moshi_engine is EngineChoice.AUTO:
        await stack.say(
            "MOSHI_ENGINE=auto without a GPU for the container: the backend image gets the "
            "loopback server (no torch); --engine personaplex packages the model engines"
        )
    image_id = await stack.build_image(engine, build)
    created = await engine.ensure_volume(s.hf_cache_volume)
    await stack.say(f"{'created' if created else 'reusing'} model cache volume {s.hf_cache_volume}")
    # Always on the project's network, so that `up --prod` can reuse a container `up` made.
    gateway = await engine.ensure_network(stack.network)
    spec = ContainerSpec(
        image_id=image_id,
        name=stack.container_name(events.BACKEND),
        service=events.BACKEND,
        env={
            **container_environment(s, await stack.container_environ(gateway)),
            "MOSHI_SSL_DIR": BACKEND_IMAGE.certs_dir,
        },
        container_port=s.moshi_port,
        publish_host=s.publish_host,
        host_port=s.moshi_port,
        confinement=BACKEND_CONFINEMENT,
        volume=s.hf_cache_volume,
        gpu=gpu,
        persistent=s.persistent,
        network=stack.network,
        tls=container_tls(stack, BACKEND_IMAGE),
    )
    start, outcome = await start_container(stack, owned, engine, spec)
    if outcome.gpu_fallback:
        await stack.say(
            "GPU requested (MOSHI_GPU=on) but the Docker engine cannot provide one "
            f"({outcome.gpu_fallback}); the backend runs on the CPU",
            Level.WARNING,
        )
    container = outcome.container
    await stack.say(f"backend container {container.short_id} {outcome.action.value}")
    endpoint = await run_container_service(
        stack,
        owned,
        start,
        container,
        name=events.BACKEND,
        image=image,
        image_id=image_id,
        port=s.moshi_port,
        persistent=s.persistent,
        # A reused container's history was shown by the run that started it.
        log_tail=20 if outcome.action is Action.REUSED else "all",
    )
    return endpoint, engine


async def _want_gpu(stack: StackContext, engine: DockerEngine) -> bool:
    mode = stack.settings.moshi_gpu
    if mode is GpuMode.OFF:
        return False
    has_runtime = await engine.nvidia_runtime()
    if mode is GpuMode.AUTO and not has_runtime:
        await stack.say("no NVIDIA runtime in the Docker engine; the backend runs on the CPU")
    # ON asks even without the runtime: the engine may still have a GPU driver (CDI).
    return has_runtime or mode is GpuMode.ON
