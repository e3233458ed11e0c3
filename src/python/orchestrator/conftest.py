"""Fixtures of the orchestrator's tests."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from orchestrator.settings import StackSettings, env_name

SetVariables = Callable[..., None]


@pytest.fixture
def stack_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> SetVariables:
    """The stack's variables as the test sets them: none of the caller's shell, no stored
    token (the secrets file lives under tmp_path); returns a setter of variables."""
    for field in StackSettings.model_fields:
        monkeypatch.delenv(env_name(field), raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))

    def set_variables(**variables: str) -> None:
        for name, value in variables.items():
            monkeypatch.setenv(name, value)

    return set_variables
