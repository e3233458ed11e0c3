from __future__ import annotations

import asyncio
import json
import re
import signal
import ssl
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from moshi_backend.testing import echo_once
from orchestrator.containers.confinement import BACKEND_CONFINEMENT, FRONTEND_CONFINEMENT
from orchestrator.containers.container_spec import MODEL_CACHE_PATH
from orchestrator.containers.labels import LABEL_HASH, LABEL_OWNER, LABEL_PROJECT, LABEL_SERVICE
from orchestrator.testing import (
    CANARY_TOKEN,
    UP_LINE,
    assert_confined,
    orchestrator_process,
    project_filter,
    project_processes,
    remove_project_resources,
    run_orchestrator,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status, wait_for

# Where Pants puts the PEX files in this test's sandbox (runtime_package_dependencies).
SERVER_PEX = "src.python.moshi_backend/server-loopback.pex"
APP_PEX = "src.python.frontend/app.pex"


@dataclass
class DockerStack:
    client: docker.DockerClient
    project: str
    volume: str
    env: dict[str, str]

    def containers(self) -> list[Container]:
        found: list[Container] = self.client.containers.list(
            all=True, filters=project_filter(self.project)
        )
        return found

    def backend(self) -> Container:
        (container,) = self.containers()
        return container

    def service(self, name: str) -> Container:
        (container,) = (c for c in self.containers() if c.labels[LABEL_SERVICE] == name)
        return container


@pytest.fixture
def stack(
    docker_client: docker.DockerClient, local_base_image: str, tmp_path: Path
) -> Iterator[DockerStack]:
    project = unique_project()
    volume = f"test-hf-cache-{uuid.uuid4().hex[:10]}"
    env = stack_env(
        tmp_path,
        project,
        {
            "MOSHI_BASE_IMAGE": local_base_image,
            "FRONTEND_BASE_IMAGE": local_base_image,
            "MOSHI_BACKEND_PEX": SERVER_PEX,
            "FRONTEND_PEX": APP_PEX,
            "HF_CACHE_VOLUME": volume,
            "MOSHI_GPU": "auto",
        },
    )
    created = DockerStack(docker_client, project, volume, env)
    try:
        yield created
    finally:
        remove_project_resources(docker_client, project, volume=volume)


def _exec_env(container: Container) -> dict[str, str]:
    result = container.exec_run(["env"])
    assert result.exit_code == 0 and isinstance(result.output, bytes)
    pairs = (line.partition("=") for line in result.output.decode().splitlines())
    return {key: value for key, _, value in pairs}


def _up_seconds(output: str) -> float:
    match = re.search(r"stack is up in ([\d.]+) s", output)
    assert match, output
    return float(match.group(1))


def _up_and_stop(stack: DockerStack, *args: str) -> tuple[str, Container]:
    """One `up` until healthy, then SIGTERM; the output and the backend container."""
    with orchestrator_process(["up", *args], stack.env, stack.project) as orchestrator:
        orchestrator.wait_output(UP_LINE, timeout_s=300)
        container = stack.backend()
        port = stack.env["MOSHI_PORT"]
        answer = http_status(f"http://127.0.0.1:{port}/health")
        assert answer is not None and answer[0] == 200
        frontend = http_status(f"http://127.0.0.1:{stack.env['APP_PORT']}/api/config")
        assert frontend is not None and frontend[0] == 200
        config = json.loads(frontend[1])
        assert config["moshi_ws_url"] == f"ws://127.0.0.1:{port}/api/chat"
        assert CANARY_TOKEN not in frontend[1].decode()
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
        output = orchestrator.output()
    assert CANARY_TOKEN not in output
    assert project_processes(stack.project) == []
    return output, container


def test_persistent_container_is_reused_then_recreated_when_the_configuration_changes(
    stack: DockerStack,
) -> None:
    first_output, first = _up_and_stop(stack)
    assert f"created model cache volume {stack.volume}" in first_output
    assert f"backend container {first.short_id} created" in first_output
    first.reload()
    # Persistent lifetime: Ctrl-C leaves the backend running for the next `up`.
    assert first.status == "running"
    assert first.labels[LABEL_OWNER] == "1" and first.labels[LABEL_SERVICE] == "moshi-backend"
    port = stack.env["MOSHI_PORT"]
    binding = first.attrs["NetworkSettings"]["Ports"][f"{port}/tcp"][0]
    assert binding == {"HostIp": "127.0.0.1", "HostPort": port}
    mounts = {m["Name"]: m["Destination"] for m in first.attrs["Mounts"] if m["Type"] == "volume"}
    # The model cache volume, and the certs directory's own anonymous volume (read-only root).
    assert mounts.pop(stack.volume) == MODEL_CACHE_PATH
    ((first_certs, certs_path),) = mounts.items()
    assert certs_path == "/data/certs"
    # The path the image declares as its model cache, writable by the image's non-root user.
    image = stack.client.images.get(first.attrs["Image"])
    assert MODEL_CACHE_PATH in image.attrs["Config"]["Volumes"]
    probe = first.exec_run(["sh", "-c", f"touch {MODEL_CACHE_PATH}/probe && id -u"])
    assert probe.exit_code == 0 and isinstance(probe.output, bytes)
    assert probe.output.decode().strip() != "0"
    # No capabilities, no new privileges, a read-only root with its scratch directories.
    assert_confined(first, BACKEND_CONFINEMENT)
    injected = _exec_env(first)
    assert injected["HF_TOKEN"] == CANARY_TOKEN
    assert injected["MOSHI_PORT"] == port
    assert injected["MOSHI_ENGINE"] == "auto"
    assert injected["MOSHI_USE_SSL"] == "false" and injected["MOSHI_CPU_OFFLOAD"] == "false"
    assert "MOSHI_HF_REPO" not in injected  # the engine's own repository
    # Telemetry goes to the orchestrator's receiver at the project network's gateway, which
    # answered the backend's probe from inside the container.
    network = first.attrs["NetworkSettings"]["Networks"][f"{stack.project}-net"]
    gateway = stack.client.networks.get(network["NetworkID"]).attrs["IPAM"]["Config"][0]["Gateway"]
    receiver = f"http://{gateway}:{stack.env['PERSONAPLEX_OTLP_PORT']}"
    assert injected["OTEL_EXPORTER_OTLP_ENDPOINT"] == receiver
    assert f"exports traces, metrics and logs to {receiver}" in first_output

    second_output, second = _up_and_stop(stack)
    assert second.id == first.id
    assert f"backend container {first.short_id} reused" in second_output
    assert f"reusing model cache volume {stack.volume}" in second_output
    assert "created model cache volume" not in second_output
    print(f"docker up: cold {_up_seconds(first_output)} s, reuse {_up_seconds(second_output)} s")

    third_output, third = _up_and_stop(stack, "--cpu-offload")
    assert third.id != first.id
    assert f"backend container {third.short_id} recreated" in third_output
    assert _exec_env(third)["MOSHI_CPU_OFFLOAD"] == "true"
    assert third.labels[LABEL_HASH] != first.labels[LABEL_HASH]
    assert [c.id for c in stack.containers()] == [third.id]
    # A replaced container's anonymous volume (its certs directory) went with it.
    (third_certs,) = (m["Name"] for m in third.attrs["Mounts"] if m["Destination"] == certs_path)
    assert first_certs not in _volume_names(stack)

    down = run_orchestrator(["down"], stack.env)
    assert down.returncode == 0, down.stderr
    assert stack.containers() == []
    assert third_certs not in _volume_names(stack)
    # The model cache outlives `down`: re-downloading weights is what it exists to avoid.
    stack.client.volumes.get(stack.volume)


def test_build_command_builds_the_backend_image_only(stack: DockerStack) -> None:
    result = run_orchestrator(["build"], stack.env, timeout_s=600)
    assert result.returncode == 0, result.stdout + result.stderr
    tag = f"{stack.project}-moshi-backend:dev"
    assert f"built {tag}" in result.stdout
    assert stack.client.images.get(tag).labels[LABEL_PROJECT] == stack.project
    assert stack.containers() == []


def test_gpu_requested_without_nvidia_runtime_falls_back_to_the_cpu(stack: DockerStack) -> None:
    if "nvidia" in (stack.client.info().get("Runtimes") or {}):
        pytest.skip("this engine has the NVIDIA runtime: there is no fallback to see")
    output, container = _up_and_stop(stack, "--gpu", "on", "--no-persistent")
    fallback = [line for line in output.splitlines() if "GPU requested" in line]
    assert len(fallback) == 1, output
    assert "could not select device driver" in fallback[0] and "runs on the CPU" in fallback[0]
    # Not persistent: the container went with the orchestrator.
    with pytest.raises(docker.errors.NotFound):
        container.reload()


def test_container_that_exits_at_start_fails_with_its_log_lines(stack: DockerStack) -> None:
    stack.env["MOSHI_LOOPBACK_DELAY_MS"] = "-1"
    result = run_orchestrator(["up"], stack.env, timeout_s=300)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "moshi-backend exited with code 2 before it became healthy" in result.stderr
    assert "invalid MOSHI_LOOPBACK_DELAY_MS" in result.stderr
    assert stack.containers() == []


def test_unavailable_base_image_falls_back_to_a_local_process(stack: DockerStack) -> None:
    # A registry that refuses at once: not present locally, and the pull fails.
    missing = "127.0.0.1:9/personaplex/no-such-base:1"
    stack.env["MOSHI_BASE_IMAGE"] = missing
    with orchestrator_process(["up"], stack.env, stack.project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE)
        lines = [line for line in output.splitlines() if "cannot be pulled" in line]
        assert len(lines) == 1, output
        assert missing in lines[0] and "no registry answers at 127.0.0.1:9" in lines[0]
        assert "--moshi-base-image" in lines[0] and "local process" in lines[0]
        assert "moshi-backend: starting (local process)" in output
        assert stack.containers() == []
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
    assert project_processes(stack.project) == []


def test_prod_runs_the_frontend_as_a_container_wired_to_the_backend(stack: DockerStack) -> None:
    port, app_port = stack.env["MOSHI_PORT"], stack.env["APP_PORT"]
    with orchestrator_process(["up", "--prod"], stack.env, stack.project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE, timeout_s=300)
        assert "frontend: starting (local process)" not in output
        frontend = stack.service("frontend")
        backend = stack.service("moshi-backend")
        network = f"{stack.project}-net"
        for container in (frontend, backend):
            assert network in container.attrs["NetworkSettings"]["Networks"]
        # Browsers get the URL computed as without --prod; the frontend reaches the backend over
        # the project's network (its /health sees it, and the proxy relays a conversation).
        config = json.loads(_ok(f"http://127.0.0.1:{app_port}/api/config"))
        assert config["moshi_ws_url"] == f"ws://127.0.0.1:{port}/api/chat"
        health = json.loads(_ok(f"http://127.0.0.1:{app_port}/health"))
        assert health["backend"]["reachable"] is True, health
        asyncio.run(echo_once(f"ws://127.0.0.1:{app_port}/proxy/moshi"))
        injected = _exec_env(frontend)
        assert injected["APP_RELOAD"] == "false"
        assert injected["MOSHI_BACKEND_URL"] == f"http://{backend.name}:{port}"
        assert CANARY_TOKEN not in "".join(injected.values())
        uid = frontend.exec_run(["id", "-u"]).output
        assert isinstance(uid, bytes) and uid.decode().strip() == "10001"
        assert_confined(frontend, FRONTEND_CONFINEMENT)
        assert_confined(backend, BACKEND_CONFINEMENT)
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
        output = orchestrator.output()
    assert CANARY_TOKEN not in output
    # The frontend container went with `up`; the persistent backend stays for the next one.
    assert [c.labels[LABEL_SERVICE] for c in stack.containers()] == ["moshi-backend"]
    down = run_orchestrator(["down"], stack.env)
    assert down.returncode == 0, down.stderr
    assert f"removed network {network}" in down.stdout
    assert stack.containers() == []


def test_prod_with_ssl_runs_both_containers_on_the_stacks_pinned_pair(stack: DockerStack) -> None:
    port, app_port = stack.env["MOSHI_PORT"], stack.env["APP_PORT"]
    with orchestrator_process(["up", "--prod", "--ssl"], stack.env, stack.project) as orchestrator:
        orchestrator.wait_output(UP_LINE, timeout_s=300)
        certs = Path(stack.env["XDG_STATE_HOME"]) / "personaplex" / stack.project / "certs"
        # Clients trust exactly the stack's certificate: both services serve it.
        pinned = ssl.create_default_context(cafile=str(certs / "cert.pem"))
        assert _ok(f"https://127.0.0.1:{port}/health", pinned)
        # The frontend container reached the backend by its name over TLS, trusting the pair.
        health = json.loads(_ok(f"https://127.0.0.1:{app_port}/health", pinned))
        assert health["backend"]["reachable"] is True, health
        asyncio.run(echo_once(f"wss://127.0.0.1:{app_port}/proxy/moshi", pinned))
        for name, confinement in (
            ("moshi-backend", BACKEND_CONFINEMENT),
            ("frontend", FRONTEND_CONFINEMENT),
        ):
            container = stack.service(name)
            certs_dir = "/data/certs" if name == "moshi-backend" else "/home/app/certs"
            owner = container.exec_run(["stat", "-c", "%u %a", f"{certs_dir}/key.pem"]).output
            assert isinstance(owner, bytes) and owner.decode().split() == ["10001", "600"]
            # Docker's own health check talks TLS to the service, pinned to its certificate.
            _wait_docker_healthy(container)
            # The pair was put into the certs directory before the start, read-only root and all.
            assert_confined(container, confinement)
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143


def _wait_docker_healthy(container: Container) -> None:
    def healthy() -> bool | None:
        container.reload()
        return (
            True if container.attrs["State"].get("Health", {}).get("Status") == "healthy" else None
        )

    wait_for(healthy, what=f"{container.name}'s Docker health check", timeout_s=60)


def _volume_names(stack: DockerStack) -> set[str]:
    return {str(volume.name) for volume in stack.client.volumes.list()}


def _ok(url: str, ssl_context: ssl.SSLContext | None = None) -> bytes:
    answer = http_status(url, ssl_context)
    assert answer is not None and answer[0] == 200, (url, answer)
    return answer[1]
