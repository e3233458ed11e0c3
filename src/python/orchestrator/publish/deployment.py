"""What a deployment is made of, resolved once from the stack's settings: images, ports, the
backend's environment, GPUs and replicas. The compose and Kubernetes writers only lay it out."""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path

from orchestrator.containers.container_spec import MODEL_CACHE_PATH
from orchestrator.environments import backend_variables
from orchestrator.settings import GpuMode, StackSettings

BACKEND = "moshi-backend"
FRONTEND = "frontend"
# Repositories of the images `./pants package ::` builds (docker_image targets' `repository`).
BACKEND_REPOSITORY = "moshi-backend"
FRONTEND_REPOSITORY = "frontend"
DEFAULT_IMAGE_PREFIX = "personaplex"
SECRET_NAME = "personaplex-hf-token"
# Loading 14 GB of weights (downloading them first) takes long; the health check waits this long.
MODEL_LOAD_GRACE_S = 30 * 60


@dataclass(frozen=True)
class Deployment:
    project: str
    backend_image: str
    frontend_image: str
    moshi_port: int
    app_port: int
    # The backend's variables without any secret: HF_TOKEN comes from a secret or .env.
    backend_env: dict[str, str]
    gpu: bool
    backend_replicas: int
    cache_volume: str
    cache_size: str
    cache_path: str = MODEL_CACHE_PATH

    @property
    def backend_ws_url(self) -> str:
        return f"ws://{BACKEND}:{self.moshi_port}/api/chat"


def image_tag_from_pants(repo_root: Path) -> str | None:
    """APP_VERSION from pants.toml's [docker].build_args: the tag `./pants package` gives."""
    try:
        document = tomllib.loads((repo_root / "pants.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    arguments = document.get("docker", {}).get("build_args", [])
    for argument in arguments if isinstance(arguments, list) else []:
        name, _, value = str(argument).partition("=")
        if name == "APP_VERSION" and value:
            return value
    return None


def deployment(
    settings: StackSettings,
    *,
    image_prefix: str = DEFAULT_IMAGE_PREFIX,
    image_tag: str | None = None,
    backend_replicas: int = 1,
    cache_size: str = "50Gi",
) -> Deployment:
    tag = image_tag or image_tag_from_pants(settings.repo_root) or "latest"
    prefix = image_prefix.rstrip("/")
    # No secret is written into the files: HF_TOKEN and MOSHI_API_KEY come from .env or a
    # Kubernetes secret. Browsers reach the backend only through the frontend's relay, so the
    # backend's origin list (for pages that connect to it directly) has no use there.
    secretless = settings.model_copy(update={"hf_token": None, "moshi_api_key": None})
    env = backend_variables(secretless, {})
    env.pop("MOSHI_ALLOWED_ORIGINS", None)
    # Inside a container the backend listens on every interface; TLS belongs to the ingress.
    env.update({"MOSHI_HOST": "0.0.0.0", "MOSHI_USE_SSL": "false"})
    return Deployment(
        project=settings.project,
        backend_image=f"{prefix}/{BACKEND_REPOSITORY}:{tag}",
        frontend_image=f"{prefix}/{FRONTEND_REPOSITORY}:{tag}",
        moshi_port=settings.moshi_port,
        app_port=settings.app_port,
        backend_env=dict(sorted(env.items())),
        gpu=settings.moshi_gpu is not GpuMode.OFF,
        backend_replicas=backend_replicas,
        cache_volume=settings.hf_cache_volume,
        cache_size=cache_size,
    )
