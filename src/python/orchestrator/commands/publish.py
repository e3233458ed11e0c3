"""`publish`: a docker compose file and Kubernetes manifests for deployment."""

from __future__ import annotations

from pathlib import Path

from orchestrator.errors import OrchestratorError
from orchestrator.publish.deployment import deployment
from orchestrator.publish.writer import write
from orchestrator.settings import StackSettings


def publish(
    settings: StackSettings,
    *,
    output: Path,
    image_prefix: str,
    image_tag: str | None,
    backend_replicas: int,
    cache_size: str,
) -> int:
    if backend_replicas < 1:
        raise OrchestratorError("--backend-replicas must be at least 1", exit_code=2)
    target = deployment(
        settings,
        image_prefix=image_prefix,
        image_tag=image_tag,
        backend_replicas=backend_replicas,
        cache_size=cache_size,
    )
    for path in write(target, output):
        print(f"wrote {path}")
    print(f"images: {target.backend_image}, {target.frontend_image}; see {output}/NOTES.md")
    return 0
