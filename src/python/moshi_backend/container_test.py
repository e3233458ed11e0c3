from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import docker
import pytest
from docker.models.containers import Container

from moshi_backend.testing import echo_once
from orchestrator.containers.confinement import BACKEND_CONFINEMENT
from orchestrator.testing import assert_confined, assert_tls_served_confined
from testsupport.images import (
    loopback_backend_image,
    running_container,
    wait_container_http,
    wait_docker_health,
)

_CONTAINER_PORT = 9123  # not the default, to show the container listens on MOSHI_PORT
_MODEL_CACHE = "/data/huggingface"


@pytest.fixture(scope="module")
def backend_image(docker_client: docker.DockerClient, local_base_image: str) -> Iterator[str]:
    with loopback_backend_image(
        docker_client,
        local_base_image,
        buildargs={"APP_VERSION": "0.0.0-test", "GIT_COMMIT": "0123abcd"},
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
    # The base has no C compiler, which torch.compile's GPU backend needs (the Dockerfile).
    assert env["NO_TORCH_COMPILE"] == "1"


def test_container_serves_health_and_chat(
    docker_client: docker.DockerClient, backend_image: str
) -> None:
    env = {"MOSHI_PORT": str(_CONTAINER_PORT), "MOSHI_ENGINE": "loopback"}
    with running_container(
        docker_client,
        backend_image,
        container_port=_CONTAINER_PORT,
        env=env,
        options=BACKEND_CONFINEMENT.docker_options(),
    ) as (container, port):
        health = json.loads(wait_container_http(container, f"http://127.0.0.1:{port}/health"))
        assert health["engine"] == "loopback" and health["status"] == "ready"
        assert wait_docker_health(container) == "healthy"
        # As the orchestrator, compose and Kubernetes run it: it serves all the same.
        assert_confined(container, BACKEND_CONFINEMENT)
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
        asyncio.run(echo_once(f"ws://127.0.0.1:{port}/api/chat"))
        # The image's VOLUME gives each container an anonymous volume of its own.
        anonymous = [m["Name"] for m in container.attrs["Mounts"] if m["Type"] == "volume"]
    assert anonymous
    remaining = {volume.name for volume in docker_client.volumes.list()}
    assert not remaining.intersection(anonymous), "the container's volume outlived it"


def test_confined_container_with_tls_writes_its_certificate_to_its_scratch_directory(
    docker_client: docker.DockerClient, backend_image: str
) -> None:
    assert_tls_served_confined(
        docker_client,
        backend_image,
        BACKEND_CONFINEMENT,
        container_port=8998,
        certificate_dir="/data/certs",
        env={"MOSHI_ENGINE": "loopback"},
    )


def _run(container: Container, *command: str) -> str:
    result = container.exec_run(list(command))
    assert result.exit_code == 0 and isinstance(result.output, bytes), result
    return result.output.decode().strip()
