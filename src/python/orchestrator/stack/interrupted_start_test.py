"""A start interrupted between the backend container's start and its release (a Ctrl-C at the
worst moment) leaves no container behind."""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import AsyncExitStack
from pathlib import Path

import docker
import pytest

from orchestrator.conftest import SetVariables
from orchestrator.events import Event, Notice
from orchestrator.hub import EventHub
from orchestrator.processes.run_state import RunState
from orchestrator.settings import load_settings
from orchestrator.stack.backend import start_backend
from orchestrator.stack.context import Seams, StackContext
from orchestrator.testing import project_filter, remove_project_resources, unique_project
from testsupport.processes import free_port

# Where Pants puts the loopback server PEX in this test's sandbox.
SERVER_PEX = "src.python.moshi_backend/server-loopback.pex"


class CancellingHub(EventHub):
    """Cancels whoever says the backend container runs, at that point: after the engine made
    the container and before the supervisor has taken it over (a Ctrl-C at the worst moment)."""

    async def publish(self, event: Event) -> None:
        await super().publish(event)
        if isinstance(event, Notice) and event.text.startswith("backend container "):
            task = asyncio.current_task()
            assert task is not None
            task.cancel()


async def test_a_start_cancelled_once_the_container_runs_leaves_no_container(
    docker_client: docker.DockerClient,
    local_base_image: str,
    tmp_path: Path,
    stack_environment: SetVariables,
) -> None:
    project, volume = unique_project(), f"test-hf-cache-{uuid.uuid4().hex[:10]}"
    stack_environment(
        PERSONAPLEX_PROJECT=project,
        MOSHI_BACKEND="docker",
        MOSHI_BASE_IMAGE=local_base_image,
        MOSHI_BACKEND_PEX=SERVER_PEX,
        MOSHI_ENGINE="loopback",
        MOSHI_GPU="off",
        MOSHI_PERSISTENT="false",
        MOSHI_PORT=str(free_port()),
        HF_CACHE_VOLUME=volume,
    )
    hub = CancellingHub()
    hub_task = asyncio.create_task(hub.run())
    hub.bind()
    stack = StackContext(
        load_settings(), hub, RunState(tmp_path / "state", project), Seams(environ=os.environ)
    )
    try:
        async with AsyncExitStack() as owned:
            with pytest.raises(asyncio.CancelledError):
                await start_backend(stack, owned)
        assert docker_client.containers.list(all=True, filters=project_filter(project)) == []
    finally:
        hub_task.cancel()
        remove_project_resources(docker_client, project, volume=volume)
