"""Connecting to the Docker engine that integration tests use."""

from __future__ import annotations

import docker
from docker.errors import DockerException

from testsupport.gate import Unavailable

# Every container, image or volume a test creates carries this label, so leftovers of an
# interrupted run can be found and removed: `docker ps -a --filter label=personaplex.test`.
TEST_LABEL = "personaplex.test"


def connect(timeout_s: float = 10.0) -> docker.DockerClient:
    """A client whose engine answered a ping; Unavailable otherwise."""
    try:
        client = docker.from_env(timeout=int(timeout_s))
        client.ping()
    except DockerException as error:
        raise Unavailable(f"no Docker engine answers ({error})") from error
    return client
