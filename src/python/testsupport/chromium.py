"""Finding the system Chromium that browser tests drive (Playwright cannot download one here)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from playwright.sync_api import Browser, Playwright

from testsupport.environment import TestEnvironment, test_environment
from testsupport.gate import Unavailable

_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")

# Flags for a headless browser on a machine without a sound card, GPU or internet.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--use-fake-ui-for-media-stream",
    "--use-fake-device-for-media-stream",
    "--autoplay-policy=no-user-gesture-required",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def find_chromium(env: TestEnvironment | None = None) -> str:
    """Path of a Chromium that starts and prints its version; Unavailable otherwise."""
    env = env or test_environment()
    candidates = [env.chromium_path] if env.chromium_path else [shutil.which(n) for n in _NAMES]
    for path in filter(None, candidates):
        try:
            result = subprocess.run(
                [path, "--headless", "--no-sandbox", "--version"],
                capture_output=True,
                text=True,
                timeout=30,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise Unavailable(f"{path} does not start ({error})") from error
        if result.returncode == 0:
            return path
        raise Unavailable(f"{path} --version exited {result.returncode}: {result.stderr.strip()}")
    looked_for = env.chromium_path or ", ".join(_NAMES)
    raise Unavailable(f"no Chromium executable found (looked for {looked_for}; set CHROMIUM_PATH)")


def launch_voice_browser(playwright: Playwright, executable: str, speech_wav: Path) -> Browser:
    """Headless Chromium whose microphone plays speech_wav in a loop."""
    return playwright.chromium.launch(
        executable_path=executable,
        args=[*CHROMIUM_ARGS, f"--use-file-for-fake-audio-capture={speech_wav}"],
        headless=True,
    )
