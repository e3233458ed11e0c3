from __future__ import annotations

import pytest

from orchestrator.conftest import SetVariables
from orchestrator.containers.service_images import (
    BACKEND_IMAGE,
    BACKEND_LOOPBACK_TARGET,
    backend_build,
)
from orchestrator.settings import load_settings


@pytest.mark.parametrize(
    ("engine", "gpu", "target"),
    [
        ("auto", True, BACKEND_IMAGE.pants_target),
        # The server's own `auto` picks the echo without a GPU: torch would only cost minutes.
        ("auto", False, BACKEND_LOOPBACK_TARGET),
        ("loopback", True, BACKEND_LOOPBACK_TARGET),
        ("personaplex", False, BACKEND_IMAGE.pants_target),
        ("moshi", False, BACKEND_IMAGE.pants_target),
    ],
)
def test_the_backend_image_carries_torch_only_when_a_model_engine_can_run(
    stack_environment: SetVariables, engine: str, gpu: bool, target: str
) -> None:
    settings = load_settings({"moshi_engine": engine})
    assert backend_build(settings, gpu).target == target
