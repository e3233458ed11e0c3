"""The telemetry of a whole `up` (local processes, loopback engine) in real Chromium: a
conversation by a real client through the frontend's relay shows on the metrics page as one
active conversation while it lasts, then as a trace whose backend spans hang under the relay's;
its log records link to it; and after a restart of `up` the run selector shows it in the
previous run."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

from playwright.sync_api import Browser, Locator, Page, expect

from moshi_backend.testing import ogg_pages, tone
from moshi_protocol.client import ChatClient
from orchestrator import events
from orchestrator.dashboard.testing import loop_thread
from orchestrator.testing import (
    UP_LINE,
    orchestrator_process,
    project_processes,
    stack_env,
    unique_project,
)
from testsupport.processes import free_port

UP_TIMEOUT_S = 180.0
_MS = 1000
# Spans leave the services in batches (BatchSpanProcessor: every 5 s), metrics every 2 s.
_EXPORT_WAIT_S = 30.0
_BACKEND_PHASES = ("moshi.upgrade", "moshi.params", "moshi.slot_wait", "moshi.handshake")


async def _converse(relay_url: str, hang_up: asyncio.Event) -> None:
    """A conversation through the relay: a tone spoken, the answers read (which answers the
    server's pings too) until told to hang up."""
    async with ChatClient.connect(relay_url) as client:
        await client.handshake()
        for page in ogg_pages(tone(1.0)):
            await client.send_audio(page)
        reading = asyncio.create_task(client.closed_reason(timeout_s=3600))
        try:
            async with asyncio.timeout(_EXPORT_WAIT_S * 2):
                await hang_up.wait()
        finally:
            reading.cancel()


def _active_conversations(page: Page) -> Locator:
    return page.locator('#charts path[data-series="moshi.conversations.active"]')


def test_a_conversation_is_a_trace_with_metrics_and_logs_kept_across_a_restart(
    browser: Browser, tmp_path: Path
) -> None:
    project = unique_project()
    env = stack_env(
        tmp_path,
        project,
        {
            "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
            "MOSHI_BACKEND": "local",
            "MOSHI_ENGINE": "loopback",
            "PERSONAPLEX_OTLP_PORT": str(free_port()),
        },
    )
    env.pop("OTEL_EXPORTER_OTLP_ENDPOINT", None)  # `up` points the services at its receiver
    url = f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}"
    relay = f"ws://127.0.0.1:{env['APP_PORT']}/proxy/moshi"
    with orchestrator_process(["up"], env, project) as orchestrator:
        orchestrator.wait_output(UP_LINE, timeout_s=UP_TIMEOUT_S)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{url}/#metrics")
            page.locator("#metrics-resource").select_option(events.BACKEND)
            with loop_thread() as chat:
                hang_up = asyncio.Event()
                conversation = chat.submit(_converse(relay, hang_up))
                try:
                    expect(_active_conversations(page)).to_have_attribute(
                        "data-last", "1", timeout=_EXPORT_WAIT_S * _MS
                    )
                finally:
                    chat.loop.call_soon_threadsafe(hang_up.set)
                conversation.result(timeout=30)
            expect(_active_conversations(page)).to_have_attribute(
                "data-last", "0", timeout=_EXPORT_WAIT_S * _MS
            )

            # The trace: the relay's span, the backend's conversation under it, its phases.
            page.click('.tabs a[data-tab="traces"]')
            relayed = page.locator("#traces tbody tr").filter(has_text="frontend.proxy")
            expect(relayed).to_have_count(1, timeout=_EXPORT_WAIT_S * _MS)
            trace_id = relayed.get_attribute("data-trace-id")
            assert trace_id
            expect(relayed.locator('[data-field="resources"]')).to_have_text(
                f"{events.FRONTEND}, {events.BACKEND}"
            )
            relayed.locator('[data-field="name"] a').click()
            spans = page.locator("#waterfall .span-row:not(.axis)")
            # Drawn again as the services' later batches arrive.
            expect(spans.filter(has_text="moshi.close")).to_have_count(
                1, timeout=_EXPORT_WAIT_S * _MS
            )
            proxy = spans.nth(0)
            expect(proxy).to_have_attribute("data-name", "frontend.proxy")
            backend = page.locator('#waterfall .span-row[data-name="moshi.conversation"]')
            expect(backend).to_have_attribute(
                "data-parent-span-id", proxy.get_attribute("data-span-id") or "-"
            )
            conversation_id = backend.get_attribute("data-span-id")
            for phase in _BACKEND_PHASES:
                child = page.locator(f'#waterfall .span-row[data-name="{phase}"]')
                expect(child).to_have_attribute("data-parent-span-id", conversation_id or "-")
                expect(child).to_have_attribute("data-depth", "2")

            # Its logs, reached from the waterfall; each links back to the trace.
            page.click("#trace-logs-link")
            logs = page.locator("#slogs tbody tr")
            expect(logs).not_to_have_count(0, timeout=_EXPORT_WAIT_S * _MS)
            links = logs.locator("a.trace-link")
            expect(links).to_have_count(logs.count())
            links.first.click()
            expect(page).to_have_url(f"{url}/#trace/{trace_id}")
            expect(spans.filter(has_text="moshi.close")).to_have_count(1)
            # All the run's records: the level filter and the search narrow them.
            page.click('.tabs a[data-tab="logs"]')
            started = page.locator("#slogs tbody tr").filter(has_text="start (voice")
            expect(started).to_have_count(1)
            page.select_option("#slog-level", "warning")
            expect(started).to_have_count(0)
            page.select_option("#slog-level", "")
            page.fill("#slog-search", "START (VOICE")
            expect(page.locator("#slogs tbody tr")).to_have_count(1)
        finally:
            page.close()
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143

    # The next `up` is a new run; the last one is kept, and its trace shown on request.
    with orchestrator_process(["up"], env, project) as orchestrator:
        orchestrator.wait_output(UP_LINE, timeout_s=UP_TIMEOUT_S)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(f"{url}/#traces")
            runs = page.locator("#run-select option")
            expect(runs).to_have_count(2, timeout=15 * _MS)
            expect(page.locator(f'#traces tbody tr[data-trace-id="{trace_id}"]')).to_have_count(0)
            page.select_option("#run-select", runs.nth(1).get_attribute("value") or "-")
            expect(page.locator(f'#traces tbody tr[data-trace-id="{trace_id}"]')).to_have_count(1)
        finally:
            page.close()
        assert orchestrator.signal_and_wait(signal.SIGTERM) == 143
    assert project_processes(project) == []
