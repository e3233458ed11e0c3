"""A client of the Docker engine, or the reason there is none."""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

import docker
import docker.errors

from orchestrator.containers.docker_errors import connection_reason

DockerConnector = Callable[[], Awaitable[tuple[docker.DockerClient | None, str]]]


async def connect_docker(timeout_s: float = 120.0) -> tuple[docker.DockerClient | None, str]:
    """A client whose engine answered a ping, or None and the reason."""

    def attempt() -> docker.DockerClient:
        client = docker.from_env(timeout=int(timeout_s))
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        return client

    try:
        return await asyncio.to_thread(attempt), ""
    except (docker.errors.DockerException, OSError) as error:  # requests' errors are OSErrors
        host = os.environ.get("DOCKER_HOST") or "the default socket"
        return None, f"{host}: {connection_reason(str(error))}"


@asynccontextmanager
async def docker_client(
    connect: DockerConnector,
) -> AsyncIterator[tuple[docker.DockerClient | None, str]]:
    """A connected client (closed afterwards), or None and the reason no engine answers."""
    client, reason = await connect()
    try:
        yield client, reason
    finally:
        if client is not None:
            client.close()
