from __future__ import annotations

import json
from collections.abc import Iterator

import docker
import pytest

from orchestrator.containers.confinement import FRONTEND_CONFINEMENT
from orchestrator.testing import assert_confined, assert_tls_served_confined
from testsupport import images
from testsupport.images import running_container, wait_container_http, wait_docker_health
from testsupport.polling import http_status


@pytest.fixture(scope="module")
def frontend_image(docker_client: docker.DockerClient, local_base_image: str) -> Iterator[str]:
    with images.frontend_image(docker_client, local_base_image) as tag:
        yield tag


def test_container_serves_ui_config_and_health_as_non_root(
    docker_client: docker.DockerClient, frontend_image: str
) -> None:
    env = {"APP_PORT": "8010", "MOSHI_WS_URL": "ws://gpu-box.example:8998/api/chat"}
    with running_container(
        docker_client,
        frontend_image,
        container_port=8010,
        env=env,
        options=FRONTEND_CONFINEMENT.docker_options(),
    ) as (container, port):
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
        # As the orchestrator (`up --prod`), compose and Kubernetes run it.
        assert_confined(container, FRONTEND_CONFINEMENT)
        # The app runs from a venv made in a build stage that is not shipped: no PEX, no pip.
        for absent in ("gcc", "make", "/app/venv/bin/pip", "/tmp/app.pex"):
            found = container.exec_run(["sh", "-c", f"command -v {absent} || test -e {absent}"])
            assert found.exit_code != 0, f"{absent} is in the image"
        labels = docker_client.images.get(frontend_image).labels
        # No GIT_COMMIT build argument given: the Dockerfile's default says so.
        assert labels["org.opencontainers.image.revision"] == "unknown"


def test_confined_container_with_tls_writes_its_certificate_to_its_scratch_directory(
    docker_client: docker.DockerClient, frontend_image: str
) -> None:
    assert_tls_served_confined(
        docker_client,
        frontend_image,
        FRONTEND_CONFINEMENT,
        container_port=8010,
        certificate_dir="/home/app/certs",
    )
