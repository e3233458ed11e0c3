"""The labels by which the orchestrator knows what it made: its containers, images, volumes and
networks, per project, so that leftovers can be found and swept later."""

from __future__ import annotations

from collections.abc import Mapping

LABEL_OWNER = "personaplex.orchestrator"
LABEL_PROJECT = "personaplex.project"
LABEL_SERVICE = "personaplex.service"
LABEL_SESSION = "personaplex.session"
LABEL_HASH = "personaplex.config-hash"
LABEL_PERSISTENT = "personaplex.persistent"


def owner_labels(project: str) -> dict[str, str]:
    return {LABEL_OWNER: "1", LABEL_PROJECT: project}


def label_filter(labels: Mapping[str, str]) -> list[str]:
    """The labels as the Docker API's `label` filter wants them."""
    return [f"{key}={value}" for key, value in labels.items()]
