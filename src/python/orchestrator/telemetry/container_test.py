"""A real container on a project network reaches the receiver at the network's gateway, the
way `up` points the backend container at it."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import docker
import docker.errors

from orchestrator.containers.engine import DockerEngine
from orchestrator.hub import EventHub
from orchestrator.telemetry.queries import TraceFilter
from orchestrator.telemetry.session import Telemetry
from orchestrator.telemetry.testing import spans_body
from testsupport.docker_engine import TEST_LABEL
from testsupport.processes import free_port

# What an exporter in the container does: POST a protobuf body to $OTEL_EXPORTER_OTLP_ENDPOINT.
_POST = """
import os, urllib.request
request = urllib.request.Request(
    os.environ["OTEL_EXPORTER_OTLP_ENDPOINT"] + "/v1/traces",
    data=bytes.fromhex(os.environ["BODY"]),
    headers={"Content-Type": "application/x-protobuf"},
)
with urllib.request.urlopen(request, timeout=20) as response:
    print("status", response.status)
"""


async def test_a_container_on_the_project_network_reaches_the_receiver(
    docker_client: docker.DockerClient, local_base_image: str, tmp_path: Path
) -> None:
    project = f"telemetry-test-{uuid.uuid4().hex[:8]}"
    engine = DockerEngine(docker_client, EventHub(), project)
    telemetry = await Telemetry.start(tmp_path, {}, enabled=True, port=free_port())
    container = None
    try:
        gateway = await engine.ensure_network(f"{project}-net")
        assert gateway is not None
        endpoint = await telemetry.for_containers(gateway)
        assert endpoint is not None and endpoint.startswith(f"http://{gateway}:")
        # A second container of the network is given the same address.
        assert await telemetry.for_containers(gateway) == endpoint
        container = await asyncio.to_thread(
            docker_client.containers.run,
            local_base_image,
            ["python3", "-c", _POST],
            environment={
                "OTEL_EXPORTER_OTLP_ENDPOINT": endpoint,
                "BODY": spans_body(3, "in-a-container").hex(),
            },
            network=f"{project}-net",
            labels={TEST_LABEL: "1"},
            detach=True,
        )
        # Off the loop: the receiver answers the container on this loop meanwhile.
        result = await asyncio.to_thread(container.wait, timeout=60)
        logs = (await asyncio.to_thread(container.logs)).decode(errors="replace")
        assert result["StatusCode"] == 0, logs
        assert "status 200" in logs
        [trace] = telemetry.store.traces(None, TraceFilter(resource="in-a-container"))
        assert trace["spans"] == 3
        assert telemetry.status()["listening"] == [
            f"127.0.0.1:{telemetry.receiver.port if telemetry.receiver else 0}",
            endpoint.removeprefix("http://"),
        ]
    finally:
        if container is not None:
            await asyncio.to_thread(container.remove, force=True)
        await telemetry.stop()
        await engine.remove_networks()
