"""`up`: starts the backend (container or process) and the frontend, gates each on /health,
then watches them until a signal or a failure, and stops what it owns on the way out."""

from __future__ import annotations

import asyncio
import contextlib
import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from typing import Any

import docker

from orchestrator import events
from orchestrator.backend_image import build_backend_image
from orchestrator.clock import Clock, SystemClock
from orchestrator.docker_backend import (
    Action,
    BaseImageUnavailable,
    ContainerSpec,
    DockerEngine,
    connect_docker,
)
from orchestrator.environments import (
    container_environment,
    frontend_environment,
    local_backend_environment,
    python_path,
)
from orchestrator.errors import OrchestratorError, ServiceFailed
from orchestrator.events import Level, Notice, ResourceState, StateChanged
from orchestrator.health_gate import (
    ExitCheck,
    Gate,
    HealthAnswer,
    HealthProbe,
    HttpProbe,
    wait_healthy,
)
from orchestrator.hub import EventHub
from orchestrator.local_process import (
    LocalLauncher,
    ProcessLauncher,
    ProcessSpec,
    ServiceProcess,
)
from orchestrator.runstate import ProcessRecord, RunRecord, RunState, kill_group, pid_alive
from orchestrator.settings import BackendMode, GpuMode, StackSettings

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
        self._watchers: dict[str, ExitCheck] = {}

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
            asyncio.create_task(self._until_exit(name, exited), name=f"watch-{name}")
            for name, exited in self._watchers.items()
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
        if mode is not BackendMode.LOCAL:
            client, reason = await self._seams.connect_docker()
            if client is not None:
                owned.callback(client.close)
                try:
                    return await self._start_container(owned, client)
                except BaseImageUnavailable as error:
                    await self._say(error.message, Level.WARNING)
            elif mode is BackendMode.DOCKER:
                raise OrchestratorError(
                    f"MOSHI_BACKEND=docker but no Docker engine answers: {reason}"
                )
            else:
                await self._say(
                    f"no Docker engine answers ({reason}); the backend runs as a local process"
                )
        return await self._start_local_backend(owned)

    def _scheme(self) -> str:
        return "https" if self._settings.moshi_use_ssl else "http"

    async def _start_local_backend(self, owned: AsyncExitStack) -> Endpoint:
        s = self._settings
        await self._hub.publish(
            StateChanged(events.BACKEND, ResourceState.STARTING, "local process")
        )
        env = local_backend_environment(s, self._seams.environ, self._pythonpath())
        env.setdefault("MOSHI_SSL_DIR", str(self._run_state.directory / "certs"))
        process = await self._start_process(owned, events.BACKEND, "moshi_backend", env)
        endpoint = Endpoint(s.publish_host, s.moshi_port, self._scheme())
        await self._gate(events.BACKEND, endpoint, process.exit_description, process.logs_done)
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
                "local one with --moshi-base-image (MOSHI_BASE_IMAGE); "
                "the backend runs as a local process instead"
            )
        await self._hub.publish(StateChanged(events.BACKEND, ResourceState.BUILDING, "image"))
        image_id = await self._build_image(engine)
        created = await engine.ensure_volume(s.hf_cache_volume)
        await self._say(
            f"{'created' if created else 'reusing'} model cache volume {s.hf_cache_volume}"
        )
        gpu = await self._want_gpu(engine)
        spec = ContainerSpec(
            image_id=image_id,
            name=f"{s.project}-moshi-backend",
            service=events.BACKEND,
            env=container_environment(s, self._seams.environ),
            container_port=s.moshi_port,
            publish_host=s.publish_host,
            host_port=s.moshi_port,
            volume=s.hf_cache_volume,
            gpu=gpu,
            persistent=s.persistent,
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
        healthy = False

        async def release() -> None:
            if s.persistent and healthy and await container.exit_description() is None:
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
        host, port = await container.endpoint(s.moshi_port)
        endpoint = Endpoint(host, port, self._scheme())
        await self._gate(events.BACKEND, endpoint, container.exit_description, container.logs_done)
        healthy = True
        return endpoint

    async def _build_image(self, engine: DockerEngine) -> str:
        s = self._settings
        return await build_backend_image(
            engine,
            project=s.project,
            base_image=s.moshi_base_image,
            given_pex=s.backend_pex,
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
        await self._hub.publish(
            StateChanged(events.FRONTEND, ResourceState.STARTING, "local process")
        )
        env = frontend_environment(
            s,
            self._seams.environ,
            backend_host=backend.host,
            backend_port=backend.port,
            pythonpath=self._pythonpath(),
        )
        process = await self._start_process(owned, events.FRONTEND, "frontend", env)
        host = "127.0.0.1" if s.app_host in ("0.0.0.0", "::") else s.app_host
        endpoint = Endpoint(host, s.app_port, self._scheme())
        await self._gate(
            events.FRONTEND,
            endpoint,
            process.exit_description,
            process.logs_done,
            ready=lambda answer: answer.status_code == 200,
        )

    # --- shared ----------------------------------------------------------------------------

    def _pythonpath(self) -> str:
        tree = self._settings.repo_root / "src" / "python"
        source_root = str(tree.resolve()) if (tree / "frontend" / "__main__.py").is_file() else None
        return python_path(self._seams.import_paths, source_root)

    async def _start_process(
        self, owned: AsyncExitStack, service: str, module: str, env: Mapping[str, str]
    ) -> ServiceProcess:
        spec = ProcessSpec(
            service, [self._seams.python, "-m", module], env, cwd=self._run_state.directory
        )
        process = await self._launcher.start(spec)
        self._record.processes.append(
            ProcessRecord(service, process.pid, process.pgid, f"-m {module}")
        )
        self._run_state.save(self._record)

        async def stop() -> None:
            await self._hub.publish(StateChanged(service, ResourceState.STOPPING))
            await process.stop(STOP_GRACE_S)
            await self._hub.publish(StateChanged(service, ResourceState.STOPPED))

        owned.push_async_callback(stop)
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
        self._watchers[resource] = exited
        await self._hub.publish(StateChanged(resource, ResourceState.HEALTHY, endpoint=url))
