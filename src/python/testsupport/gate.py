"""Run an integration test only when its real dependency answers; under CI, insist on it."""

from __future__ import annotations

from collections.abc import Callable
from typing import NoReturn, TypeVar

import pytest

from testsupport.environment import TestEnvironment, test_environment

T = TypeVar("T")


class Unavailable(Exception):
    """A real dependency of a test (Docker engine, browser, ...) cannot be used here."""


def unavailable(what: str, reason: str, env: TestEnvironment | None = None) -> NoReturn:
    env = env or test_environment()
    message = f"{what} is not available: {reason}"
    if env.ci:
        # A silently skipped integration test under CI would report green for untested code.
        pytest.fail(f"{message} (CI=true: .ci/run must provide it)", pytrace=False)
    pytest.skip(message)


def require(what: str, probe: Callable[[], T], env: TestEnvironment | None = None) -> T:
    """Return what `probe` gives, or skip (fail under CI) when it raises Unavailable."""
    try:
        return probe()
    except Unavailable as error:
        unavailable(what, str(error), env)
