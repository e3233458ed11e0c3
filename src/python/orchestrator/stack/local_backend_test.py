from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.conftest import SetVariables
from orchestrator.events import Level
from orchestrator.settings import EngineChoice, StackSettings, load_settings
from orchestrator.stack.local_backend import LocalBackendChoice, choose_local_backend, pex_root

H200 = ["GPU 0: NVIDIA H200 (UUID: GPU-1)"]


@pytest.fixture(autouse=True)
def _isolated(stack_environment: SetVariables) -> None:
    """No variable of the caller's shell reaches these settings."""


def _choice(gpus: list[str], **options: object) -> LocalBackendChoice:
    settings: StackSettings = load_settings(options)
    return choose_local_backend(settings, gpus)


def _said(choice: LocalBackendChoice) -> str:
    return "\n".join(text for text, _ in choice.notices)


def test_auto_with_an_nvidia_gpu_runs_personaplex_from_the_server_pex() -> None:
    choice = _choice(H200)
    assert choice.engine is EngineChoice.PERSONAPLEX and choice.from_pex
    assert "NVIDIA GPU found (GPU 0: NVIDIA H200" in _said(choice)
    assert "the backend runs PERSONAPLEX from the server PEX" in _said(choice)


def test_auto_without_a_gpu_runs_loopback_in_place_and_says_why() -> None:
    choice = _choice([])
    assert choice.engine is EngineChoice.LOOPBACK and not choice.from_pex
    assert "MOSHI_ENGINE=auto with no NVIDIA GPU here: the LOOPBACK" in _said(choice)
    assert "--engine personaplex runs the model" in _said(choice)


def test_auto_with_gpu_off_runs_loopback_whatever_the_machine_has() -> None:
    # start_local_backend does not even look for GPUs then: it passes none.
    choice = _choice([], moshi_gpu="off")
    assert choice.engine is EngineChoice.LOOPBACK and not choice.from_pex
    assert "MOSHI_ENGINE=auto with MOSHI_GPU=off" in _said(choice)


@pytest.mark.parametrize("engine", ["personaplex", "moshi"])
def test_a_model_engine_always_runs_from_the_server_pex(engine: str) -> None:
    choice = _choice([], moshi_engine=engine, moshi_gpu="off")
    assert choice.engine.value == engine and choice.from_pex
    assert f"runs {engine.upper()} on the CPU (MOSHI_GPU=off) from the server PEX" in _said(choice)


def test_a_given_pex_runs_even_the_loopback_engine() -> None:
    choice = _choice([], moshi_engine="loopback", backend_pex=Path("server.pex"))
    assert choice.engine is EngineChoice.LOOPBACK and choice.from_pex
    plain = _choice([], moshi_engine="loopback")
    assert not plain.from_pex and plain.notices == ()


def test_gpu_on_without_a_gpu_warns_and_runs_on_the_cpu() -> None:
    choice = _choice([], moshi_gpu="on", moshi_engine="personaplex")
    assert choice.notices[0] == (
        "MOSHI_GPU=on but no NVIDIA GPU found here; the backend runs on the CPU",
        Level.WARNING,
    )
    assert choice.from_pex
    assert _choice(H200, moshi_gpu="on").notices[0][1] is Level.INFO


def test_the_pex_root_is_in_the_users_cache() -> None:
    assert pex_root({"XDG_CACHE_HOME": "/c", "HOME": "/h"}) == Path("/c/personaplex/pex")
    assert pex_root({"HOME": "/h"}) == Path("/h/.cache/personaplex/pex")
