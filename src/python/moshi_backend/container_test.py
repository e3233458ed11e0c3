from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import docker
import pytest

from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import MessageKind
from testsupport.images import (
    built_image,
    running_container,
    wait_container_http,
    wait_docker_health,
)

_CONTAINER_PORT = 9123  # not the default, to show the container listens on MOSHI_PORT


@pytest.fixture(scope="module")
def backend_image(docker_client: docker.DockerClient, local_base_image: str) -> Iterator[str]:
    with built_image(
        docker_client,
        context_files=(
            "src/python/moshi_backend/Dockerfile",
            "src/python/moshi_backend/start.sh",
            "src.python.moshi_backend/server.pex",
        ),
        dockerfile="src/python/moshi_backend/Dockerfile",
        base_image=local_base_image,
        name="personaplex-moshi",
    ) as tag:
        yield tag


def test_container_serves_health_and_chat(
    docker_client: docker.DockerClient, backend_image: str
) -> None:
    env = {"MOSHI_PORT": str(_CONTAINER_PORT), "MOSHI_ENGINE": "loopback"}
    with running_container(
        docker_client, backend_image, container_port=_CONTAINER_PORT, env=env
    ) as (container, port):
        health = json.loads(wait_container_http(container, f"http://127.0.0.1:{port}/health"))
        assert health["engine"] == "loopback" and health["status"] == "ready"
        assert wait_docker_health(container) == "healthy"
        # start.sh turned the environment into flags: the server's command line shows them.
        commands = [" ".join(row) for row in container.top()["Processes"]]
        assert any(f"--port {_CONTAINER_PORT}" in command for command in commands), commands

        async def one_echo() -> None:
            async with ChatClient.connect(f"ws://127.0.0.1:{port}/api/chat") as client:
                await client.handshake()
                for page in ogg_pages(tone(0.8)):
                    await client.send_audio(page)
                while (await client.receive()).kind is not MessageKind.AUDIO:
                    pass

        asyncio.run(one_echo())
        # The image's VOLUME gives each container an anonymous volume of its own.
        anonymous = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    assert anonymous
    remaining = {volume.name for volume in docker_client.volumes.list()}
    assert not remaining.intersection(anonymous), "the container's volume outlived it"
