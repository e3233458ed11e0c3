"""`up`: starts the backend (container or process) and the frontend, gates each on /health,
then watches them until a signal or a failure, and stops what it owns on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import docker

from orchestrator import events
from orchestrator.clock import Clock, SystemClock
from orchestrator.docker_backend import (
    Action,
    BaseImageUnavailable,
    ContainerSpec,
    DockerEngine,
    ServiceContainer,
    connect_docker,
)
from orchestrator.environments import (
    container_environment,
    frontend_container_environment,
    frontend_environment,
    local_backend_environment,
    python_path,
)
from orchestrator.errors import OrchestratorError, ServiceFailed
from orchestrator.events import Level, Notice, ResourceKind, ResourceState, StateChanged
from orchestrator.health_gate import (
    ExitCheck,
    Gate,
    HealthAnswer,
    HealthProbe,
    HttpProbe,
    wait_healthy,
)
from orchestrator.hub import EventHub
from orchestrator.images import (
    BACKEND_IMAGE,
    FRONTEND_IMAGE,
    backend_build,
    build_service_image,
    frontend_build,
)
from orchestrator.lifecycle import Controls, Lifecycle, Runner
from orchestrator.local_process import (
    LocalLauncher,
    ProcessLauncher,
    ProcessSpec,
    ServiceProcess,
)
from orchestrator.runstate import ProcessRecord, RunRecord, RunState, kill_group, pid_alive
from orchestrator.settings import BackendMode, EngineChoice, GpuMode, StackSettings

# SIGTERM first, SIGKILL after this long (uvicorn's reloader and the backend stop in ~1 s).
STOP_GRACE_S = 10.0
_WATCH_INTERVAL_S = 1.0
_LOG_LINES_ON_FAILURE = 25

DockerConnector = Callable[[], Awaitable[tuple[docker.DockerClient | None, str]]]


@dataclass
class Seams:
    """Everything `up` touches outside itself, replaceable in tests."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Clock = field(default_factory=SystemClock)
    probe: HealthProbe = field(default_factory=HttpProbe)
    connect_docker: DockerConnector = connect_docker
    launcher: ProcessLauncher | None = None  # default: LocalLauncher on the supervisor's hub
    python: str = sys.executable
    # What this interpreter imports from (a PEX's or a sandbox's paths), for the children.
    import_paths: Sequence[str] = field(default_factory=lambda: list(sys.path))


@dataclass(frozen=True)
class Endpoint:
    host: str
    port: int
    scheme: str

    def url(self, path: str = "") -> str:
        return f"{self.scheme}://{self.host}:{self.port}{path}"


class Supervisor:
    def __init__(
        self, settings: StackSettings, hub: EventHub, run_state: RunState, seams: Seams
    ) -> None:
        self._settings = settings
        self._hub = hub
        self._run_state = run_state
        self._seams = seams
        self._launcher = seams.launcher or LocalLauncher(hub)
        self._session = uuid.uuid4().hex[:12]
        self._record = RunRecord(self._session, os.getpid())
        # The engine the backend container runs on; --prod runs the frontend there too.
        self._engine: DockerEngine | None = None
        # The running resources, for the watch loop and the dashboard's actions.
        self.controls = Controls()

    async def _say(self, text: str, level: Level = Level.INFO) -> None:
        await self._hub.publish(Notice(text, level))

    async def up(self, stop: asyncio.Future[int]) -> int:
        """128+signal after a signal, 1 when a service fails; raises when the start fails."""
        started = self._seams.clock.monotonic()
        async with AsyncExitStack() as owned:
            await self._sweep_processes()
            self._run_state.directory.mkdir(parents=True, exist_ok=True)
            self._run_state.save(self._record)
            owned.callback(self._run_state.clear)
            if await self._until_stopped(self._start(owned), stop):
                elapsed = self._seams.clock.monotonic() - started
                frontend = self._record.endpoints[events.FRONTEND]
                await self._say(f"stack is up in {elapsed:.1f} s: open {frontend}")
                code = await self._watch(stop)
            else:
                await self._say("interrupted while starting; stopping what was started")
                code = 128 + stop.result()
        return code

    async def _until_stopped(
        self, work: Coroutine[Any, Any, None], stop: asyncio.Future[int]
    ) -> bool:
        """Run work unless a signal comes first; False when it was interrupted."""
        task = asyncio.create_task(work)
        racing: set[asyncio.Future[Any]] = {task, stop}
        await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            task.result()  # re-raises a failed start
            return True
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, OrchestratorError):
            await task
        return False

    async def _watch(self, stop: asyncio.Future[int]) -> int:
        watchers = {
            asyncio.create_task(
                self._until_exit(name, lifecycle.unexpected_exit), name=f"watch-{name}"
            )
            for name, lifecycle in self.controls.items()
        }
        try:
            racing: set[asyncio.Future[Any]] = {stop, *watchers}
            await asyncio.wait(racing, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for watcher in watchers:
                watcher.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
        if stop.done():
            signal_number = stop.result()
            await self._say(f"received signal {signal_number}; stopping the stack")
            return 128 + signal_number
        ended = next(w.result() for w in watchers if w.done() and not w.cancelled())
        await self._hub.publish(StateChanged(ended[0], ResourceState.FAILED, ended[1]))
        await self._say(f"{ended[0]} {ended[1]}; stopping the stack", Level.ERROR)
        return 1

    async def _until_exit(self, name: str, exited: ExitCheck) -> tuple[str, str]:
        while True:
            ending = await exited()
            if ending is not None:
                return name, ending
            await self._seams.clock.sleep(_WATCH_INTERVAL_S)

    async def _start(self, owned: AsyncExitStack) -> None:
        backend = await self._start_backend(owned)
        await self._start_frontend(owned, backend)

    # --- leftovers -------------------------------------------------------------------------

    async def _sweep_processes(self) -> None:
        previous = self._run_state.load()
        if previous is None:
            return
        if previous.orchestrator_pid != os.getpid() and pid_alive(previous.orchestrator_pid):
            raise OrchestratorError(
                f"`up` of project {self._settings.project} is already running "
                f"(pid {previous.orchestrator_pid}); stop it first or run `orchestrator down`"
            )
        swept = [p for p in previous.processes if kill_group(p)]
        if swept:
            names = ", ".join(f"{p.service} (pid {p.pid})" for p in swept)
            await self._say(f"stopped leftovers of a crashed run: {names}", Level.WARNING)
        self._run_state.clear()

    # --- backend ---------------------------------------------------------------------------

    async def _start_backend(self, owned: AsyncExitStack) -> Endpoint:
        mode = self._settings.backend
        prod = self._settings.prod
        if prod and mode is BackendMode.LOCAL:
            raise OrchestratorError(
                "--prod runs both services as containers; it cannot go with MOSHI_BACKEND=local"
            )
        if mode is not BackendMode.LOCAL:
            client, reason = await self._seams.connect_docker()
            if client is not None:
                owned.callback(client.close)
                try:
                    return await self._start_container(owned, client)
                except BaseImageUnavailable as error:
                    if prod:
                        raise
                    await self._say(error.message, Level.WARNING)
            elif mode is BackendMode.DOCKER or prod:
                wanted = "--prod" if prod else "MOSHI_BACKEND=docker"
                raise OrchestratorError(f"{wanted} but no Docker engine answers: {reason}")
            else:
                await self._say(
                    f"no Docker engine answers ({reason}); the backend runs as a local process"
                )
        return await self._start_local_backend(owned)

    def _scheme(self) -> str:
        return "https" if self._settings.moshi_use_ssl else "http"

    async def _start_local_backend(self, owned: AsyncExitStack) -> Endpoint:
        s = self._settings
        env = local_backend_environment(s, self._seams.environ, self._pythonpath())
        env.setdefault("MOSHI_SSL_DIR", str(self._run_state.directory / "certs"))
        endpoint = Endpoint(s.publish_host, s.moshi_port, self._scheme())
        await self._run_process(owned, events.BACKEND, "moshi_backend", env, endpoint)
        return endpoint

    async def _start_container(
        self, owned: AsyncExitStack, client: docker.DockerClient
    ) -> Endpoint:
        s = self._settings
        engine = DockerEngine(client, self._hub, s.project)
        swept = await engine.sweep()
        if swept:
            await self._say(f"removed leftover containers: {', '.join(swept)}", Level.WARNING)
        if not await engine.base_image_available(s.moshi_base_image):
            raise BaseImageUnavailable(
                f"base image {s.moshi_base_image} is not present and cannot be pulled; pass a "
                "local one with --moshi-base-image (MOSHI_BASE_IMAGE)"
                + ("" if s.prod else "; the backend runs as a local process instead")
            )
        self._engine = engine
        image = BACKEND_IMAGE.tag(s.project)
        await self._hub.publish(
            StateChanged(
                events.BACKEND,
                ResourceState.BUILDING,
                "image",
                kind=ResourceKind.CONTAINER,
                image=image,
            )
        )
        gpu = await self._want_gpu(engine)
        image_id = await self._build_image(engine, gpu)
        created = await engine.ensure_volume(s.hf_cache_volume)
        await self._say(
            f"{'created' if created else 'reusing'} model cache volume {s.hf_cache_volume}"
        )
        # Always on the project's network, so that `up --prod` can reuse a container `up` made.
        await engine.ensure_network(self._network())
        spec = ContainerSpec(
            image_id=image_id,
            name=self._container_name(events.BACKEND),
            service=events.BACKEND,
            env=container_environment(s, self._seams.environ),
            container_port=s.moshi_port,
            publish_host=s.publish_host,
            host_port=s.moshi_port,
            volume=s.hf_cache_volume,
            gpu=gpu,
            persistent=s.persistent,
            network=self._network(),
        )
        outcome = await engine.run(spec, self._session)
        container = outcome.container
        if outcome.gpu_fallback:
            await self._say(
                "GPU requested (MOSHI_GPU=on) but the Docker engine cannot provide one "
                f"({outcome.gpu_fallback}); the backend runs on the CPU",
                Level.WARNING,
            )
        await self._say(f"backend container {container.short_id} {outcome.action.value}")
        endpoint = await self._container_starting(
            events.BACKEND,
            container,
            image,
            image_id,
            s.moshi_port,
        )

        lifecycle = self._container_lifecycle(events.BACKEND, container, endpoint)

        async def release() -> None:
            await lifecycle.cancel()
            if s.persistent and lifecycle.running and await container.exit_description() is None:
                container.close_logs()
                await self._hub.publish(
                    StateChanged(
                        events.BACKEND, ResourceState.DETACHED, "persistent: `down` removes it"
                    )
                )
                return
            await self._hub.publish(StateChanged(events.BACKEND, ResourceState.STOPPING))
            await container.stop(remove=True)
            await self._hub.publish(StateChanged(events.BACKEND, ResourceState.STOPPED))

        owned.push_async_callback(release)
        self._record.container_id = container.id
        self._run_state.save(self._record)
        # A reused container's history was shown by the run that started it.
        container.relay_logs(tail=20 if outcome.action is Action.REUSED else "all")
        await self._gate(events.BACKEND, endpoint, container.exit_description, container.logs_done)
        lifecycle.running = True
        self.controls.add(lifecycle)
        return endpoint

    async def _build_image(self, engine: DockerEngine, gpu: bool) -> str:
        s = self._settings
        build = backend_build(s, gpu)
        if build.target != BACKEND_IMAGE.pants_target and s.moshi_engine is EngineChoice.AUTO:
            await self._say(
                "MOSHI_ENGINE=auto without a GPU for the container: the backend image gets the "
                "loopback server (no torch); --engine personaplex packages the model engines"
            )
        return await build_service_image(
            engine,
            build,
            project=s.project,
            repo_root=s.repo_root,
            launcher=self._launcher,
            hub=self._hub,
            environ=self._seams.environ,
        )

    async def _want_gpu(self, engine: DockerEngine) -> bool:
        mode = self._settings.moshi_gpu
        if mode is GpuMode.OFF:
            return False
        has_runtime = await engine.nvidia_runtime()
        if mode is GpuMode.AUTO and not has_runtime:
            await self._say("no NVIDIA runtime in the Docker engine; the backend runs on the CPU")
        # ON asks even without the runtime: the engine may still have a GPU driver (CDI).
        return has_runtime or mode is GpuMode.ON

    # --- frontend --------------------------------------------------------------------------

    async def _start_frontend(self, owned: AsyncExitStack, backend: Endpoint) -> None:
        s = self._settings
        if s.prod:
            await self._start_frontend_container(owned, backend)
            return
        env = frontend_environment(
            s,
            self._seams.environ,
            backend_host=backend.host,
            backend_port=backend.port,
            pythonpath=self._pythonpath(),
        )
        host = "127.0.0.1" if s.app_host in ("0.0.0.0", "::") else s.app_host
        endpoint = Endpoint(host, s.app_port, self._scheme())
        await self._run_process(
            owned,
            events.FRONTEND,
            "frontend",
            env,
            endpoint,
            ready=lambda answer: answer.status_code == 200,
        )

    async def _start_frontend_container(self, owned: AsyncExitStack, backend: Endpoint) -> None:
        s = self._settings
        engine = self._engine
        if engine is None:  # _start_backend refuses --prod without a backend container
            raise OrchestratorError("--prod: the backend is not a container")
        wanted = frontend_build(s)
        if not await engine.base_image_available(wanted.base_image):
            raise OrchestratorError(
                f"base image {wanted.base_image} is not present and cannot be pulled; pass a "
                f"local one with {FRONTEND_IMAGE.base_image_option}"
            )
        image = FRONTEND_IMAGE.tag(s.project)
        await self._hub.publish(
            StateChanged(
                events.FRONTEND,
                ResourceState.BUILDING,
                "image",
                kind=ResourceKind.CONTAINER,
                image=image,
            )
        )
        image_id = await build_service_image(
            engine,
            wanted,
            project=s.project,
            repo_root=s.repo_root,
            launcher=self._launcher,
            hub=self._hub,
            environ=self._seams.environ,
        )
        env = frontend_container_environment(
            s,
            self._seams.environ,
            backend_host=backend.host,
            backend_port=backend.port,
            backend_address=self._container_name(events.BACKEND),
        )
        spec = ContainerSpec(
            image_id=image_id,
            name=self._container_name(events.FRONTEND),
            service=events.FRONTEND,
            env=env,
            container_port=s.app_port,
            publish_host=s.app_host,
            host_port=s.app_port,
            volume=None,
            gpu=False,
            # Like the frontend process: it lives as long as this `up`.
            persistent=False,
            network=self._network(),
            port_option="--app-port (APP_PORT)",
        )
        container = (await engine.run(spec, self._session)).container
        await self._say(f"frontend container {container.short_id} created")
        endpoint = await self._container_starting(
            events.FRONTEND,
            container,
            image,
            image_id,
            s.app_port,
        )

        def ready(answer: HealthAnswer) -> bool:
            return answer.status_code == 200

        lifecycle = self._container_lifecycle(events.FRONTEND, container, endpoint, ready)

        async def release() -> None:
            await lifecycle.cancel()
            await self._hub.publish(StateChanged(events.FRONTEND, ResourceState.STOPPING))
            await container.stop(remove=True)
            await self._hub.publish(StateChanged(events.FRONTEND, ResourceState.STOPPED))

        owned.push_async_callback(release)
        container.relay_logs()
        await self._gate(
            events.FRONTEND, endpoint, container.exit_description, container.logs_done, ready
        )
        lifecycle.running = True
        self.controls.add(lifecycle)

    # --- shared ----------------------------------------------------------------------------

    async def _container_starting(
        self, resource: str, container: ServiceContainer, image: str, image_id: str, port: int
    ) -> Endpoint:
        """Announce a service container as starting; its endpoint on the host."""
        shown = f"{image} ({image_id.removeprefix('sha256:')[:12]})"
        await self._hub.publish(
            StateChanged(
                resource, ResourceState.STARTING, f"container {container.short_id}", image=shown
            )
        )
        host, host_port = await container.endpoint(port)
        return Endpoint(host, host_port, self._scheme())

    def _container_lifecycle(
        self,
        resource: str,
        container: ServiceContainer,
        endpoint: Endpoint,
        ready: Callable[[HealthAnswer], bool] | None = None,
    ) -> Lifecycle:
        """Restart and stop of a service container from the dashboard: the same container
        starts again (same port, configuration, volume), its new logs follow, the gate runs."""

        async def start_again() -> None:
            await self._hub.publish(
                StateChanged(resource, ResourceState.STARTING, f"container {container.short_id}")
            )
            started = time.time()
            await container.start()
            container.relay_logs(since=started)
            await self._gate(
                resource, endpoint, container.exit_description, container.logs_done, ready
            )

        async def stop_only() -> None:
            await container.stop(remove=False)

        runner = Runner(start_again, stop_only, container.exit_description)
        return Lifecycle(resource, runner, self._hub, running=False)

    def _network(self) -> str:
        return f"{self._settings.project}-net"

    def _container_name(self, service: str) -> str:
        # Also the host name by which the containers reach each other on the project's network.
        return f"{self._settings.project}-{service}"

    def _pythonpath(self) -> str:
        tree = self._settings.repo_root / "src" / "python"
        source_root = str(tree.resolve()) if (tree / "frontend" / "__main__.py").is_file() else None
        return python_path(self._seams.import_paths, source_root)

    async def _run_process(
        self,
        owned: AsyncExitStack,
        service: str,
        module: str,
        env: Mapping[str, str],
        endpoint: Endpoint,
        ready: Callable[[HealthAnswer], bool] | None = None,
    ) -> None:
        """A service as a local process that can be restarted: each start is a new process
        with the same environment, gated on health like the first."""
        current: ServiceProcess | None = None

        async def start() -> None:
            nonlocal current
            await self._hub.publish(
                StateChanged(
                    service, ResourceState.STARTING, "local process", kind=ResourceKind.PROCESS
                )
            )
            current = await self._start_process(service, module, env)
            await self._gate(service, endpoint, current.exit_description, current.logs_done, ready)

        async def stop() -> None:
            if current is not None:
                await current.stop(STOP_GRACE_S)

        async def exited() -> str | None:
            return await current.exit_description() if current is not None else "never started"

        lifecycle = Lifecycle(service, Runner(start, stop, exited), self._hub, running=False)
        owned.push_async_callback(lifecycle.shutdown)
        await start()
        lifecycle.running = True
        self.controls.add(lifecycle)

    async def _start_process(
        self, service: str, module: str, env: Mapping[str, str]
    ) -> ServiceProcess:
        spec = ProcessSpec(
            service, [self._seams.python, "-m", module], env, cwd=self._run_state.directory
        )
        process = await self._launcher.start(spec)
        # A restart replaces the service's process: `down` and the next `up` find the new one.
        self._record.processes = [p for p in self._record.processes if p.service != service]
        self._record.processes.append(
            ProcessRecord(service, process.pid, process.pgid, f"-m {module}")
        )
        self._run_state.save(self._record)
        return process

    async def _gate(
        self,
        resource: str,
        endpoint: Endpoint,
        exited: ExitCheck,
        logs_done: Callable[[float], Awaitable[None]],
        ready: Callable[[HealthAnswer], bool] | None = None,
    ) -> None:
        gate = Gate(resource, endpoint.url("/health"), self._settings.health_timeout_s)
        options: dict[str, Any] = {"ready": ready} if ready else {}
        try:
            await wait_healthy(
                gate,
                probe=self._seams.probe,
                exited=exited,
                hub=self._hub,
                clock=self._seams.clock,
                **options,
            )
        except ServiceFailed as error:
            # The lines a dying service printed last are the explanation: wait for them.
            await logs_done(5.0)
            await self._hub.drain()
            lines = self._hub.recent_lines(resource, _LOG_LINES_ON_FAILURE)
            await self._hub.publish(StateChanged(resource, ResourceState.FAILED, error.message))
            details = "\n".join(f"  {resource} | {line}" for line in lines)
            raise ServiceFailed(
                error.message, details=f"last lines of {resource}:\n{details}" if lines else ""
            ) from None
        url = endpoint.url()
        self._record.endpoints[resource] = url
        self._run_state.save(self._record)
        await self._hub.publish(StateChanged(resource, ResourceState.HEALTHY, endpoint=url))
