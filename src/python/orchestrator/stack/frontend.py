"""The frontend of `up`: a local process with reload, or with --prod a container built from its
Dockerfile on the backend's engine and network."""

from __future__ import annotations

from contextlib import AsyncExitStack

from orchestrator import events
from orchestrator.containers.confinement import FRONTEND_CONFINEMENT
from orchestrator.containers.container_spec import ContainerSpec
from orchestrator.containers.engine import DockerEngine
from orchestrator.containers.service_images import (
    FRONTEND_IMAGE,
    frontend_build,
    require_base_image,
)
from orchestrator.endpoints import Endpoint, reachable_host
from orchestrator.environments import frontend_container_environment, frontend_environment
from orchestrator.errors import OrchestratorError
from orchestrator.stack.container_service import (
    announce_build,
    run_container_service,
    start_container,
)
from orchestrator.stack.context import StackContext
from orchestrator.stack.health_gating import answers_200
from orchestrator.stack.process_service import ProcessService, run_process_service
from orchestrator.stack.tls import container_tls


async def start_frontend(
    stack: StackContext, owned: AsyncExitStack, backend: Endpoint, engine: DockerEngine | None
) -> None:
    s = stack.settings
    if s.prod:
        if engine is None:  # start_backend refuses --prod without a backend container
            raise OrchestratorError("--prod: the backend is not a container")
        await _start_container(stack, owned, backend, engine)
        return
    env = frontend_environment(
        s,
        stack.process_environ(),
        backend_host=backend.host,
        backend_port=backend.port,
        pythonpath=stack.pythonpath(),
        certs_dir=str(stack.run_state.certs_dir),
    )
    endpoint = Endpoint(reachable_host(s.app_host), s.app_port, stack.scheme)
    service = ProcessService(stack, events.FRONTEND, ["-m", "frontend"], env, endpoint, answers_200)
    await run_process_service(stack, owned, service)


async def _start_container(
    stack: StackContext, owned: AsyncExitStack, backend: Endpoint, engine: DockerEngine
) -> None:
    s = stack.settings
    build = frontend_build(s)
    await require_base_image(engine, build.recipe, build.base_image)
    image = FRONTEND_IMAGE.tag(s.project)
    await announce_build(stack, events.FRONTEND, image)
    image_id = await stack.build_image(engine, build)
    gateway = await engine.ensure_network(stack.network)
    env = frontend_container_environment(
        s,
        await stack.container_environ(gateway),
        backend_host=backend.host,
        backend_port=backend.port,
        backend_address=stack.container_name(events.BACKEND),
        certs_dir=FRONTEND_IMAGE.certs_dir,
    )
    # Not persistent, like the frontend process: it lives as long as this `up`.
    spec = ContainerSpec(
        image_id=image_id,
        name=stack.container_name(events.FRONTEND),
        service=events.FRONTEND,
        env=env,
        container_port=s.app_port,
        publish_host=s.app_host,
        host_port=s.app_port,
        confinement=FRONTEND_CONFINEMENT,
        network=stack.network,
        port_option="--app-port (APP_PORT)",
        tls=container_tls(stack, FRONTEND_IMAGE),
    )
    start, outcome = await start_container(stack, owned, engine, spec)
    container = outcome.container
    await stack.say(f"frontend container {container.short_id} created")
    await run_container_service(
        stack,
        owned,
        start,
        container,
        name=events.FRONTEND,
        image=image,
        image_id=image_id,
        port=s.app_port,
        ready=answers_200,
    )
