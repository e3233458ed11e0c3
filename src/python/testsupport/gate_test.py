from __future__ import annotations

import pytest

from testsupport.chromium import find_chromium
from testsupport.docker_engine import connect
from testsupport.environment import TestEnvironment
from testsupport.gate import Unavailable, require

_CI = TestEnvironment(ci=True)
_LOCAL = TestEnvironment(ci=False)


def _missing() -> str:
    raise Unavailable("nothing listens")


def test_missing_dependency_fails_under_ci() -> None:
    with pytest.raises(pytest.fail.Exception, match="nothing listens"):
        require("thing", _missing, _CI)


def test_missing_dependency_skips_outside_ci() -> None:
    with pytest.raises(pytest.skip.Exception, match="nothing listens"):
        require("thing", _missing, _LOCAL)


def test_available_dependency_is_returned() -> None:
    assert require("thing", lambda: 42, _CI) == 42


def test_unreachable_docker_engine_is_unavailable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: pytest.TempPathFactory
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-such.sock")
    with pytest.raises(Unavailable, match="no Docker engine answers"):
        connect(timeout_s=2)


def test_missing_chromium_is_unavailable(tmp_path: pytest.TempPathFactory) -> None:
    env = TestEnvironment(chromium_path=f"{tmp_path}/no-chromium")
    with pytest.raises(Unavailable, match="does not start"):
        find_chromium(env)
