"""What every part of one `up` shares: the settings, the event hub, the seams, the run's record
on disk and the resources that accept actions."""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from orchestrator.clock import Clock, SystemClock
from orchestrator.containers.connection import DockerConnector, connect_docker
from orchestrator.containers.engine import DockerEngine
from orchestrator.containers.service_images import ImageBuild, build_service_image
from orchestrator.environments import python_path, telemetry_environ
from orchestrator.errors import OrchestratorError
from orchestrator.events import Level, Notice
from orchestrator.health.probe import HealthProbe, HttpProbe
from orchestrator.hub import EventHub
from orchestrator.nvidia_gpus import find_nvidia_gpus
from orchestrator.processes.local_process import LocalLauncher, ProcessLauncher
from orchestrator.processes.run_state import RunRecord, RunState
from orchestrator.settings import StackSettings
from orchestrator.stack.lifecycle import Controls
from orchestrator.telemetry.session import Telemetry


@dataclass
class Seams:
    """Everything `up` touches outside itself, replaceable in tests."""

    environ: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    clock: Clock = field(default_factory=SystemClock)
    # Default: GETs that trust the stack's own certificate (with MOSHI_USE_SSL).
    probe: HealthProbe | None = None
    connect_docker: DockerConnector = connect_docker
    launcher: ProcessLauncher | None = None  # default: LocalLauncher on the stack's hub
    # The interpreter of the service processes, a server PEX's included (CPython 3.11 like
    # this one).
    python: str = sys.executable
    # Lines naming this machine's NVIDIA GPUs; none: [].
    nvidia_gpus: Callable[[], Awaitable[list[str]]] = find_nvidia_gpus
    # What this interpreter imports from (a PEX's or a sandbox's paths), for the children.
    import_paths: Sequence[str] = field(default_factory=lambda: list(sys.path))


class StackContext:
    def __init__(
        self,
        settings: StackSettings,
        hub: EventHub,
        run_state: RunState,
        seams: Seams,
        telemetry: Telemetry | None = None,
    ) -> None:
        self.settings = settings
        self.telemetry = telemetry
        self.hub = hub
        self.run_state = run_state
        self.seams = seams
        self.launcher = seams.launcher or LocalLauncher(hub)
        self.session = uuid.uuid4().hex[:12]
        self.record = RunRecord(self.session, os.getpid())
        # The running resources, for the watch loop and the dashboard's actions.
        self.controls = Controls()
        # (cert.pem, key.pem) of the stack with MOSHI_USE_SSL, once made (stack/tls.py).
        self.certificate: tuple[Path, Path] | None = None

    @property
    def probe(self) -> HealthProbe:
        if self.seams.probe is not None:
            return self.seams.probe
        return HttpProbe(self.certificate[0] if self.certificate else None)

    async def say(self, text: str, level: Level = Level.INFO) -> None:
        await self.hub.publish(Notice(text, level))

    @property
    def scheme(self) -> str:
        return "https" if self.settings.moshi_use_ssl else "http"

    @property
    def network(self) -> str:
        return f"{self.settings.project}-net"

    def container_name(self, service: str) -> str:
        # Also the host name by which the containers reach each other on the project's network.
        return f"{self.settings.project}-{service}"

    def process_environ(self) -> Mapping[str, str]:
        """The caller's environment as a service process on this host starts from: with the
        telemetry receiver's endpoint when `up` has one for the services."""
        endpoint = self.telemetry.for_services() if self.telemetry else None
        return telemetry_environ(self.seams.environ, endpoint)

    async def container_environ(self, gateway: str | None) -> Mapping[str, str]:
        """The same for a container of the network whose gateway (this host on it) is given:
        the receiver listens there too. Failing that, the container exports nothing."""
        if self.telemetry is None or gateway is None:
            return self.seams.environ
        try:
            endpoint = await self.telemetry.for_containers(gateway)
        except OrchestratorError as error:
            await self.say(f"{error.message}; containers send no telemetry", Level.WARNING)
            endpoint = None
        return telemetry_environ(self.seams.environ, endpoint)

    def save_record(self) -> None:
        self.run_state.save(self.record)

    async def build_image(self, engine: DockerEngine, build: ImageBuild) -> str:
        """A service's image for this stack: its PEX packaged (or given), then built."""
        return await build_service_image(
            engine,
            build,
            repo_root=self.settings.repo_root,
            launcher=self.launcher,
            environ=self.seams.environ,
        )

    def pythonpath(self) -> str:
        """PYTHONPATH of the service processes: the repository's sources when this is a
        checkout (so that reload sees edits), then what this interpreter imports from."""
        tree = self.settings.repo_root / "src" / "python"
        checkout = (tree / "frontend" / "__main__.py").is_file()
        return python_path(self.seams.import_paths, str(tree.resolve()) if checkout else None)
