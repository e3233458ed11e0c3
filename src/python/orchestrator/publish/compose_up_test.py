"""The compose file `publish --gpu off` writes, run for real by docker-compose: images built from
the services' Dockerfiles (loopback server, local base) under the names the file expects, both
services confined and healthy, a conversation relayed by the frontend, and `down -v` leaves no
container, network or volume."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import docker
from docker.models.containers import Container

from moshi_backend.testing import echo_once
from orchestrator.containers.confinement import BACKEND_CONFINEMENT, FRONTEND_CONFINEMENT
from orchestrator.publish.deployment import BACKEND, FRONTEND
from orchestrator.publish.writer import COMPOSE_FILE, ENV_TEMPLATE
from orchestrator.testing import assert_confined, docker_compose_path, publish_into
from testsupport.gate import require
from testsupport.images import frontend_image, loopback_backend_image, wait_docker_health
from testsupport.processes import free_port

_PROJECT_LABEL = "com.docker.compose.project"


class Compose:
    def __init__(self, executable: str, directory: Path, project: str) -> None:
        self.executable, self.directory, self.project = executable, directory, project

    def run(self, *args: str, timeout_s: float = 300) -> str:
        result = subprocess.run(
            [self.executable, "-p", self.project, "-f", COMPOSE_FILE, *args],
            cwd=self.directory,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            check=False,
            # Only what compose needs: the test's own HF_TOKEN must not fill the file in.
            env={
                key: value
                for key, value in os.environ.items()
                if key in ("PATH", "HOME", "DOCKER_HOST")
            },
        )
        assert result.returncode == 0, f"docker-compose {args}: {result.stdout}{result.stderr}"
        return result.stdout + result.stderr

    @contextlib.contextmanager
    def up(self) -> Iterator[None]:
        try:
            self.run("up", "-d")
            yield
        finally:
            # Also after a failure: nothing of the project may outlive the test.
            with contextlib.suppress(AssertionError, subprocess.TimeoutExpired):
                self.run("down", "-v", "--timeout", "5")


def _env_file(template: str, **values: str) -> str:
    """The .env a user would write from the template: these values replaced."""
    lines = []
    for line in template.splitlines():
        name = line.partition("=")[0]
        lines.append(f"{name}={values[name]}" if name in values else line)
    return "\n".join(lines) + "\n"


def _defaults(template: str) -> dict[str, str]:
    pairs = (line.partition("=") for line in template.splitlines() if not line.startswith("#"))
    return {name: value for name, _, value in pairs if name}


def _service(client: docker.DockerClient, project: str, service: str) -> Container:
    filters: dict[str, str | list[str] | bool] = {
        "label": [f"{_PROJECT_LABEL}={project}", f"com.docker.compose.service={service}"]
    }
    (container,) = client.containers.list(all=True, filters=filters)
    return container


def test_published_compose_file_runs_a_relayed_conversation_and_down_leaves_nothing(
    docker_client: docker.DockerClient, local_base_image: str, tmp_path: Path
) -> None:
    executable = require("docker-compose", docker_compose_path)
    run_id = uuid.uuid4().hex[:10]
    output = publish_into(
        tmp_path,
        "--gpu",
        "off",
        "--image-prefix",
        f"personaplex-compose-test-{run_id}",
        "--image-tag",
        "test",
        extra={"MOSHI_ENGINE": "loopback"},
    )
    template = (output / ENV_TEMPLATE).read_text()
    images = _defaults(template)
    app_port, volume = free_port(), f"test-hf-cache-{run_id}"
    # As NOTES.md says (cp .env.example .env), with the port on loopback only and a volume of
    # the test's own.
    (output / ".env").write_text(
        _env_file(template, APP_PUBLISH_PORT=f"127.0.0.1:{app_port}", HF_CACHE_VOLUME=volume)
    )
    compose = Compose(executable, output, f"pp-compose-{run_id}")
    project: dict[str, str | list[str] | bool] = {"label": [f"{_PROJECT_LABEL}={compose.project}"]}
    with ExitStack() as stack:
        stack.enter_context(
            loopback_backend_image(docker_client, local_base_image, tag=images["MOSHI_IMAGE"])
        )
        stack.enter_context(
            frontend_image(docker_client, local_base_image, tag=images["FRONTEND_IMAGE"])
        )
        with compose.up():
            backend = _service(docker_client, compose.project, BACKEND)
            frontend = _service(docker_client, compose.project, FRONTEND)
            # `up -d` waited for the backend's health (the frontend depends on it).
            assert wait_docker_health(backend, timeout_s=120) == "healthy"
            assert wait_docker_health(frontend, timeout_s=120) == "healthy"
            assert backend.attrs["Config"]["Image"] == images["MOSHI_IMAGE"]
            assert_confined(backend, BACKEND_CONFINEMENT)
            assert_confined(frontend, FRONTEND_CONFINEMENT)
            # Browsers reach only the frontend, which relays to the backend by its service name.
            asyncio.run(echo_once(f"ws://127.0.0.1:{app_port}/proxy/moshi"))
            mounts = {m.get("Name") for m in backend.attrs["Mounts"] if m["Type"] == "volume"}
            assert volume in mounts
            compose.run("down", "-v", "--timeout", "5")
            assert docker_client.containers.list(all=True, filters=project) == []
            assert docker_client.networks.list(filters=project) == []
            assert volume not in {v.name for v in docker_client.volumes.list()}
