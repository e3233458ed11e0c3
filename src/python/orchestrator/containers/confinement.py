"""How the service containers are locked down, in one place for `up`'s containers, the compose file
and the Kubernetes manifests: no Linux capabilities (the services bind ports above 1024 and need
none), no privilege gained through setuid programs, a root file system that cannot be written,
and for each service the directories it writes besides its volumes, as small tmpfs mounts.

What each image writes (found by running them read-only): temporary files, and with
MOSHI_USE_SSL the certificate pair, in MOSHI_SSL_DIR=/data/certs (the backend's Dockerfile) and
APP_SSL_DIR=certs under the frontend's working directory /home/app. The backend's model cache is
its volume (MODEL_CACHE_PATH).

`up` puts the stack's pair into the certs directory before the container starts (put_archive).
Docker refuses that on a read-only root unless the path is in a volume, and a tmpfs exists only
once the container runs: so Docker's containers get an anonymous volume of their own there (the
image's directory gives it owner and mode; removed with the container). Compose and Kubernetes
services make their own pair at start, on tmpfs or emptyDir.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import docker.types

# The images' user (the Dockerfiles' `useradd --uid`): tmpfs mounts and volumes belong to it.
SERVICE_UID = 10001
DROPPED_CAPABILITIES = ("ALL",)
NO_NEW_PRIVILEGES = "no-new-privileges"


@dataclass(frozen=True)
class Scratch:
    """A directory the service writes: a tmpfs of this size, its user's alone (/tmp: anyone's)."""

    path: str
    size_mb: int
    # Files land here before the start (see above): a volume, not a tmpfs, under Docker.
    filled_before_start: bool = False

    @property
    def tmpfs_options(self) -> str:
        owner = (
            "mode=1777" if self.path == "/tmp" else f"uid={SERVICE_UID},gid={SERVICE_UID},mode=0700"
        )
        return f"rw,nosuid,nodev,noexec,size={self.size_mb}m,{owner}"

    @property
    def volume_name(self) -> str:
        """Its name as a Kubernetes volume."""
        return self.path.rstrip("/").rsplit("/", 1)[-1]


@dataclass(frozen=True)
class Confinement:
    scratch: tuple[Scratch, ...]

    def docker_options(self) -> dict[str, Any]:
        """Keyword arguments of the Docker SDK's containers.create/run."""
        return {
            "cap_drop": list(DROPPED_CAPABILITIES),
            "security_opt": [NO_NEW_PRIVILEGES],
            "read_only": True,
            "tmpfs": {s.path: s.tmpfs_options for s in self.tmpfs},
            "mounts": [
                docker.types.Mount(target=s.path, source=None, type="volume")
                for s in self.scratch
                if s.filled_before_start
            ],
        }

    @property
    def tmpfs(self) -> tuple[Scratch, ...]:
        """The scratch directories Docker's containers get as tmpfs."""
        return tuple(s for s in self.scratch if not s.filled_before_start)

    def compose_options(self) -> dict[str, Any]:
        return {
            "read_only": True,
            "cap_drop": list(DROPPED_CAPABILITIES),
            "security_opt": [f"{NO_NEW_PRIVILEGES}:true"],
            "tmpfs": [f"{s.path}:{s.tmpfs_options}" for s in self.scratch],
        }

    def kubernetes_volumes(self) -> list[dict[str, Any]]:
        return [
            {"name": s.volume_name, "emptyDir": {"sizeLimit": f"{s.size_mb}Mi"}}
            for s in self.scratch
        ]

    def kubernetes_mounts(self) -> list[dict[str, Any]]:
        return [{"name": s.volume_name, "mountPath": s.path} for s in self.scratch]


def kubernetes_container_security() -> dict[str, Any]:
    """A container's part of the "restricted" Pod Security Standard, and a read-only root."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "capabilities": {"drop": list(DROPPED_CAPABILITIES)},
    }


def kubernetes_pod_security() -> dict[str, Any]:
    """The pod's part: never root, the runtime's default seccomp profile, volumes its user's."""
    return {
        "runAsNonRoot": True,
        "runAsUser": SERVICE_UID,
        "runAsGroup": SERVICE_UID,
        "fsGroup": SERVICE_UID,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


_TMP = Scratch("/tmp", 64)
BACKEND_CONFINEMENT = Confinement((_TMP, Scratch("/data/certs", 1, filled_before_start=True)))
FRONTEND_CONFINEMENT = Confinement((_TMP, Scratch("/home/app/certs", 1, filled_before_start=True)))
