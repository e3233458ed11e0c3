from __future__ import annotations

import re
from pathlib import Path

import pytest

from orchestrator.conftest import SetVariables
from orchestrator.containers.service_images import (
    BACKEND_IMAGE,
    BACKEND_LOOPBACK_TARGET,
    FRONTEND_IMAGE,
    ImageRecipe,
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


@pytest.mark.parametrize(
    ("recipe", "setting"),
    [(BACKEND_IMAGE, "moshi_base_image"), (FRONTEND_IMAGE, "frontend_base_image")],
)
def test_the_settings_default_base_is_the_dockerfiles_own(
    stack_environment: SetVariables, recipe: ImageRecipe, setting: str
) -> None:
    # `./pants package` builds with the Dockerfile's default, `up` with the setting's: one base.
    dockerfile = Path(recipe.dockerfile).read_text(encoding="utf-8")
    defaults = re.findall(rf"^ARG {recipe.base_image_arg}=(\S+)$", dockerfile, re.MULTILINE)
    assert defaults == [getattr(load_settings({}), setting)]
