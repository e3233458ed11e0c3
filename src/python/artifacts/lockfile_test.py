"""The lockfile pins every distribution: one version each, and every artifact by sha256."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

LOCKFILE = Path("3rdparty/python/default.lock")


def _lock() -> dict[str, Any]:
    # Pants puts its metadata in a `//` comment header above the pex lock's JSON.
    text = "\n".join(
        line for line in LOCKFILE.read_text().splitlines() if not line.startswith("//")
    )
    document: dict[str, Any] = json.loads(text)
    return document


def test_every_locked_artifact_has_a_sha256() -> None:
    (resolve,) = _lock()["locked_resolves"]
    requirements = resolve["locked_requirements"]
    assert len(requirements) > 50  # the whole resolve, not an empty file
    unpinned = [
        f"{r['project_name']} {artifact.get('url')}"
        for r in requirements
        for artifact in r["artifacts"]
        if artifact.get("algorithm") != "sha256" or len(artifact.get("hash", "")) != 64
    ]
    assert unpinned == []


def test_each_project_is_locked_at_exactly_one_version() -> None:
    (resolve,) = _lock()["locked_resolves"]
    names = [r["project_name"] for r in resolve["locked_requirements"]]
    assert sorted(names) == sorted(set(names))
    assert all(r["version"] for r in resolve["locked_requirements"])
