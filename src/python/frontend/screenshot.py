"""Takes the README's picture of the UI (docs/ui-live.png): backend (loopback engine) and frontend
as processes, Chromium speaking a synthetic voice, the conversation live.

    ./pants run src/python/frontend/screenshot.py -- docs/ui-live.png [WIDTHxHEIGHT]
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

from playwright.sync_api import ViewportSize, sync_playwright

from frontend.testing_browser import (
    backend_process,
    frontend_process,
    live_screenshot,
    open_voice_page,
)
from testsupport.chromium import find_chromium, launch_voice_browser
from testsupport.speech import make_speech_wav


def _log(line: str) -> None:
    print(line, file=sys.stderr)


def save_live_screenshot(path: Path, viewport: ViewportSize | None = None) -> None:
    """Start backend, frontend and Chromium, hold a conversation, and save a screenshot."""
    executable = find_chromium()
    with tempfile.TemporaryDirectory(prefix="ui-screenshot-") as work:
        wav = make_speech_wav(Path(work))
        with backend_process() as backend, frontend_process(backend.chat_url) as frontend:
            _log(f"backend {backend.base_url}, frontend {frontend.url}")
            with sync_playwright() as playwright:
                browser = launch_voice_browser(playwright, executable, wav)
                try:
                    services = [backend.process, frontend.process]
                    with open_voice_page(browser, frontend.url, services, viewport) as voice:
                        voice.connect()
                        _log("live; waiting for the loopback's text and audio")
                        live_screenshot(voice, path)
                finally:
                    browser.close()
    _log(f"saved {path}")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) not in (1, 2):
        print("usage: python -m frontend.screenshot OUTPUT.png [WIDTHxHEIGHT]", file=sys.stderr)
        return 2
    viewport: ViewportSize | None = None
    if len(args) == 2:
        width, _, height = args[1].partition("x")
        viewport = {"width": int(width), "height": int(height)}
    save_live_screenshot(Path(args[0]).resolve(), viewport=viewport)
    return 0


if __name__ == "__main__":
    sys.exit(main())
