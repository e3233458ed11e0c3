from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from testsupport.images import (
    built_image,
    running_container,
    wait_container_http,
    wait_docker_health,
)
from testsupport.polling import http_status


@pytest.fixture(scope="module")
def frontend_image(docker_client: docker.DockerClient, local_base_image: str) -> Iterator[str]:
    with built_image(
        docker_client,
        context_files={
            path: path for path in ("src/python/frontend/Dockerfile", "src.python.frontend/app.pex")
        },
        dockerfile="src/python/frontend/Dockerfile",
        buildargs={"FRONTEND_BASE_IMAGE": local_base_image},
        name="personaplex-frontend",
    ) as tag:
        yield tag


def test_container_serves_ui_config_and_health_as_non_root(
    docker_client: docker.DockerClient, frontend_image: str
) -> None:
    env = {"APP_PORT": "8010", "MOSHI_WS_URL": "ws://gpu-box.example:8998/api/chat"}
    with running_container(docker_client, frontend_image, container_port=8010, env=env) as (
        container,
        port,
    ):
        base = f"http://127.0.0.1:{port}"
        health = json.loads(wait_container_http(container, base + "/health"))
        assert health["status"] == "ok" and health["backend"]["reachable"] is False
        config = json.loads(wait_container_http(container, base + "/api/config"))
        assert config["moshi_ws_url"] == "ws://gpu-box.example:8998/api/chat"
        page = http_status(base + "/")
        assert page is not None and page[0] == 200 and b"<html" in page[1].lower()
        assert wait_docker_health(container) == "healthy"
        result = container.exec_run(["id", "-u"])
        assert result.exit_code == 0 and isinstance(result.output, bytes)
        assert result.output.decode().strip() == "10001"
        # The app runs from a venv made in a build stage that is not shipped: no PEX, no pip.
        for absent in ("gcc", "make", "/app/venv/bin/pip", "/tmp/app.pex"):
            found = container.exec_run(["sh", "-c", f"command -v {absent} || test -e {absent}"])
            assert found.exit_code != 0, f"{absent} is in the image"
        labels = docker_client.images.get(frontend_image).labels
        # No GIT_COMMIT build argument given: the Dockerfile's default says so.
        assert labels["org.opencontainers.image.revision"] == "unknown"
