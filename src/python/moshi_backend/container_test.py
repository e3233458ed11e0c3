from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

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
_MODEL_CACHE = "/data/huggingface"


@pytest.fixture(scope="module")
def backend_image(docker_client: docker.DockerClient, local_base_image: str) -> Iterator[str]:
    with built_image(
        docker_client,
        context_files={
            "src/python/moshi_backend/Dockerfile": "src/python/moshi_backend/Dockerfile",
            "src/python/moshi_backend/start.sh": "src/python/moshi_backend/start.sh",
            # The Dockerfile takes either server PEX at this path; the loopback one is small.
            "src.python.moshi_backend/server.pex": "src.python.moshi_backend/server-loopback.pex",
        },
        dockerfile="src/python/moshi_backend/Dockerfile",
        buildargs={
            "MOSHI_BASE_IMAGE": local_base_image,
            "APP_VERSION": "0.0.0-test",
            "GIT_COMMIT": "0123abcd",
        },
        name="personaplex-moshi",
    ) as tag:
        yield tag


def test_image_is_labelled_and_declares_its_model_cache(
    docker_client: docker.DockerClient, backend_image: str
) -> None:
    config = docker_client.images.get(backend_image).attrs["Config"]
    labels = config["Labels"]
    assert labels["org.opencontainers.image.version"] == "0.0.0-test"
    assert labels["org.opencontainers.image.revision"] == "0123abcd"
    env = dict(entry.split("=", 1) for entry in config["Env"])
    assert env["HF_HOME"] == _MODEL_CACHE and set(config["Volumes"]) == {_MODEL_CACHE}
    assert config["User"] == "moshi"
    assert not {"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN"} & env.keys()


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
        assert _run(container, "id", "-u") == "10001"
        # The model cache is the user's; the code is not (it runs from a read-only venv).
        assert _run(container, "sh", "-c", f"touch {_MODEL_CACHE}/probe && echo ok") == "ok"
        assert _run(container, "sh", "-c", "test -w /app/venv || echo read-only") == "read-only"
        # No build tools and no PEX: the venv was made in a build stage that is not shipped.
        for absent in ("gcc", "cc", "make", "pip", "pip3", "/app/venv/bin/pip", "/tmp/server.pex"):
            found = container.exec_run(["sh", "-c", f"command -v {absent} || test -e {absent}"])
            assert found.exit_code != 0, f"{absent} is in the image"

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


def _run(container: Container, *command: str) -> str:
    result = container.exec_run(list(command))
    assert result.exit_code == 0 and isinstance(result.output, bytes), result
    return result.output.decode().strip()
