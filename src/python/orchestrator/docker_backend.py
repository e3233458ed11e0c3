"""The services as Docker containers: image build, model-cache volume, the project's network,
persistent reuse, GPUs.

Every SDK call runs off the event loop: short ones through asyncio.to_thread (bounded by the
client's HTTP timeout), streams (build output, followed logs) in daemon threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import Any, Literal

import docker
import docker.errors
import docker.types
from docker.models.containers import Container

from orchestrator import events
from orchestrator.environments import config_hash
from orchestrator.errors import OrchestratorError
from orchestrator.events import LogLine, Progress
from orchestrator.hub import EventHub
from orchestrator.threads import in_daemon_thread

LABEL_OWNER = "personaplex.orchestrator"
LABEL_PROJECT = "personaplex.project"
LABEL_SERVICE = "personaplex.service"
LABEL_SESSION = "personaplex.session"
LABEL_HASH = "personaplex.config-hash"
LABEL_PERSISTENT = "personaplex.persistent"

# The backend image's HF_HOME and VOLUME (its Dockerfile), owned by the image's non-root user.
MODEL_CACHE_PATH = "/data/huggingface"
_NO_GPU_DRIVER = "could not select device driver"
_STEP = re.compile(r"^Step (\d+)/(\d+) : (.*)$")
# The classic builder's bookkeeping, which says nothing a reader needs.
_BUILD_NOISE = (" ---> ", "Removing intermediate container")
_STOP_TIMEOUT_S = 10


class BaseImageUnavailable(OrchestratorError):
    """The backend's base image is neither present nor pullable."""


async def connect_docker(timeout_s: float = 120.0) -> tuple[docker.DockerClient | None, str]:
    """A client whose engine answered a ping, or None and the reason."""

    def attempt() -> docker.DockerClient:
        client = docker.from_env(timeout=int(timeout_s))
        try:
            client.ping()
        except BaseException:
            client.close()
            raise
        return client

    try:
        return await asyncio.to_thread(attempt), ""
    except (docker.errors.DockerException, OSError) as error:  # requests' errors are OSErrors
        host = os.environ.get("DOCKER_HOST") or "the default socket"
        return None, f"{host}: {_short_reason(str(error))}"


def _short_reason(text: str) -> str:
    # The SDK nests the cause several wrappers deep; users need its gist only.
    for needle, reason in _REASONS.items():
        if needle in text:
            return reason
    return text.splitlines()[0][:160] if text else "unknown error"


_REASONS = {
    "FileNotFoundError": "no such socket",
    "ConnectionRefusedError": "connection refused",
    "PermissionError": "permission denied",
    "Connection refused": "connection refused",
}


def owner_labels(project: str) -> dict[str, str]:
    return {LABEL_OWNER: "1", LABEL_PROJECT: project}


def _label_filter(labels: Mapping[str, str]) -> list[str]:
    return [f"{key}={value}" for key, value in labels.items()]


class Action(str, Enum):
    CREATED = "created"
    REUSED = "reused"
    RECREATED = "recreated"


@dataclass(frozen=True)
class ContainerSpec:
    image_id: str
    name: str
    service: str
    env: Mapping[str, str]
    container_port: int
    publish_host: str
    host_port: int
    # A named volume mounted at MODEL_CACHE_PATH (the backend's model cache).
    volume: str | None
    gpu: bool
    persistent: bool
    labels: Mapping[str, str] = field(default_factory=dict)
    # A user-defined network, on which the other containers reach this one by its name.
    network: str | None = None
    port_option: str = "--moshi-port (MOSHI_PORT)"

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
            }
        )


@dataclass(frozen=True)
class RunOutcome:
    container: ServiceContainer
    action: Action
    # Set when a GPU was asked for and the engine could not give one.
    gpu_fallback: str | None = None


class ServiceContainer:
    def __init__(self, container: Container, service: str, hub: EventHub) -> None:
        self._container = container
        self._service = service
        self._hub = hub
        self._stream: Any = None
        self._relay: asyncio.Task[None] | None = None
        self._closing = threading.Event()

    @property
    def id(self) -> str:
        return str(self._container.id)

    @property
    def short_id(self) -> str:
        return self.id[:12]

    async def endpoint(self, container_port: int) -> tuple[str, int]:
        """The host address and port Docker really published container_port on."""
        await asyncio.to_thread(self._container.reload)
        ports = self._container.attrs["NetworkSettings"]["Ports"] or {}
        bindings = ports.get(f"{container_port}/tcp") or []
        if not bindings:
            raise OrchestratorError(f"container {self.short_id} publishes no port {container_port}")
        host = bindings[0].get("HostIp") or "127.0.0.1"
        if host in ("0.0.0.0", "::", ""):
            host = "127.0.0.1"  # reachable from this host whatever the wildcard
        return host, int(bindings[0]["HostPort"])

    async def exit_description(self) -> str | None:
        try:
            await asyncio.to_thread(self._container.reload)
        except docker.errors.NotFound:
            return "was removed"
        status = self._container.status
        if status in ("exited", "dead"):
            code = self._container.attrs["State"].get("ExitCode")
            return f"exited with code {code}"
        return None

    async def start(self) -> None:
        """Start the (stopped) container again, with its configuration unchanged."""
        try:
            await asyncio.to_thread(self._container.start)
        except docker.errors.DockerException as error:
            raise OrchestratorError(f"cannot start container {self.short_id}: {error}") from error

    def relay_logs(self, tail: int | Literal["all"] = "all", since: float | None = None) -> None:
        """Follow the container's output into the hub until it stops or close_logs() is called.

        Each run of the container needs its own relay: Docker ends the stream when it stops.
        """
        # A fresh flag per relay: the one a stopped run's close_logs() set must not end this one.
        closing = self._closing = threading.Event()

        def follow() -> None:
            self._stream = self._container.logs(stream=True, follow=True, tail=tail, since=since)
            if closing.is_set():
                self._stream.close()
            pending = b""
            for chunk in self._stream:
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    text = line.decode(errors="replace").rstrip("\r")
                    if not self._hub.publish_threadsafe(LogLine(self._service, text)):
                        return
            if pending:
                self._hub.publish_threadsafe(
                    LogLine(self._service, pending.decode(errors="replace"))
                )

        self._relay = asyncio.create_task(in_daemon_thread(follow, f"logs-{self._service}"))

    async def logs_done(self, timeout_s: float) -> None:
        if self._relay is not None:
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await asyncio.wait_for(asyncio.shield(self._relay), timeout_s)

    def close_logs(self) -> None:
        self._closing.set()
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
        if self._relay is not None and not self._relay.done():
            self._relay.cancel()

    async def stop(self, *, remove: bool) -> None:
        def stop_blocking() -> None:
            with contextlib.suppress(docker.errors.NotFound):
                self._container.stop(timeout=_STOP_TIMEOUT_S)
                if remove:
                    self._container.remove(force=True, v=True)

        try:
            await asyncio.to_thread(stop_blocking)
        finally:
            self.close_logs()


class DockerEngine:
    def __init__(self, client: docker.DockerClient, hub: EventHub, project: str) -> None:
        self.client = client
        self._hub = hub
        self._project = project

    async def nvidia_runtime(self) -> bool:
        info = await asyncio.to_thread(self.client.info)
        return "nvidia" in (info.get("Runtimes") or {})

    async def base_image_available(self, image: str) -> bool:
        def probe() -> bool:
            try:
                self.client.images.get(image)
                return True
            except docker.errors.ImageNotFound:
                pass
            try:
                self.client.images.pull(image)
            except docker.errors.DockerException:
                return False
            return True

        return await asyncio.to_thread(probe)

    async def build(
        self,
        context: Path,
        *,
        dockerfile: str,
        tag: str,
        buildargs: Mapping[str, str],
        timeout_s: float,
    ) -> str:
        """The id of the image built from context; its output streams into the hub."""
        cancel = threading.Event()
        tail: list[str] = []

        def stream_chunks() -> Iterator[dict[str, Any]]:
            chunks: Iterator[dict[str, Any]] = self.client.api.build(
                path=str(context),
                dockerfile=dockerfile,
                tag=tag,
                buildargs=dict(buildargs),
                labels=owner_labels(self._project),
                rm=True,
                forcerm=True,
                pull=False,
                decode=True,
                # Per read: a quiet build step (unpacking the PEX) may take minutes.
                timeout=int(timeout_s),
            )
            return chunks

        def run() -> str:
            image_id: str | None = None
            for chunk in stream_chunks():
                if cancel.is_set():
                    raise OrchestratorError("image build cancelled")
                for line in str(chunk.get("stream", "")).splitlines():
                    if not line.strip():
                        continue
                    tail.append(line)
                    del tail[:-30]
                    if not line.startswith(_BUILD_NOISE):
                        self._hub.publish_threadsafe(LogLine(events.BUILD, line))
                    step = _STEP.match(line)
                    if step:
                        done, total = int(step.group(1)), int(step.group(2))
                        message = f"image step {done}/{total}: {step.group(3)[:60]}"
                        self._hub.publish_threadsafe(
                            Progress(events.BUILD, (done - 1) / total, message)
                        )
                aux = chunk.get("aux")
                if isinstance(aux, dict) and "ID" in aux:
                    image_id = str(aux["ID"])
                if "error" in chunk:
                    raise OrchestratorError(
                        f"image build of {tag} failed: {str(chunk['error']).strip()}",
                        details="\n".join(tail),
                    )
            return image_id or str(self.client.images.get(tag).id)

        try:
            return await asyncio.wait_for(in_daemon_thread(run, "docker-build"), timeout_s)
        except TimeoutError:
            raise OrchestratorError(f"image build of {tag} took over {timeout_s:.0f} s") from None
        except docker.errors.DockerException as error:
            raise OrchestratorError(f"image build of {tag} failed: {error}") from error
        finally:
            cancel.set()

    async def ensure_volume(self, name: str) -> bool:
        """True when the volume was created now, False when it existed."""

        def ensure() -> bool:
            try:
                self.client.volumes.get(name)
                return False
            except docker.errors.NotFound:
                self.client.volumes.create(name, labels=owner_labels(self._project))
                return True

        return await asyncio.to_thread(ensure)

    async def ensure_network(self, name: str) -> None:
        def ensure() -> None:
            if not self.client.networks.list(names=[name]):
                self.client.networks.create(name, labels=owner_labels(self._project))

        await asyncio.to_thread(ensure)

    async def remove_networks(self) -> list[str]:
        """Remove the project's networks (after its containers: a network in use stays)."""

        def remove() -> list[str]:
            removed = []
            filters = {"label": _label_filter(owner_labels(self._project))}
            for network in self.client.networks.list(filters=filters):
                with contextlib.suppress(docker.errors.NotFound):
                    network.remove()
                    removed.append(str(network.name))
            return removed

        return await asyncio.to_thread(remove)

    async def owned_containers(self) -> list[Container]:
        filters: dict[str, str | list[str] | bool] = {
            "label": _label_filter(owner_labels(self._project))
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
            await asyncio.to_thread(container.remove, force=True)
            removed.append(f"{container.name} ({container.status})")
        return removed

    async def remove_all(self) -> list[str]:
        removed = []
        for container in await self.owned_containers():
            await asyncio.to_thread(container.remove, force=True)
            removed.append(str(container.name))
        return removed

    async def run(self, spec: ContainerSpec, session: str) -> RunOutcome:
        wanted = spec.config_hash()
        labels = {
            **owner_labels(self._project),
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
                return RunOutcome(
                    ServiceContainer(existing, spec.service, self._hub), Action.REUSED
                )
            await asyncio.to_thread(existing.remove, force=True)
            replaced = True
        await self._refuse_foreign_name(spec.name)
        try:
            container = await self._create_and_start(spec, labels, gpu=spec.gpu)
            fallback = None
        except _NoGpu as error:
            fallback = error.reason
            container = await self._create_and_start(spec, labels, gpu=False)
        action = Action.RECREATED if replaced else Action.CREATED
        return RunOutcome(ServiceContainer(container, spec.service, self._hub), action, fallback)

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
        requests_ = [docker.types.DeviceRequest(count=-1, capabilities=[["gpu"]])] if gpu else None

        def create_and_start() -> Container:
            container = self.client.containers.create(
                spec.image_id,
                name=spec.name,
                detach=True,
                environment=dict(spec.env),
                ports={f"{spec.container_port}/tcp": (spec.publish_host, spec.host_port)},
                volumes={spec.volume: {"bind": MODEL_CACHE_PATH, "mode": "rw"}}
                if spec.volume
                else None,
                network=spec.network,
                labels=dict(labels),
                device_requests=requests_,
            )
            try:
                container.start()
            except docker.errors.APIError as error:
                # A created container that cannot start would block the name: never keep it.
                container.remove(force=True, v=True)
                explanation = str(error.explanation or error)
                if gpu and _NO_GPU_DRIVER in explanation:
                    raise _NoGpu(explanation) from error
                if "port is already allocated" in explanation or "address already in use" in (
                    explanation
                ):
                    raise OrchestratorError(
                        f"port {spec.host_port} on {spec.publish_host} is in use; "
                        f"choose another with {spec.port_option}"
                    ) from error
                raise OrchestratorError(
                    f"cannot start the {spec.service} container: {explanation}"
                ) from error
            return container

        try:
            return await asyncio.to_thread(create_and_start)
        except docker.errors.DockerException as error:
            raise OrchestratorError(
                f"cannot create the {spec.service} container: {error}"
            ) from error


class _NoGpu(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
