"""What the tests read from their environment, in one typed object."""

from __future__ import annotations

from functools import lru_cache

from pydantic_settings import BaseSettings, SettingsConfigDict


class TestEnvironment(BaseSettings):
    __test__ = False  # not a pytest test class

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    # Set by CI (and by .ci/run): integration tests must then run, never skip.
    ci: bool = False
    chromium_path: str | None = None
    # Unset: the mirror this machine's apt uses (testsupport.apt_sources).
    debian_mirror: str | None = None


@lru_cache(maxsize=1)
def test_environment() -> TestEnvironment:
    return TestEnvironment()
