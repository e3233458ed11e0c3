"""pytest fixtures for integration tests; src/python/conftest.py makes them available everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import docker
import pytest
from playwright.sync_api import Browser, sync_playwright

from testsupport.base_image import ensure_local_base_image
from testsupport.chromium import CHROMIUM_ARGS, find_chromium, launch_voice_browser
from testsupport.docker_engine import connect
from testsupport.gate import require
from testsupport.speech import make_speech_wav


@pytest.fixture(scope="session")
def docker_client() -> Iterator[docker.DockerClient]:
    client = require("Docker engine", connect)
    yield client
    client.close()


@pytest.fixture(scope="session")
def local_base_image(docker_client: docker.DockerClient) -> str:
    return require("local base image", lambda: ensure_local_base_image(docker_client))


@pytest.fixture(scope="session")
def chromium_executable() -> str:
    return require("Chromium", find_chromium)


@pytest.fixture(scope="session")
def browser(chromium_executable: str) -> Iterator[Browser]:
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=chromium_executable, args=CHROMIUM_ARGS, headless=True
        )
        yield launched
        launched.close()


@pytest.fixture(scope="session")
def voice_browser(
    chromium_executable: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Browser]:
    """Chromium whose microphone plays synthetic speech (the shared `browser` has none)."""
    directory = tmp_path_factory.mktemp("speech")
    wav = require("synthetic speech", lambda: make_speech_wav(directory))
    with sync_playwright() as playwright:
        launched = launch_voice_browser(playwright, chromium_executable, wav)
        yield launched
        launched.close()
