"""Building service images and running containers from them in tests, always cleaned up."""

from __future__ import annotations

import shutil
import tempfile
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import docker
import pytest
from docker.models.containers import Container

from testsupport.docker_engine import TEST_LABEL
from testsupport.polling import GaveUp, http_status, wait_for
from testsupport.processes import free_port


@contextmanager
def built_image(
    client: docker.DockerClient,
    *,
    context_files: Mapping[str, str],
    dockerfile: str,
    buildargs: Mapping[str, str],
    name: str,
    tag: str | None = None,
) -> Iterator[str]:
    """Build from a context of {path in the context: path in the sandbox}; the context paths
    are those of Pants' docker context (`src.python.SERVICE/NAME.pex`, `src/python/...`). Tagged
    `tag` when given, else NAME:test-RANDOM.

    Only the tag goes at the end: the untagged images of the build stages and steps stay,
    because other tests build the same steps at the same time on the same engine, and removing
    one under a running build fails it (seen: "failed to get digest").
    """
    with tempfile.TemporaryDirectory(prefix="build-context-") as directory:
        context = Path(directory)
        for path, source in context_files.items():
            (context / path).parent.mkdir(parents=True, exist_ok=True)
            if Path(source).is_dir():  # a packed PEX
                shutil.copytree(Path(source), context / path)
            else:
                shutil.copy2(Path(source), context / path)
        tag = tag or f"{name}:test-{uuid.uuid4().hex[:12]}"
        log: list[str] = []
        for chunk in client.api.build(
            path=str(context),
            dockerfile=dockerfile,
            tag=tag,
            buildargs=dict(buildargs),
            labels={TEST_LABEL: "1"},
            rm=True,
            forcerm=True,
            decode=True,
        ):
            log.append(str(chunk.get("stream", "")))
            if "error" in chunk:
                pytest.fail(f"image build failed: {chunk['error']}\n{''.join(log)[-3000:]}")
    try:
        yield tag
    finally:
        client.images.remove(tag, force=True, noprune=True)


# The services' Dockerfiles and PEX files where Pants puts them in a test's sandbox (the
# container_files targets, runtime_package_dependencies), at their paths in the build context.
# The backend's Dockerfile takes either server PEX at server.pex: the loopback one is small.
BACKEND_CONTEXT = {
    "src/python/moshi_backend/Dockerfile": "src/python/moshi_backend/Dockerfile",
    "src/python/moshi_backend/start.sh": "src/python/moshi_backend/start.sh",
    "src.python.moshi_backend/server.pex": "src.python.moshi_backend/server-loopback.pex",
}
FRONTEND_CONTEXT = {
    path: path for path in ("src/python/frontend/Dockerfile", "src.python.frontend/app.pex")
}


@contextmanager
def loopback_backend_image(
    client: docker.DockerClient,
    base_image: str,
    *,
    buildargs: Mapping[str, str] | None = None,
    tag: str | None = None,
) -> Iterator[str]:
    """The backend image with the loopback server, on base_image; removed on the way out."""
    with built_image(
        client,
        context_files=BACKEND_CONTEXT,
        dockerfile="src/python/moshi_backend/Dockerfile",
        buildargs={"MOSHI_BASE_IMAGE": base_image, **(buildargs or {})},
        name="personaplex-moshi",
        tag=tag,
    ) as built:
        yield built


@contextmanager
def frontend_image(
    client: docker.DockerClient, base_image: str, *, tag: str | None = None
) -> Iterator[str]:
    """The frontend image on base_image; removed on the way out."""
    with built_image(
        client,
        context_files=FRONTEND_CONTEXT,
        dockerfile="src/python/frontend/Dockerfile",
        buildargs={"FRONTEND_BASE_IMAGE": base_image},
        name="personaplex-frontend",
        tag=tag,
    ) as built:
        yield built


@contextmanager
def running_container(
    client: docker.DockerClient,
    image: str,
    *,
    container_port: int,
    env: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
) -> Iterator[tuple[Container, int]]:
    """The container and the loopback host port its container_port is published on; options
    are more keyword arguments of containers.run (how it is confined)."""
    host_port = free_port()
    container = client.containers.run(
        image,
        detach=True,
        environment=dict(env),
        ports={f"{container_port}/tcp": ("127.0.0.1", host_port)},
        labels={TEST_LABEL: "1"},
        **(options or {}),
    )
    try:
        yield container, host_port
    finally:
        # v=True: the anonymous volume behind the image's VOLUME goes with the container.
        container.remove(force=True, v=True)


def container_logs(container: Container) -> str:
    return str(container.logs(tail=40).decode(errors="replace"))


def wait_container_http(container: Container, url: str, timeout_s: float = 120) -> bytes:
    """Body of url once it answers 200; fails fast with the logs if the container exits."""

    def probe() -> bytes | None:
        container.reload()
        if container.status == "exited":
            raise GaveUp(f"container exited {container.attrs['State']['ExitCode']}")
        answer = http_status(url)
        return answer[1] if answer and answer[0] == 200 else None

    return wait_for(
        probe, what=f"{url} 200", timeout_s=timeout_s, context=lambda: container_logs(container)
    )


def wait_docker_health(container: Container, timeout_s: float = 90) -> str:
    """The HEALTHCHECK's verdict once it is no longer 'starting'."""

    def probe() -> str | None:
        container.reload()
        status = str(container.attrs["State"]["Health"]["Status"])
        return status if status != "starting" else None

    return wait_for(
        probe, what="HEALTHCHECK", timeout_s=timeout_s, context=lambda: container_logs(container)
    )
