"""Takes the README's picture of the dashboard: a local `up` (loopback engine) on free ports,
its dashboard in headless Chromium once both resources are healthy, the backend's log shown.

    ./pants --concurrent run src/python/orchestrator/dashboard/screenshot.py -- docs/dashboard.png
"""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from playwright.sync_api import ViewportSize, expect, sync_playwright

from orchestrator import events
from orchestrator.dashboard import testing as dashboard
from orchestrator.testing import UP_LINE, orchestrator_process, stack_env, unique_project
from testsupport.chromium import CHROMIUM_ARGS, find_chromium

_VIEWPORT: ViewportSize = {"width": 1400, "height": 900}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, help="PNG file to write")
    args = parser.parse_args(argv)
    output: Path = args.output.resolve()
    with tempfile.TemporaryDirectory(prefix="dashboard-shot-") as root:
        project = unique_project()
        env = stack_env(
            Path(root),
            project,
            {
                "DOCKER_HOST": f"unix://{root}/no-docker.sock",
                "MOSHI_BACKEND": "local",
                "MOSHI_ENGINE": "loopback",
                "HF_TOKEN": "",
            },
        )
        url = f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}/#logs={events.BACKEND}"
        with orchestrator_process(["up"], env, project) as orchestrator:
            orchestrator.wait_output(UP_LINE, timeout_s=180)
            with sync_playwright() as playwright:
                browser = playwright.chromium.launch(
                    executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
                )
                try:
                    page = browser.new_page(viewport=_VIEWPORT)
                    page.goto(url)
                    dashboard.expect_healthy(page, (events.BACKEND, events.FRONTEND))
                    expect(dashboard.log_lines(page)).not_to_have_count(0)
                    page.wait_for_timeout(3000)  # uptimes past zero, a few more lines
                    output.parent.mkdir(parents=True, exist_ok=True)
                    page.screenshot(path=str(output), full_page=True)
                finally:
                    browser.close()
            orchestrator.signal_and_wait(signal.SIGTERM)
    print(f"wrote {output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
