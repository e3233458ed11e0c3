from __future__ import annotations

import asyncio
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
from docker.models.containers import Container

from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from moshi_protocol.messages import MessageKind
from testsupport.docker_engine import TEST_LABEL
from testsupport.polling import GaveUp, http_status, wait_for
from testsupport.processes import free_port

# Where Pants puts the Dockerfile, the start script and the built PEX in the test sandbox: the
# same layout as the docker build context.
_CONTEXT_FILES = (
    "src/python/moshi_backend/Dockerfile",
    "src/python/moshi_backend/start.sh",
    "src.python.moshi_backend/server.pex",
)
_CONTAINER_PORT = 9123  # not the default, to show the container listens on MOSHI_PORT


@pytest.fixture(scope="module")
def backend_image(
    docker_client: docker.DockerClient,
    local_base_image: str,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    context = tmp_path_factory.mktemp("context")
    for name in _CONTEXT_FILES:
        (context / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(Path(name), context / name)
    tag = f"personaplex-moshi-test:{uuid.uuid4().hex[:12]}"
    log: list[str] = []
    for chunk in docker_client.api.build(
        path=str(context),
        dockerfile="src/python/moshi_backend/Dockerfile",
        tag=tag,
        buildargs={"BASE_IMAGE": local_base_image},
        labels={TEST_LABEL: "1"},
        rm=True,
        forcerm=True,
        decode=True,
    ):
        log.append(chunk.get("stream", ""))
        if "error" in chunk:
            pytest.fail(f"image build failed: {chunk['error']}\n{''.join(log)[-3000:]}")
    yield tag
    docker_client.images.remove(tag, force=True)


@pytest.fixture
def backend_container(
    docker_client: docker.DockerClient, backend_image: str
) -> Iterator[tuple[Container, int]]:
    host_port = free_port()
    container = docker_client.containers.run(
        backend_image,
        detach=True,
        environment={"MOSHI_PORT": str(_CONTAINER_PORT), "MOSHI_ENGINE": "loopback"},
        ports={f"{_CONTAINER_PORT}/tcp": ("127.0.0.1", host_port)},
        labels={TEST_LABEL: "1"},
    )
    try:
        yield container, host_port
    finally:
        container.remove(force=True)


def _logs(container: Container) -> str:
    return str(container.logs(tail=40).decode(errors="replace"))


def test_container_serves_health_and_chat(backend_container: tuple[Container, int]) -> None:
    container, port = backend_container

    def healthy_http() -> bytes | None:
        container.reload()
        if container.status == "exited":
            raise GaveUp(f"container exited {container.attrs['State']['ExitCode']}")
        answer = http_status(f"http://127.0.0.1:{port}/health")
        return answer[1] if answer and answer[0] == 200 else None

    health = json.loads(
        wait_for(healthy_http, what="/health 200", timeout_s=120, context=lambda: _logs(container))
    )
    assert health["engine"] == "loopback" and health["status"] == "ready"

    def docker_health() -> str | None:
        container.reload()
        status = str(container.attrs["State"]["Health"]["Status"])
        return status if status != "starting" else None

    assert wait_for(docker_health, what="HEALTHCHECK", timeout_s=90) == "healthy"
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
