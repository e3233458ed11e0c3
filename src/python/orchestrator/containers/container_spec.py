"""What a service container is made of, and making one: created, started, or removed again."""

from __future__ import annotations

import hashlib
import io
import tarfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from orchestrator.containers.confinement import Confinement
from orchestrator.containers.docker_errors import start_failure
from orchestrator.environments import config_hash

# The backend image's HF_HOME and VOLUME (its Dockerfile), owned by the image's non-root user.
MODEL_CACHE_PATH = "/data/huggingface"


@dataclass(frozen=True)
class TlsFiles:
    """The stack's certificate pair, copied into the container before it starts: directory is
    where the service reads it, uid the image's user (the only one that may read the key)."""

    cert: Path
    key: Path
    directory: str
    uid: int

    def archive(self) -> bytes:
        """A tar of both files, owned by uid, the key readable by it only, to unpack in the
        directory itself: it is a volume of the container's own, and Docker refuses to unpack
        anywhere else on a read-only root (its owner and mode come from the image)."""
        buffer = io.BytesIO()
        with tarfile.open(fileobj=buffer, mode="w") as tar:
            for path, mode in ((self.cert, 0o644), (self.key, 0o600)):
                data = path.read_bytes()
                entry = tarfile.TarInfo(path.name)
                entry.size, entry.mode = len(data), mode
                entry.uid = entry.gid = self.uid
                tar.addfile(entry, io.BytesIO(data))
        return buffer.getvalue()

    def fingerprint(self) -> str:
        return hashlib.sha256(self.cert.read_bytes()).hexdigest()


@dataclass(frozen=True)
class ContainerSpec:
    image_id: str
    name: str
    service: str
    env: Mapping[str, str]
    container_port: int
    publish_host: str
    host_port: int
    # No capabilities, no new privileges, a read-only root; what the service writes besides its
    # volume (confinement.BACKEND_CONFINEMENT, FRONTEND_CONFINEMENT).
    confinement: Confinement
    # A named volume mounted at MODEL_CACHE_PATH (the backend's model cache).
    volume: str | None = None
    gpu: bool = False
    # Outlives `up` and is reused by the next one; otherwise it lives as long as its `up`.
    persistent: bool = False
    labels: Mapping[str, str] = field(default_factory=dict)
    # A user-defined network, on which the other containers reach this one by its name.
    network: str | None = None
    port_option: str = "--moshi-port (MOSHI_PORT)"
    tls: TlsFiles | None = None

    def config_hash(self) -> str:
        return config_hash(
            {
                "image": self.image_id,
                "env": dict(self.env),
                "port": [self.container_port, self.publish_host, self.host_port],
                "volume": self.volume,
                "gpu": self.gpu,
                "persistent": self.persistent,
                "network": self.network,
                # A container made before it was confined (or otherwise) is made again.
                "confinement": self.confinement.docker_options(),
                # A renewed pair makes another container: the running one serves the old pair.
                "tls": [self.tls.directory, self.tls.fingerprint()] if self.tls else None,
            }
        )


def create_and_start(
    client: docker.DockerClient, spec: ContainerSpec, labels: Mapping[str, str], *, gpu: bool
) -> Container:
    """Blocking. A container that cannot start is removed at once: it would block the name.

    Raises NoGpuDriver when gpu was asked for and the engine has no such driver."""
    tls = spec.tls.archive() if spec.tls is not None else None
    container = client.containers.create(
        spec.image_id,
        name=spec.name,
        detach=True,
        environment=dict(spec.env),
        ports={f"{spec.container_port}/tcp": (spec.publish_host, spec.host_port)},
        volumes={spec.volume: {"bind": MODEL_CACHE_PATH, "mode": "rw"}} if spec.volume else None,
        network=spec.network,
        labels=dict(labels),
        **spec.confinement.docker_options(),
        device_requests=[docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])]
        if gpu
        else None,
    )
    try:
        if spec.tls is not None and tls is not None:
            # Before the start: the service finds its pair in place, never makes its own.
            container.put_archive(spec.tls.directory, tls)
        container.start()
    except docker.errors.APIError as error:
        container.remove(force=True, v=True)
        raise start_failure(
            str(error.explanation or error),
            service=spec.service,
            gpu=gpu,
            port=spec.host_port,
            host=spec.publish_host,
            port_option=spec.port_option,
        ) from error
    return container
