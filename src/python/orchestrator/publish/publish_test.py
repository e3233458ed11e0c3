"""`orchestrator publish`, run as a real command; its output read by docker-compose and by the
Kubernetes client's models."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client as k8s

from orchestrator.containers.container_spec import MODEL_CACHE_PATH
from orchestrator.testing import (
    CANARY_TOKEN,
    docker_compose_path,
    publish_into,
    run_orchestrator,
    stack_env,
    unique_project,
)
from testsupport.gate import require

MODEL_LOAD_S = 30 * 60
API_KEY = "key-canary-publish-5e21"


def _all_text(directory: Path) -> str:
    return "\n".join(p.read_text() for p in sorted(directory.rglob("*")) if p.is_file())


class _Response:
    """What ApiClient.deserialize reads: a body of JSON."""

    def __init__(self, document: dict[str, Any]) -> None:
        self.data = json.dumps(document)


def _model(document: dict[str, Any]) -> Any:
    """The manifest as the client's model; anything the model does not know is an error."""
    api = k8s.ApiClient()
    group_version = document["apiVersion"].split("/")[-1]
    model = api.deserialize(_Response(document), f"{group_version.capitalize()}{document['kind']}")
    # Unknown or misplaced fields are dropped by deserialize: the round trip shows them.
    assert api.sanitize_for_serialization(model) == document
    return model


def _manifests(output: Path) -> dict[str, Any]:
    found = {}
    for path in sorted((output / "kubernetes").glob("*.yaml")):
        document = yaml.safe_load(path.read_text())
        if document["kind"] == "Kustomization":
            assert sorted(document["resources"]) == sorted(
                p.name for p in (output / "kubernetes").glob("*.yaml") if p.name != path.name
            )
            continue
        found[f"{document['kind']}/{document['metadata']['name']}"] = _model(document)
    return found


def _probe_seconds(probe: Any) -> int:
    return int(probe.period_seconds * probe.failure_threshold)


# Volume types the "restricted" Pod Security Standard allows (the client's attribute names).
_RESTRICTED_VOLUMES = {
    "config_map",
    "csi",
    "downward_api",
    "empty_dir",
    "ephemeral",
    "persistent_volume_claim",
    "projected",
    "secret",
}


def _assert_restricted(pod: k8s.V1PodSpec, scratch: set[str]) -> None:
    """The "restricted" Pod Security Standard, a read-only root, and emptyDir volumes mounted at
    the scratch directories the service writes."""
    context = pod.security_context
    assert context.run_as_non_root is True and context.run_as_user == 10001
    assert context.seccomp_profile.type == "RuntimeDefault"
    assert not (pod.host_network or pod.host_pid or pod.host_ipc)
    volumes = {}
    for volume in pod.volumes or []:
        kinds = {name for name in k8s.V1Volume.attribute_map if getattr(volume, name)} - {"name"}
        assert kinds <= _RESTRICTED_VOLUMES, kinds
        volumes[volume.name] = volume
    for container in pod.containers:
        security = container.security_context
        assert security.allow_privilege_escalation is False
        assert security.capabilities.drop == ["ALL"] and not security.capabilities.add
        assert not security.privileged and security.run_as_user in (None, 10001)
        assert security.read_only_root_filesystem is True
        assert all(not port.host_port for port in container.ports)
        # A StatefulSet's claims (the model cache) are not pod volumes.
        mounted = {
            m.mount_path
            for m in container.volume_mounts
            if m.name in volumes and volumes[m.name].empty_dir
        }
        assert mounted == scratch


def test_kubernetes_manifests_load_into_the_client_models(tmp_path: Path) -> None:
    output = publish_into(
        tmp_path,
        "--image-tag",
        "1.2.3",
        "--image-prefix",
        "registry.example/pp",
        extra={"MOSHI_API_KEY": API_KEY},
    )
    assert CANARY_TOKEN not in _all_text(output) and API_KEY not in _all_text(output)
    found = _manifests(output)
    assert sorted(found) == [
        "Deployment/frontend",
        "Service/frontend",
        "Service/moshi-backend",
        "Service/moshi-backend-pods",
        "StatefulSet/moshi-backend",
    ]
    backend: k8s.V1StatefulSet = found["StatefulSet/moshi-backend"]
    pod = backend.spec.template.spec
    (container,) = pod.containers
    assert container.image == "registry.example/pp/moshi-backend:1.2.3"
    assert container.resources.limits["nvidia.com/gpu"] == "1"
    for probe in (container.startup_probe, container.readiness_probe, container.liveness_probe):
        assert probe.http_get.path == "/health" and probe.http_get.port == 8998
    assert _probe_seconds(container.startup_probe) >= MODEL_LOAD_S
    assert _probe_seconds(container.liveness_probe) < 120
    # The model cache: a claim per replica, mounted where the image keeps its HF cache.
    (claim,) = backend.spec.volume_claim_templates
    (mount,) = (m for m in container.volume_mounts if m.name == claim.metadata.name)
    assert claim.spec.resources.requests["storage"] == "50Gi"
    assert mount.mount_path == MODEL_CACHE_PATH
    env = {variable.name: variable for variable in container.env}
    assert env["MOSHI_PORT"].value == "8998" and env["MOSHI_HOST"].value == "0.0.0.0"
    # The token is a reference to a secret, never a value.
    assert env["HF_TOKEN"].value is None
    assert env["HF_TOKEN"].value_from.secret_key_ref.key == "HF_TOKEN"
    assert env["MOSHI_API_KEY"].value_from.secret_key_ref.key == "MOSHI_API_KEY"
    assert "MOSHI_ALLOWED_ORIGINS" not in env  # browsers only reach the relay
    # The non-root image can write the claim.
    assert pod.security_context.run_as_non_root and pod.security_context.fs_group == 10001
    _assert_restricted(pod, {"/tmp", "/data/certs"})

    service: k8s.V1Service = found["Service/moshi-backend"]
    assert service.spec.selector.items() <= backend.spec.template.metadata.labels.items()
    assert service.spec.ports[0].port == 8998

    frontend: k8s.V1Deployment = found["Deployment/frontend"]
    (web,) = frontend.spec.template.spec.containers
    frontend_env = {variable.name: variable.value for variable in web.env}
    # Wired to the backend's service by its DNS name, relayed through the frontend.
    assert frontend_env["MOSHI_WS_URL"] == "ws://moshi-backend:8998/api/chat"
    assert frontend_env["MOSHI_PROXY"] == "true"
    assert "MOSHI_WS_URLS" not in frontend_env and "HF_TOKEN" not in frontend_env
    (relay_key,) = (variable for variable in web.env if variable.name == "MOSHI_API_KEY")
    assert relay_key.value is None and relay_key.value_from.secret_key_ref.optional
    assert web.readiness_probe.http_get.path == "/health"
    assert web.readiness_probe.http_get.port == 8010
    _assert_restricted(frontend.spec.template.spec, {"/tmp", "/home/app/certs"})
    front_service: k8s.V1Service = found["Service/frontend"]
    assert front_service.spec.selector.items() <= frontend.spec.template.metadata.labels.items()


def test_replicas_give_the_frontend_every_backend_by_name(tmp_path: Path) -> None:
    found = _manifests(publish_into(tmp_path, "--backend-replicas", "3"))
    backend = found["StatefulSet/moshi-backend"]
    assert backend.spec.replicas == 3
    headless = found["Service/moshi-backend-pods"]
    assert headless.spec.cluster_ip == "None" and backend.spec.service_name == "moshi-backend-pods"
    (web,) = found["Deployment/frontend"].spec.template.spec.containers
    urls = {variable.name: variable.value for variable in web.env}["MOSHI_WS_URLS"].split(",")
    assert urls == [f"ws://moshi-backend-{n}.moshi-backend-pods:8998/api/chat" for n in range(3)]


def test_without_a_gpu_nothing_asks_for_one(tmp_path: Path) -> None:
    output = publish_into(tmp_path, "--gpu", "off")
    text = _all_text(output)
    # Neither the device plugin's resource nor compose's device reservation (`capabilities: [gpu]`).
    assert "nvidia" not in text and "- gpu" not in text


def test_docker_compose_reads_the_compose_file_and_env_template(tmp_path: Path) -> None:
    compose = require("docker-compose", docker_compose_path)
    output = publish_into(tmp_path, "--image-tag", "1.2.3", extra={"MOSHI_API_KEY": API_KEY})
    template = (output / ".env.example").read_text()
    assert "HF_TOKEN=\n" in template and CANARY_TOKEN not in template
    assert "MOSHI_API_KEY=\n" in template and API_KEY not in _all_text(output)
    result = subprocess.run(
        [compose, "--env-file", ".env.example", "-f", "docker-compose.yml", "config"],
        cwd=output,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        # The test's own HF_TOKEN must not be what fills the file in.
        env={"PATH": "/usr/bin:/bin"},
    )
    assert result.returncode == 0, result.stderr
    resolved = yaml.safe_load(result.stdout)
    backend = resolved["services"]["moshi-backend"]
    frontend = resolved["services"]["frontend"]
    assert backend["image"] == "personaplex/moshi-backend:1.2.3"
    assert frontend["image"] == "personaplex/frontend:1.2.3"
    assert backend["environment"]["HF_TOKEN"] == ""
    # Empty in the template: no key; what .env sets reaches both services.
    assert backend["environment"]["MOSHI_API_KEY"] == frontend["environment"]["MOSHI_API_KEY"] == ""
    (device,) = backend["deploy"]["resources"]["reservations"]["devices"]
    assert device["capabilities"] == ["gpu"]
    (volume,) = backend["volumes"]
    # docker-compose 1.29 prints the short form, `docker compose` the long one.
    if isinstance(volume, str):
        volume = dict(zip(("source", "target"), volume.split(":")[:2], strict=True))
    assert volume["source"] == "model-cache" and volume["target"] == MODEL_CACHE_PATH
    assert resolved["volumes"]["model-cache"]["name"] == "hf-model-cache-scenario6"
    assert backend["healthcheck"]["start_period"] in ("30m", "1800s", "30m0s")
    assert frontend["environment"]["MOSHI_WS_URL"] == "ws://moshi-backend:8998/api/chat"
    assert frontend["depends_on"]["moshi-backend"]["condition"] == "service_healthy"
    assert frontend["ports"][0]["published"] in (8010, "8010")
    assert CANARY_TOKEN not in result.stdout
    # Both confined as `up` confines them (compose_up_test runs them so).
    for service, scratch in ((backend, "/data/certs"), (frontend, "/home/app/certs")):
        assert service["read_only"] is True and service["cap_drop"] == ["ALL"]
        assert service["security_opt"] == ["no-new-privileges:true"]
        assert sorted(entry.split(":")[0] for entry in service["tmpfs"]) == sorted(
            ["/tmp", scratch]
        )


@pytest.mark.parametrize("replicas", ["0", "-1"])
def test_replicas_below_one_are_refused(tmp_path: Path, replicas: str) -> None:
    env = stack_env(tmp_path, unique_project())
    result = run_orchestrator(
        ["publish", "--output", str(tmp_path), "--backend-replicas", replicas], env
    )
    assert result.returncode == 2 and "--backend-replicas" in result.stderr
