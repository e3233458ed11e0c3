"""Kubernetes manifests for both services, as plain dicts in the API's own field names.

The backend is a StatefulSet: every replica gets its own model cache claim (the weights are
downloaded once per replica and survive restarts) and a stable DNS name, which the frontend
uses to find a free backend when there are several (NOTES.md, "Scaling out").
"""

from __future__ import annotations

from typing import Any

from orchestrator.containers.confinement import (
    BACKEND_CONFINEMENT,
    FRONTEND_CONFINEMENT,
    kubernetes_container_security,
    kubernetes_pod_security,
)
from orchestrator.publish.deployment import (
    BACKEND,
    FRONTEND,
    MODEL_LOAD_GRACE_S,
    SECRET_NAME,
    Deployment,
)

Manifest = dict[str, Any]
# The headless service that gives each backend replica its DNS name.
BACKEND_PODS = f"{BACKEND}-pods"
CACHE_CLAIM = "model-cache"
_STARTUP_PERIOD_S = 10


def _labels(deployment: Deployment, name: str) -> dict[str, str]:
    return {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": deployment.project}


def _metadata(deployment: Deployment, name: str) -> dict[str, Any]:
    return {"name": name, "labels": _labels(deployment, name)}


def _http_probe(port: int, period_s: int, failures: int) -> dict[str, Any]:
    return {
        "httpGet": {"path": "/health", "port": port},
        "periodSeconds": period_s,
        "timeoutSeconds": 5,
        "failureThreshold": failures,
    }


def _env(variables: dict[str, str]) -> list[dict[str, Any]]:
    return [{"name": name, "value": value} for name, value in variables.items()]


def backend_chat_urls(deployment: Deployment) -> list[str]:
    """Each replica's own /api/chat, by its stable name."""
    return [
        f"ws://{BACKEND}-{index}.{BACKEND_PODS}:{deployment.moshi_port}/api/chat"
        for index in range(deployment.backend_replicas)
    ]


def api_key_from_secret() -> dict[str, Any]:
    """MOSHI_API_KEY for both services from the same optional secret as HF_TOKEN (NOTES.md)."""
    return {
        "name": "MOSHI_API_KEY",
        "valueFrom": {
            "secretKeyRef": {"name": SECRET_NAME, "key": "MOSHI_API_KEY", "optional": True}
        },
    }


def backend_statefulset(deployment: Deployment) -> Manifest:
    port = deployment.moshi_port
    token = {
        "name": "HF_TOKEN",
        # Optional: public models need none; `kubectl create secret` adds it (NOTES.md).
        "valueFrom": {"secretKeyRef": {"name": SECRET_NAME, "key": "HF_TOKEN", "optional": True}},
    }
    resources: dict[str, Any] = {
        "requests": {"cpu": "2", "memory": "16Gi"},
        "limits": {"memory": "32Gi"},
    }
    # The "restricted" Pod Security Standard; the root file system read-only, what the service
    # writes on emptyDir volumes and its model cache claim.
    pod: dict[str, Any] = {
        "securityContext": kubernetes_pod_security(),
        "volumes": BACKEND_CONFINEMENT.kubernetes_volumes(),
    }
    if deployment.gpu:
        # Extended resources are given in limits (a request, if any, must equal the limit).
        resources["requests"]["nvidia.com/gpu"] = "1"
        resources["limits"]["nvidia.com/gpu"] = "1"
        pod["tolerations"] = [
            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
        ]
    container = {
        "name": BACKEND,
        "image": deployment.backend_image,
        "ports": [{"name": "http", "containerPort": port}],
        "env": [*_env(deployment.backend_env), token, api_key_from_secret()],
        "resources": resources,
        "volumeMounts": [
            {"name": CACHE_CLAIM, "mountPath": deployment.cache_path},
            *BACKEND_CONFINEMENT.kubernetes_mounts(),
        ],
        # /health answers 503 until the model is loaded: the startup probe allows for a first
        # download; after it, readiness takes a replica out of the service, liveness restarts one
        # that has stopped answering or reports an error.
        "startupProbe": _http_probe(
            port, _STARTUP_PERIOD_S, MODEL_LOAD_GRACE_S // _STARTUP_PERIOD_S
        ),
        "readinessProbe": _http_probe(port, 5, 3),
        "livenessProbe": _http_probe(port, 10, 6),
        "securityContext": kubernetes_container_security(),
    }
    selector = {"app.kubernetes.io/name": BACKEND}
    return {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(deployment, BACKEND),
        "spec": {
            "serviceName": BACKEND_PODS,
            "replicas": deployment.backend_replicas,
            # Replicas load their models independently: no need to wait for one another.
            "podManagementPolicy": "Parallel",
            "selector": {"matchLabels": selector},
            "template": {
                "metadata": {"labels": _labels(deployment, BACKEND)},
                "spec": {**pod, "containers": [container]},
            },
            "volumeClaimTemplates": [
                {
                    "metadata": {"name": CACHE_CLAIM, "labels": _labels(deployment, BACKEND)},
                    "spec": {
                        "accessModes": ["ReadWriteOnce"],
                        "resources": {"requests": {"storage": deployment.cache_size}},
                    },
                }
            ],
        },
    }


def _service(deployment: Deployment, name: str, app: str, port: int, headless: bool) -> Manifest:
    spec: dict[str, Any] = {
        "selector": {"app.kubernetes.io/name": app},
        "ports": [{"name": "http", "port": port, "targetPort": port}],
    }
    if headless:
        spec["clusterIP"] = "None"
        # Names resolve while a replica is still loading, so the frontend can say it is.
        spec["publishNotReadyAddresses"] = True
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": _metadata(deployment, name),
        "spec": spec,
    }


def frontend_deployment(deployment: Deployment) -> Manifest:
    port = deployment.app_port
    env = {
        "APP_HOST": "0.0.0.0",
        "APP_PORT": str(port),
        # Browsers reach only the frontend, which relays each conversation to a backend.
        "MOSHI_WS_URL": deployment.backend_ws_url,
        "MOSHI_PROXY": "true",
    }
    if deployment.backend_replicas > 1:
        env["MOSHI_WS_URLS"] = ",".join(backend_chat_urls(deployment))
    container = {
        "name": FRONTEND,
        "image": deployment.frontend_image,
        "ports": [{"name": "http", "containerPort": port}],
        "env": [*_env(env), api_key_from_secret()],
        "resources": {"requests": {"cpu": "250m", "memory": "256Mi"}, "limits": {"memory": "1Gi"}},
        "readinessProbe": _http_probe(port, 5, 3),
        "livenessProbe": _http_probe(port, 10, 6),
        "securityContext": kubernetes_container_security(),
        "volumeMounts": FRONTEND_CONFINEMENT.kubernetes_mounts(),
    }
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(deployment, FRONTEND),
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app.kubernetes.io/name": FRONTEND}},
            "template": {
                "metadata": {"labels": _labels(deployment, FRONTEND)},
                "spec": {
                    "securityContext": kubernetes_pod_security(),
                    "volumes": FRONTEND_CONFINEMENT.kubernetes_volumes(),
                    "containers": [container],
                },
            },
        },
    }


def manifests(deployment: Deployment) -> dict[str, Manifest]:
    """File name -> manifest."""
    return {
        f"{BACKEND}-statefulset.yaml": backend_statefulset(deployment),
        f"{BACKEND}-service.yaml": _service(
            deployment, BACKEND, BACKEND, deployment.moshi_port, headless=False
        ),
        f"{BACKEND_PODS}-service.yaml": _service(
            deployment, BACKEND_PODS, BACKEND, deployment.moshi_port, headless=True
        ),
        f"{FRONTEND}-deployment.yaml": frontend_deployment(deployment),
        f"{FRONTEND}-service.yaml": _service(
            deployment, FRONTEND, FRONTEND, deployment.app_port, headless=False
        ),
    }
