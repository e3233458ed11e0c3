"""Test helpers: the orchestrator as a real child process, and the processes a stack started."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import psutil
from docker.models.containers import Container

from orchestrator.containers.confinement import Confinement
from orchestrator.containers.labels import LABEL_PROJECT
from testsupport.gate import Unavailable
from testsupport.images import running_container, wait_docker_health
from testsupport.polling import GaveUp, wait_for
from testsupport.processes import free_port, python_module_command, subprocess_env

CANARY_TOKEN = "hf_canary_" + "7f3a9c2e5b1d4068a9e2"
UP_LINE = "stack is up in"


def unique_project() -> str:
    return f"t-{uuid.uuid4().hex[:10]}"


def stack_env(
    root: Path,
    project: str,
    extra: Mapping[str, str] | None = None,
    *,
    token: str | None = CANARY_TOKEN,
) -> dict[str, str]:
    """An environment for `python -m orchestrator` whose state and secrets live under root;
    the token is a canary that must never show (None: no token at all)."""
    env = subprocess_env(
        {
            "XDG_STATE_HOME": str(root / "state"),
            "XDG_CONFIG_HOME": str(root / "config"),
            "PERSONAPLEX_PROJECT": project,
            "PERSONAPLEX_HEALTH_TIMEOUT_S": "120",
            "MOSHI_PORT": str(free_port()),
            "APP_PORT": str(free_port()),
            # Every `up` serves its dashboard: never on the one default port, which tests share.
            "PERSONAPLEX_DASHBOARD_PORT": str(free_port()),
            # Nor on the OTLP default (4318): tests that run at the same time would take turns
            # at it, and a persistent container's endpoint would change between two `up`s.
            "PERSONAPLEX_OTLP_PORT": str(free_port()),
            **(extra or {}),
        }
    )
    if token is not None:
        env["HF_TOKEN"] = token
    else:
        env.pop("HF_TOKEN", None)
    # A test's own settings must not be overridden by the caller's shell.
    for name in (
        "PERSONAPLEX_CONFIG",
        "PERSONAPLEX_PROD",
        "MOSHI_GPU",
        "MOSHI_BACKEND",
        "MOSHI_BACKEND_PEX",
        "FRONTEND_PEX",
        "PERSONAPLEX_TELEMETRY",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
    ):
        if extra is None or name not in extra:
            env.pop(name, None)
    return env


def project_processes(project: str) -> list[int]:
    """Pids of live (non-zombie) processes started for project (they carry it in their env)."""
    found = []
    for process in psutil.process_iter():
        if process.pid == os.getpid():
            continue
        with contextlib.suppress(psutil.Error):
            if process.status() == psutil.STATUS_ZOMBIE:
                continue
            if process.environ().get("PERSONAPLEX_PROJECT") == project:
                found.append(process.pid)
    return found


def kill_project_processes(project: str) -> None:
    """Whatever a failed test or bench left of project must not outlive it."""
    for pid in project_processes(project):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


@dataclass
class Orchestrator:
    process: subprocess.Popen[bytes]
    log_path: Path
    project: str
    # time.monotonic() at spawn, for start-up times.
    started: float

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_until(
        self, condition: Callable[[], bool], what: str, timeout_s: float, interval_s: float = 0.1
    ) -> float:
        """Seconds since spawn at which condition() first held; GaveUp with the output if the
        orchestrator exits first or time runs out."""

        def probe() -> bool | None:
            if condition():
                return True
            if self.process.poll() is not None:
                raise GaveUp(f"orchestrator exited {self.process.returncode}")
            return None

        wait_for(
            probe,
            what=what,
            timeout_s=timeout_s,
            interval_s=interval_s,
            context=lambda: self.output()[-3000:],
        )
        return time.monotonic() - self.started

    def wait_output(self, text: str, timeout_s: float = 120.0) -> str:
        def probe() -> str | None:
            output = self.output()
            if text in output:
                return output
            if self.process.poll() is not None:
                raise GaveUp(f"orchestrator exited {self.process.returncode}")
            return None

        return wait_for(
            probe, what=f"{text!r} in the output", timeout_s=timeout_s, context=self.output
        )

    def signal_and_wait(self, sig: signal.Signals = signal.SIGTERM, timeout_s: float = 60) -> int:
        self.process.send_signal(sig)
        return self.process.wait(timeout=timeout_s)


@contextlib.contextmanager
def orchestrator_process(
    args: Sequence[str], env: Mapping[str, str], project: str
) -> Iterator[Orchestrator]:
    """`python -m orchestrator ARGS`; on exit it and everything it started are gone."""
    with tempfile.NamedTemporaryFile(prefix="orchestrator-", suffix=".log", delete=False) as log:
        log_path = Path(log.name)
    started = time.monotonic()
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            python_module_command("orchestrator", *args),
            env=dict(env),
            stdout=log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    try:
        yield Orchestrator(process, log_path, project, started)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=10)
        kill_project_processes(project)
        log_path.unlink(missing_ok=True)


def run_orchestrator(
    args: Sequence[str], env: Mapping[str, str], timeout_s: float = 120, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        python_module_command("orchestrator", *args),
        env=dict(env),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        check=False,
    )


def publish_into(tmp_path: Path, *args: str, extra: Mapping[str, str] | None = None) -> Path:
    """`orchestrator publish ARGS` into tmp_path/deploy (ports 8998 and 8010 unless extra says
    otherwise); no token shows."""
    output = tmp_path / "deploy"
    env = stack_env(
        tmp_path, unique_project(), {"MOSHI_PORT": "8998", "APP_PORT": "8010", **(extra or {})}
    )
    result = run_orchestrator(["publish", "--output", str(output), *args], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert CANARY_TOKEN not in result.stdout + result.stderr
    return output


def docker_compose_path() -> str:
    path = shutil.which("docker-compose")
    if path is None:
        raise Unavailable("no docker-compose on PATH (Debian: apt-get install docker-compose)")
    return path


def project_filter(project: str) -> dict[str, str | list[str] | bool]:
    """The Docker API filter of what the orchestrator made for project."""
    return {"label": [f"{LABEL_PROJECT}={project}"]}


def remove_project_resources(
    client: docker.DockerClient,
    project: str,
    *,
    volume: str | None,
    images: bool = True,
    keep_image: str | None = None,
) -> None:
    """What a test or bench made for project on the engine: containers, networks, the volume,
    and (if asked) its images, except the one tagged keep_image."""
    for container in client.containers.list(all=True, filters=project_filter(project)):
        with contextlib.suppress(docker.errors.NotFound):
            container.remove(force=True, v=True)
    if images:
        for image in client.images.list(filters=project_filter(project)):
            if keep_image is not None and keep_image in image.tags:
                continue
            with contextlib.suppress(docker.errors.APIError):
                # noprune: the untagged steps below it may be in use by a concurrent build.
                client.images.remove(str(image.id), force=True, noprune=True)
    if volume is not None:
        with contextlib.suppress(docker.errors.NotFound):
            client.volumes.get(volume).remove(force=True)
    for network in client.networks.list(filters=project_filter(project)):
        with contextlib.suppress(docker.errors.APIError):
            network.remove()


def _exec(container: Container, script: str) -> tuple[int, str]:
    result = container.exec_run(["sh", "-c", script])
    output = result.output.decode(errors="replace") if isinstance(result.output, bytes) else ""
    return (-1 if result.exit_code is None else result.exit_code), output.strip()


def assert_confined(container: Container, confinement: Confinement) -> None:
    """The running container was made confined (HostConfig: `docker run` or compose) and is: its
    service has no capabilities and no new privileges, the root file system cannot be written,
    each scratch directory can (a tmpfs, or under Docker a volume where files land before the
    start; compose mounts tmpfs at all of them)."""
    host = container.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"], host["CapDrop"]
    assert set(host["SecurityOpt"] or []) & {"no-new-privileges", "no-new-privileges:true"}, host
    assert host["ReadonlyRootfs"] is True
    volumes = {m["Destination"] for m in container.attrs["Mounts"] if m["Type"] == "volume"}
    mounted = set(host["Tmpfs"] or {}) | volumes
    assert {s.path for s in confinement.scratch} <= mounted, mounted
    code, status = _exec(container, "grep -E '^(CapEff|CapPrm|NoNewPrivs):' /proc/1/status")
    assert code == 0, status
    fields = dict(line.split(":\t") for line in status.splitlines())
    assert int(fields["CapEff"], 16) == 0 and int(fields["CapPrm"], 16) == 0, fields
    assert fields["NoNewPrivs"] == "1", fields
    code, output = _exec(container, "touch /probe")
    assert code != 0 and "Read-only file system" in output, output
    for scratch in confinement.scratch:
        code, output = _exec(container, f"touch {scratch.path}/probe && rm {scratch.path}/probe")
        assert code == 0, f"{scratch.path}: {output}"


def assert_tls_served_confined(
    client: docker.DockerClient,
    image: str,
    confinement: Confinement,
    *,
    container_port: int,
    certificate_dir: str,
    env: Mapping[str, str] | None = None,
) -> None:
    """With MOSHI_USE_SSL, the confined service writes its self-signed certificate to its
    scratch directory and serves TLS: its HEALTHCHECK asks https://127.0.0.1 inside."""
    with running_container(
        client,
        image,
        container_port=container_port,
        env={**(env or {}), "MOSHI_USE_SSL": "true"},
        options=confinement.docker_options(),
    ) as (container, _):
        assert wait_docker_health(container) == "healthy"
        code, listing = _exec(container, f"ls {certificate_dir}")
        assert code == 0 and listing.split() == ["cert.pem", "key.pem"], listing
