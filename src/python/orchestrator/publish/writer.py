"""`publish`: writes the compose file, its .env template, the Kubernetes manifests, the
bare-machine Procfile with its .env template, and NOTES.md.

YAML comes from PyYAML's safe dumper, never from string templates: quoting is its business.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from orchestrator.publish import bare_machine
from orchestrator.publish.compose import compose_file, env_template
from orchestrator.publish.deployment import Deployment
from orchestrator.publish.kubernetes import manifests
from orchestrator.publish.notes import notes

COMPOSE_FILE = "docker-compose.yml"
ENV_TEMPLATE = ".env.example"
KUBERNETES_DIR = "kubernetes"
_HEADER = "# Written by `orchestrator publish`: publish again instead of editing.\n"


def to_yaml(document: dict[str, Any]) -> str:
    return _HEADER + yaml.safe_dump(document, sort_keys=False, default_flow_style=False)


def write(deployment: Deployment, output: Path) -> list[Path]:
    """The files written, in order; the directory is made if needed."""
    files: dict[Path, str] = {
        output / COMPOSE_FILE: to_yaml(compose_file(deployment)),
        output / ENV_TEMPLATE: env_template(deployment),
        output / "NOTES.md": notes(deployment),
        output / bare_machine.DIRECTORY / bare_machine.PROCFILE: bare_machine.procfile(),
        output / bare_machine.DIRECTORY / ENV_TEMPLATE: bare_machine.env_template(deployment),
    }
    kubernetes = manifests(deployment)
    for name, manifest in kubernetes.items():
        files[output / KUBERNETES_DIR / name] = to_yaml(manifest)
    kustomization = {
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": list(kubernetes),
    }
    files[output / KUBERNETES_DIR / "kustomization.yaml"] = to_yaml(kustomization)
    for path, text in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return list(files)
