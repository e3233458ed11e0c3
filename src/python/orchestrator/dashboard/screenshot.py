"""Takes the README's pictures of the dashboard in headless Chromium.

    ./pants --concurrent run src/python/orchestrator/dashboard/screenshot.py -- docs/dashboard.png
        a local `up` (loopback engine) on free ports, once both resources are healthy, the
        backend's console shown; with --telemetry docs/ also the telemetry views after a
        conversation through the frontend's relay (the services export to `up`'s receiver)
    ./pants run src/python/orchestrator/dashboard/screenshot.py -- --sample-telemetry docs/
        no `up`: the dashboard alone, its receiver fed sample conversations by the OpenTelemetry
        SDK's exporters; only the telemetry views

The telemetry views are written as dashboard-traces.png, dashboard-waterfall.png,
dashboard-metrics.png and dashboard-logs.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from playwright.sync_api import Browser, Page, ViewportSize, expect, sync_playwright

from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from orchestrator import events
from orchestrator.dashboard import testing as dashboard
from orchestrator.dashboard.server import Dashboard
from orchestrator.dashboard.telemetry_samples import send_active_conversation, send_conversations
from orchestrator.masking import Masker
from orchestrator.stack.lifecycle import Controls
from orchestrator.telemetry.session import Telemetry
from orchestrator.testing import UP_LINE, orchestrator_process, stack_env, unique_project
from testsupport.chromium import CHROMIUM_ARGS, find_chromium
from testsupport.processes import free_port

_VIEWPORT: ViewportSize = {"width": 1400, "height": 900}
_MS = 1000
_WAIT_S = 60.0
# Long enough for the services' metrics (exported every 2 s) to see it active.
_CONVERSATION_S = 8.0


@contextmanager
def _browser() -> Iterator[Browser]:
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=find_chromium(), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield browser
        finally:
            browser.close()


def _shoot(page: Page, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    print(f"wrote {path}")


def telemetry_views(page: Page, url: str, directory: Path) -> None:
    """The traces list, the first conversation's waterfall (its conversation span selected), the
    backend's metrics and the structured logs."""
    page.goto(f"{url}/#traces")
    rows = page.locator("#traces tbody tr")
    expect(rows).not_to_have_count(0, timeout=_WAIT_S * _MS)
    _shoot(page, directory / "dashboard-traces.png")
    rows.filter(has_text="frontend.proxy").first.locator("a").click()
    spans = page.locator("#waterfall .span-row:not(.axis)")
    expect(spans).not_to_have_count(0, timeout=_WAIT_S * _MS)
    page.locator('#waterfall .span-row[data-name="moshi.conversation"]').first.click()
    _shoot(page, directory / "dashboard-waterfall.png")
    page.goto(f"{url}/#metrics")
    page.locator("#metrics-resource").select_option(events.BACKEND)
    chart = page.locator('#charts path[data-series="moshi.conversations.active"]')
    expect(chart).to_have_count(1, timeout=_WAIT_S * _MS)
    page.wait_for_timeout(2500)  # one more refresh: every chart drawn
    _shoot(page, directory / "dashboard-metrics.png")
    page.goto(f"{url}/#logs")
    expect(page.locator("#slogs tbody tr")).not_to_have_count(0, timeout=_WAIT_S * _MS)
    _shoot(page, directory / "dashboard-logs.png")


async def _converse(relay_url: str) -> None:
    """One conversation through the frontend's relay: a tone spoken, the answers read (which
    also answers the server's pings) for a few seconds, then hung up."""
    async with ChatClient.connect(relay_url) as client:
        await client.handshake()
        for page in ogg_pages(tone(2.0)):
            await client.send_audio(page)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(_CONVERSATION_S):
                await client.closed_reason(timeout_s=_CONVERSATION_S)


def with_up(output: Path, telemetry: Path | None) -> None:
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
        url = f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}"
        with orchestrator_process(["up"], env, project) as orchestrator, _browser() as browser:
            orchestrator.wait_output(UP_LINE, timeout_s=180)
            page = browser.new_page(viewport=_VIEWPORT)
            page.goto(f"{url}/#console={events.BACKEND}")
            dashboard.expect_healthy(page, (events.BACKEND, events.FRONTEND))
            expect(dashboard.log_lines(page)).not_to_have_count(0)
            page.wait_for_timeout(3000)  # uptimes past zero, a few more lines
            _shoot(page, output)
            if telemetry is not None:
                # On a loop of its own: the sync Playwright session owns this thread's.
                with dashboard.loop_thread() as chat:
                    relay = f"ws://127.0.0.1:{env['APP_PORT']}/proxy/moshi"
                    chat.run(_converse(relay), timeout_s=_CONVERSATION_S + _WAIT_S)
                telemetry_views(page, url, telemetry)
            orchestrator.signal_and_wait(signal.SIGTERM)


def with_samples(directory: Path) -> None:
    with dashboard.loop_thread() as thread, tempfile.TemporaryDirectory() as state:
        hub = thread.start_hub()

        async def start() -> tuple[Telemetry, Dashboard, str]:
            telemetry = await Telemetry.start(Path(state), {}, enabled=True, port=None)
            board = Dashboard(hub, Controls(), Masker(), port=free_port(), telemetry=telemetry)
            return telemetry, board, await board.start()

        telemetry, board, url = thread.run(start())
        try:
            assert telemetry.endpoint is not None
            send_active_conversation(telemetry.endpoint)
            send_conversations(telemetry.endpoint, pace_s=0.05)
            with _browser() as browser:
                telemetry_views(browser.new_page(viewport=_VIEWPORT), url, directory)
        finally:
            thread.run(board.stop())
            thread.run(telemetry.stop())


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("output", type=Path, nargs="?", help="PNG of the resources view")
    parser.add_argument(
        "--telemetry", type=Path, metavar="DIR", help="also the telemetry views, after a chat"
    )
    parser.add_argument(
        "--sample-telemetry",
        type=Path,
        metavar="DIR",
        help="no `up`: the telemetry views of sample conversations sent by the SDK",
    )
    args = parser.parse_args(argv)
    if args.sample_telemetry is not None:
        with_samples(args.sample_telemetry.resolve())
    elif args.output is not None:
        telemetry = args.telemetry.resolve() if args.telemetry else None
        with_up(args.output.resolve(), telemetry)
    else:
        parser.error("give the PNG to write, or --sample-telemetry DIR")
    return 0


if __name__ == "__main__":
    sys.exit(main())
