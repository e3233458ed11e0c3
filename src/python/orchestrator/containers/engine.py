"""The project's resources on the Docker engine: base images, the model-cache volume, the
project's network, and its service containers (persistent reuse, GPUs, sweeping leftovers).

Every SDK call runs off the event loop, through asyncio.to_thread (bounded by the client's HTTP
timeout).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

import docker
import docker.errors
from docker.models.containers import Container

from orchestrator import events
from orchestrator.containers.container_spec import ContainerSpec, create_and_start
from orchestrator.containers.docker_errors import NoGpuDriver
from orchestrator.containers.image_build import build_image
from orchestrator.containers.image_pull import pull_image
from orchestrator.containers.labels import (
    LABEL_HASH,
    LABEL_PERSISTENT,
    LABEL_SERVICE,
    LABEL_SESSION,
    label_filter,
    owner_labels,
)
from orchestrator.containers.service_container import ServiceContainer
from orchestrator.errors import OrchestratorError
from orchestrator.events import ResourceState, StateChanged
from orchestrator.hub import EventHub


class BaseImageUnavailable(OrchestratorError):
    """A service's base image is neither present nor pullable."""


class Action(str, Enum):
    CREATED = "created"
    REUSED = "reused"
    RECREATED = "recreated"


@dataclass(frozen=True)
class RunOutcome:
    container: ServiceContainer
    action: Action
    # Set when a GPU was asked for and the engine could not give one.
    gpu_fallback: str | None = None


class DockerEngine:
    def __init__(self, client: docker.DockerClient, hub: EventHub, project: str) -> None:
        self.client = client
        self.hub = hub
        self.project = project

    async def nvidia_runtime(self) -> bool:
        info = await asyncio.to_thread(self.client.info)
        return "nvidia" in (info.get("Runtimes") or {})

    async def ensure_image(
        self, image: str, *, timeout_s: float, for_resource: str | None = None
    ) -> None:
        """Nothing when the engine has image; otherwise a pull, its progress streamed into
        the hub (for_resource, when given, is shown pulling, the pull in its console).
        PullFailed with the reason in one line."""

        def present() -> bool:
            try:
                self.client.images.get(image)
            except docker.errors.ImageNotFound:
                return False
            return True

        if not await asyncio.to_thread(present):
            if for_resource is not None:
                await self.hub.publish(StateChanged(for_resource, ResourceState.PULLING, image))
            await pull_image(
                self.client,
                self.hub,
                image,
                timeout_s=timeout_s,
                resource=for_resource or events.BUILD,
            )

    async def build(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        timeout_s: float,
        resource: str = events.BUILD,
    ) -> str:
        """The id of the image built from context; its output streams into the hub (into
        resource's console)."""
        return await build_image(
            self.client,
            self.hub,
            context,
            dockerfile=dockerfile,
            tag=tag,
            buildargs=buildargs,
            labels=owner_labels(self.project),
            timeout_s=timeout_s,
            resource=resource,
        )

    async def ensure_volume(self, name: str) -> bool:
        """True when the volume was created now, False when it existed."""

        def ensure() -> bool:
            try:
                self.client.volumes.get(name)
                return False
            except docker.errors.NotFound:
                self.client.volumes.create(name, labels=owner_labels(self.project))
                return True

        return await asyncio.to_thread(ensure)

    async def ensure_network(self, name: str) -> str | None:
        """The network, made if missing; returns this host's IPv4 address on it (its gateway),
        by which its containers reach the host's services, or None when it has none."""

        def ensure() -> str | None:
            # The name filter matches parts of names too.
            found = [n for n in self.client.networks.list(names=[name]) if n.name == name]
            network = (
                found[0]
                if found
                else self.client.networks.create(name, labels=owner_labels(self.project))
            )
            network.reload()
            for config in (network.attrs.get("IPAM") or {}).get("Config") or []:
                gateway = config.get("Gateway")
                if gateway and ":" not in gateway:
                    return str(gateway)
            return None

        return await asyncio.to_thread(ensure)

    async def remove_volume(self, name: str) -> bool:
        """True when the volume existed and is gone now."""

        def remove() -> bool:
            try:
                self.client.volumes.get(name).remove(force=True)
            except docker.errors.NotFound:
                return False
            return True

        return await asyncio.to_thread(remove)

    async def remove_networks(self) -> list[str]:
        """Remove the project's networks (after its containers: a network in use stays)."""

        def remove() -> list[str]:
            removed = []
            filters = {"label": label_filter(owner_labels(self.project))}
            for network in self.client.networks.list(filters=filters):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
                    removed.append(str(network.name))
            return removed

        return await asyncio.to_thread(remove)

    async def owned_containers(self) -> list[Container]:
        filters: dict[str, str | list[str] | bool] = {
            "label": label_filter(owner_labels(self.project))
        }
        found: list[Container] = await asyncio.to_thread(
            self.client.containers.list, all=True, filters=filters
        )
        return found

    async def sweep(self) -> list[str]:
        """Remove what a crashed or ended run left: stopped or non-persistent containers."""
        removed: list[str] = []
        for container in await self.owned_containers():
            persistent = container.labels.get(LABEL_PERSISTENT) == "1"
            if persistent and container.status == "running":
                continue  # kept on purpose; run() decides whether it can be reused
            # v: the container's anonymous volumes (its certs directory) go with it.
            await asyncio.to_thread(container.remove, force=True, v=True)
            removed.append(f"{container.name} ({container.status})")
        return removed

    async def remove_all(self) -> list[str]:
        removed = []
        for container in await self.owned_containers():
            await asyncio.to_thread(container.remove, force=True, v=True)
            removed.append(str(container.name))
        return removed

    async def run(self, spec: ContainerSpec, session: str) -> RunOutcome:
        wanted = spec.config_hash()
        labels = {
            **owner_labels(self.project),
            **spec.labels,
            LABEL_SERVICE: spec.service,
            LABEL_SESSION: session,
            LABEL_HASH: wanted,
            LABEL_PERSISTENT: "1" if spec.persistent else "0",
        }
        replaced = False
        for existing in await self.owned_containers():
            if existing.labels.get(LABEL_SERVICE) != spec.service:
                continue
            if (
                spec.persistent
                and existing.status == "running"
                and existing.labels.get(LABEL_HASH) == wanted
            ):
                return RunOutcome(ServiceContainer(existing, spec.service, self.hub), Action.REUSED)
            await asyncio.to_thread(existing.remove, force=True, v=True)
            replaced = True
        await self._refuse_foreign_name(spec.name)
        try:
            container = await self._create_and_start(spec, labels, gpu=spec.gpu)
            fallback = None
        except NoGpuDriver as error:
            fallback = error.reason
            container = await self._create_and_start(spec, labels, gpu=False)
        action = Action.RECREATED if replaced else Action.CREATED
        return RunOutcome(ServiceContainer(container, spec.service, self.hub), action, fallback)

    async def _refuse_foreign_name(self, name: str) -> None:
        try:
            other = await asyncio.to_thread(self.client.containers.get, name)
        except docker.errors.NotFound:
            return
        raise OrchestratorError(
            f"a container named {name} exists that this orchestrator did not make "
            f"(labels {dict(other.labels)}); remove it or choose another --project"
        )

    async def _create_and_start(
        self, spec: ContainerSpec, labels: Mapping[str, str], *, gpu: bool
    ) -> Container:
        try:
            return await asyncio.to_thread(create_and_start, self.client, spec, labels, gpu=gpu)
        except docker.errors.DockerException as error:
            raise OrchestratorError(
                f"cannot create the {spec.service} container: {error}"
            ) from error
