"""The dashboard's actions on the backend container: restart, stop and start keep the one
container (its configuration and port), follow its logs across runs, and gate it on health."""

from __future__ import annotations

import json
import signal
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import docker
import docker.errors
import pytest
from docker.models.containers import Container

from orchestrator import events
from orchestrator.dashboard.routes import ACTION_HEADER
from orchestrator.dashboard.testing import stream_text
from orchestrator.testing import (
    UP_LINE,
    Orchestrator,
    orchestrator_process,
    project_filter,
    project_processes,
    remove_project_resources,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status, wait_for

# Where Pants puts the loopback server PEX in this test's sandbox.
SERVER_PEX = "src.python.moshi_backend/server-loopback.pex"


@pytest.fixture
def env(
    docker_client: docker.DockerClient, local_base_image: str, tmp_path: Path
) -> Iterator[dict[str, str]]:
    project = unique_project()
    volume = f"test-hf-cache-{uuid.uuid4().hex[:10]}"
    values = stack_env(
        tmp_path,
        project,
        {
            "MOSHI_BACKEND": "docker",
            "MOSHI_BASE_IMAGE": local_base_image,
            "MOSHI_BACKEND_PEX": SERVER_PEX,
            "MOSHI_ENGINE": "loopback",
            "MOSHI_GPU": "off",
            "HF_CACHE_VOLUME": volume,
        },
    )
    try:
        yield values
    finally:
        remove_project_resources(docker_client, project, volume=volume)


def _post(url: str) -> int:
    request = urllib.request.Request(url, method="POST", headers={ACTION_HEADER: "1"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return int(response.status)


def _backend_view(dashboard: str) -> dict[str, Any]:
    answer = http_status(f"{dashboard}/api/resources")
    assert answer is not None and answer[0] == 200
    rows = json.loads(answer[1])["resources"]
    row: dict[str, Any] = next(r for r in rows if r["name"] == events.BACKEND)
    return row


def _wait_view(
    dashboard: str, orchestrator: Orchestrator, timeout_s: float = 120.0, **wanted: object
) -> dict[str, Any]:
    def probe() -> dict[str, Any] | None:
        row = _backend_view(dashboard)
        return row if all(row[key] == value for key, value in wanted.items()) else None

    return wait_for(
        probe,
        what=f"the backend's row showing {wanted}",
        timeout_s=timeout_s,
        interval_s=0.3,
        context=lambda: orchestrator.output()[-3000:],
    )


def _log_text(dashboard: str) -> str:
    return stream_text(f"{dashboard}/api/logs/{events.BACKEND}")


def _backend_container(client: docker.DockerClient, project: str) -> Container:
    (container,) = client.containers.list(all=True, filters=project_filter(project))
    return container


def test_restart_stop_and_start_of_the_backend_container(
    docker_client: docker.DockerClient, env: dict[str, str]
) -> None:
    project = env["PERSONAPLEX_PROJECT"]
    dashboard = f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}"
    health = f"http://127.0.0.1:{env['MOSHI_PORT']}/health"
    action = f"{dashboard}/api/resources/{events.BACKEND}"
    with orchestrator_process(["up", "--no-persistent"], env, project) as orchestrator:
        orchestrator.wait_output(UP_LINE, timeout_s=300)
        container = _backend_container(docker_client, project)
        row = _wait_view(dashboard, orchestrator, state="healthy", health="healthy")
        assert row["kind"] == "container" and row["image"].startswith(f"{project}-moshi-backend")
        console = _log_text(dashboard)
        assert console.count("engine loopback ready") == 1
        # The image's build printed into the backend's console first, as Aspire shows it.
        assert 0 <= console.find("Step 1/") < console.index("engine loopback ready"), console

        assert _post(f"{action}/restart") == 202
        _wait_view(dashboard, orchestrator, state="healthy", restarts=1, health="healthy")
        # The same container, started again: its port and configuration are unchanged.
        assert _backend_container(docker_client, project).id == container.id
        answer = http_status(health)
        assert answer is not None and answer[0] == 200
        # Its logs are followed into the new run, without the old run's lines twice.
        wait_for(
            lambda: _log_text(dashboard).count("engine loopback ready") == 2 or None,
            what="the restarted backend's lines",
            timeout_s=30,
        )

        assert _post(f"{action}/stop") == 202
        row = _wait_view(dashboard, orchestrator, state="stopped")
        assert row["actions"] == ["start"] and row["uptime_s"] is None
        container.reload()
        assert container.status == "exited"
        assert orchestrator.process.poll() is None, "a stop asked for is no failure"

        assert _post(f"{action}/start") == 202
        _wait_view(dashboard, orchestrator, state="healthy", health="healthy")
        assert _backend_container(docker_client, project).id == container.id

        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
    assert project_processes(project) == []
    # Not persistent: the container went with `up`.
    with pytest.raises(docker.errors.NotFound):
        container.reload()
