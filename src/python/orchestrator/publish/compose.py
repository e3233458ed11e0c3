"""The docker compose file and its .env template.

Browsers talk to the frontend only: it relays conversations to the backend over the compose
network (MOSHI_PROXY), so one published port serves everything and no TLS is needed between.
"""

from __future__ import annotations

from typing import Any

from orchestrator.containers.confinement import BACKEND_CONFINEMENT, FRONTEND_CONFINEMENT
from orchestrator.publish.deployment import BACKEND, FRONTEND, MODEL_LOAD_GRACE_S, Deployment


def _defaults(deployment: Deployment) -> dict[str, str]:
    """Values a user may set in .env; the compose file falls back to what publish resolved."""
    return {
        "MOSHI_IMAGE": deployment.backend_image,
        "FRONTEND_IMAGE": deployment.frontend_image,
        "APP_PUBLISH_PORT": str(deployment.app_port),
        "HF_CACHE_VOLUME": deployment.cache_volume,
    }


def compose_file(deployment: Deployment) -> dict[str, Any]:
    values = {name: f"${{{name}:-{value}}}" for name, value in _defaults(deployment).items()}
    backend: dict[str, Any] = {
        "image": values["MOSHI_IMAGE"],
        "environment": {
            **deployment.backend_env,
            "HF_TOKEN": "${HF_TOKEN:-}",
            "MOSHI_API_KEY": "${MOSHI_API_KEY:-}",
        },
        "volumes": [f"model-cache:{deployment.cache_path}"],
        # The image's own test, given time for a first download and load of the weights.
        "healthcheck": {
            "interval": "10s",
            "timeout": "5s",
            "retries": 3,
            "start_period": f"{MODEL_LOAD_GRACE_S}s",
        },
        "restart": "unless-stopped",
        # No capabilities, no new privileges, a read-only root; what it writes on tmpfs.
        **BACKEND_CONFINEMENT.compose_options(),
    }
    if deployment.gpu:
        backend["deploy"] = {
            "resources": {
                "reservations": {
                    "devices": [{"driver": "nvidia", "count": "all", "capabilities": ["gpu"]}]
                }
            }
        }
    frontend = {
        "image": values["FRONTEND_IMAGE"],
        "environment": {
            "APP_HOST": "0.0.0.0",
            "APP_PORT": str(deployment.app_port),
            "MOSHI_WS_URL": deployment.backend_ws_url,
            "MOSHI_PROXY": "true",
            # The relay sends it to the backend; empty: no key.
            "MOSHI_API_KEY": "${MOSHI_API_KEY:-}",
        },
        "ports": [f"{values['APP_PUBLISH_PORT']}:{deployment.app_port}"],
        "depends_on": {BACKEND: {"condition": "service_healthy"}},
        "restart": "unless-stopped",
        **FRONTEND_CONFINEMENT.compose_options(),
    }
    # No `version`: the Compose Specification, which both docker-compose 1.27+ and
    # `docker compose` read (GPU reservations exist only there).
    return {
        "services": {BACKEND: backend, FRONTEND: frontend},
        # Named like `up`'s volume: the weights it downloaded are reused.
        "volumes": {"model-cache": {"name": values["HF_CACHE_VOLUME"]}},
    }


def env_template(deployment: Deployment) -> str:
    lines = [
        "# Copy to .env beside docker-compose.yml and fill in; never commit the filled-in copy.",
        "# The model hub token, for gated weights (PersonaPlex). Empty: public models only.",
        "HF_TOKEN=",
        "# A key the backend requires of every conversation; the frontend's relay sends it, so",
        "# only the frontend can reach the model. Empty: no key.",
        "MOSHI_API_KEY=",
        "",
        "# Defaults that `orchestrator publish` resolved; change them here instead of the file.",
    ]
    lines += [f"{name}={value}" for name, value in _defaults(deployment).items()]
    return "\n".join(lines) + "\n"
