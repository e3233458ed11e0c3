# Shared fixtures for every test under src/python (Pants adds this file to each test's sandbox).
from testsupport.fixtures import (
    browser,
    chromium_executable,
    docker_client,
    local_base_image,
    voice_browser,
)

__all__ = [
    "browser",
    "chromium_executable",
    "docker_client",
    "local_base_image",
    "voice_browser",
]
