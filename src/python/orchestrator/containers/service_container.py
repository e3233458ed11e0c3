"""A running service container: where it is published, whether it still runs, its output."""

from __future__ import annotations

import asyncio
import contextlib
import threading
from typing import Any, Literal

import docker.errors
from docker.models.containers import Container
from stack_threads.daemon import in_daemon_thread

from orchestrator.endpoints import reachable_host
from orchestrator.errors import OrchestratorError
from orchestrator.events import LogLine
from orchestrator.hub import EventHub

_STOP_TIMEOUT_S = 10


def published_address(container: Container, container_port: int | None = None) -> tuple[str, int]:
    """The host address and port Docker published container_port on (any port when None), as
    this host reaches them; OrchestratorError when it publishes none."""
    ports: dict[str, Any] = container.attrs["NetworkSettings"]["Ports"] or {}
    wanted = ports.values() if container_port is None else [ports.get(f"{container_port}/tcp")]
    for bindings in wanted:
        for binding in bindings or []:
            return reachable_host(binding.get("HostIp") or ""), int(binding["HostPort"])
    raise OrchestratorError(
        f"container {str(container.id)[:12]} publishes no port {container_port or ''}".rstrip()
    )


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
        return published_address(self._container, container_port)

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
