"""The telemetry pages in real Chromium, fed by the real receiver and store: OTLP bodies made by
the SDK's own exporters (the services' path), then the traces list and a waterfall, a metrics
chart, the structured logs with their filters and trace links, and a past run after a restart
of the store."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from orchestrator import events
from orchestrator.dashboard.server import Dashboard
from orchestrator.dashboard.telemetry_samples import (
    BACKEND_SPANS,
    send_active_conversation,
    send_conversations,
)
from orchestrator.dashboard.testing import LoopThread, loop_thread
from orchestrator.masking import MASK, Masker
from orchestrator.stack.lifecycle import Controls
from orchestrator.telemetry import testing as otlp
from orchestrator.telemetry.session import Telemetry
from orchestrator.testing import CANARY_TOKEN
from testsupport.polling import http_status
from testsupport.processes import free_port

_MS = 1000
_SPANS = 2 + len(BACKEND_SPANS)  # the relay's, the conversation's and its children


class Served:
    """A dashboard with telemetry on a loop thread; restart() is a new `up` on the same state."""

    def __init__(self, thread: LoopThread, state_dir: Path) -> None:
        self._thread, self._state_dir = thread, state_dir
        self._telemetry: Telemetry | None = None
        self._dashboard: Dashboard | None = None
        self.url = self.endpoint = ""

    def start(self) -> None:
        hub = self._thread.start_hub()

        async def start() -> tuple[Telemetry, Dashboard, str]:
            # The orchestrator knows the token: the services' telemetry must not show it.
            masker = Masker([CANARY_TOKEN])
            telemetry = await Telemetry.start(
                self._state_dir, {}, enabled=True, port=None, mask=masker
            )
            dashboard = Dashboard(hub, Controls(), masker, port=free_port(), telemetry=telemetry)
            return telemetry, dashboard, await dashboard.start()

        self._telemetry, self._dashboard, self.url = self._thread.run(start())
        assert self._telemetry.endpoint is not None
        self.endpoint = self._telemetry.endpoint

    def stop(self) -> None:
        if self._dashboard is not None:
            self._thread.run(self._dashboard.stop())
        if self._telemetry is not None:
            self._thread.run(self._telemetry.stop())
        self._dashboard = self._telemetry = None


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    with loop_thread() as thread:
        served = Served(thread, tmp_path / "state")
        served.start()
        try:
            yield served
        finally:
            served.stop()


def test_traces_metrics_and_logs_pages(browser: Browser, served: Served) -> None:
    sent = send_conversations(served.endpoint)
    send_active_conversation(served.endpoint)
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        # Traces: both listed, the rejected one marked; the outcome filter narrows the list.
        page.goto(f"{served.url}/#traces")
        # What the receiver had: the relay's, the conversation's and its children, the
        # rejected one's two; four log records.
        expect(page.locator("#telemetry-status")).to_contain_text(f"{_SPANS + 2} spans · 4 logs")
        rows = page.locator("#traces tbody tr")
        expect(rows).to_have_count(2, timeout=15 * _MS)
        conversation_row = page.locator(f'#traces tbody tr[data-trace-id="{sent.conversation}"]')
        rejected_row = page.locator(f'#traces tbody tr[data-trace-id="{sent.rejected}"]')
        expect(rejected_row).to_have_attribute("data-error", "true")
        expect(conversation_row.locator('[data-field="name"]')).to_have_text("frontend.proxy")
        expect(conversation_row.locator('[data-field="spans"]')).to_have_text(str(_SPANS))
        page.fill("#trace-outcome", "rejected")
        expect(rows).to_have_count(1)
        expect(rejected_row).to_have_count(1)
        page.fill("#trace-outcome", "")
        page.fill("#trace-min-ms", "100000")
        expect(rows).to_have_count(0)
        page.fill("#trace-min-ms", "")
        expect(rows).to_have_count(2)

        # The waterfall: the backend's spans under its conversation, under the relay.
        conversation_row.locator('[data-field="name"] a').click()
        expect(page).to_have_url(f"{served.url}/#trace/{sent.conversation}")
        spans = page.locator("#waterfall .span-row:not(.axis)")
        expect(spans).to_have_count(_SPANS)
        names = spans.evaluate_all("rows => rows.map(r => [r.dataset.name, r.dataset.depth])")
        assert names == [
            ["frontend.proxy", "0"],
            ["moshi.conversation", "1"],
            *([name, "2"] for name in BACKEND_SPANS),
        ]
        proxy_id = spans.nth(0).get_attribute("data-span-id")
        conversation_id = spans.nth(1).get_attribute("data-span-id")
        assert spans.nth(1).get_attribute("data-parent-span-id") == proxy_id
        for n in range(2, _SPANS):
            assert spans.nth(n).get_attribute("data-parent-span-id") == conversation_id
        # Bars start where their spans start: a child never left of its parent.
        lefts = spans.locator(".bar").evaluate_all(
            "bars => bars.map(b => b.getBoundingClientRect().left)"
        )
        assert lefts[0] <= lefts[1] <= lefts[2] <= lefts[-1]
        spans.nth(1).click()
        detail = page.locator("#span-detail")
        expect(detail).to_be_visible()
        expect(detail).to_contain_text("session")
        expect(detail).to_contain_text("completed")

        # The rejected trace: its failed span is marked, its message shown on click.
        page.goto(f"{served.url}/#trace/{sent.rejected}")
        failed = page.locator('#waterfall .span-row[data-status="error"]')
        expect(failed).to_have_count(2)
        expect(failed.locator(".error-mark")).to_have_count(2)
        failed.filter(has_text="moshi.params").click()
        expect(page.locator("#span-detail")).to_contain_text("error: unknown voice")

        # Metrics: one active conversation, drawn; step time percentiles.
        page.goto(f"{served.url}/#metrics")
        page.locator("#metrics-resource").select_option(events.BACKEND)
        active = page.locator('#charts path[data-series="moshi.conversations.active"]')
        expect(active).to_have_attribute("data-last", "1", timeout=15 * _MS)
        expect(
            page.locator('#charts .legend-item[data-series="moshi.conversations.active"]')
        ).to_contain_text(": 1")
        expect(page.locator('#charts path[data-series="moshi.step.duration.p99"]')).to_have_count(1)

        # Structured logs: the level filter and the search narrow; a trace link opens it.
        page.goto(f"{served.url}/#logs")
        logs = page.locator("#slogs tbody tr")
        expect(logs).to_have_count(4, timeout=15 * _MS)
        page.select_option("#slog-level", "warning")
        expect(logs).to_have_count(2)
        page.fill("#slog-search", "LATE")
        expect(logs).to_have_count(1)
        expect(logs.first.locator('[data-field="level"]')).to_have_text("warning")
        page.fill("#slog-search", "")
        page.select_option("#slog-level", "")
        expect(logs).to_have_count(4)
        idle = logs.filter(has_text="idle")
        expect(idle.locator("a.trace-link")).to_have_count(0)
        started = logs.filter(has_text="conversation s1 started")
        started.locator("a.trace-link").click()
        expect(page).to_have_url(f"{served.url}/#trace/{sent.conversation}")
        expect(page.locator("#waterfall .span-row:not(.axis)")).to_have_count(_SPANS)
    finally:
        page.close()


def test_the_run_selector_shows_a_previous_run_after_a_restart(
    browser: Browser, served: Served
) -> None:
    sent = send_conversations(served.endpoint)
    served.stop()
    served.start()  # the next `up`: a new run, the last one kept in the history
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    try:
        page.goto(f"{served.url}/#traces")
        runs = page.locator("#run-select option")
        expect(runs).to_have_count(2, timeout=15 * _MS)
        expect(runs.nth(0)).to_have_attribute("data-current", "true")
        expect(page.locator("#traces tbody tr")).to_have_count(0)
        previous = runs.nth(1).get_attribute("value")
        assert previous
        page.select_option("#run-select", previous)
        expect(
            page.locator(f'#traces tbody tr[data-trace-id="{sent.conversation}"]')
        ).to_have_count(1)
        expect(page.locator("#traces tbody tr")).to_have_count(2)
        # The waterfall of a past run's trace, and its logs.
        page.locator(f'#traces tbody tr[data-trace-id="{sent.rejected}"] a').click()
        expect(page.locator("#waterfall .span-row:not(.axis)")).to_have_count(2)
        page.click('.tabs a[data-tab="logs"]')
        expect(page.locator("#slogs tbody tr")).to_have_count(4)
        page.select_option("#run-select", "")
        expect(page.locator("#slogs tbody tr")).to_have_count(0)
    finally:
        page.close()


def test_the_services_secrets_are_masked_in_the_telemetry_answers(
    browser: Browser, served: Served
) -> None:
    tracers = otlp.tracer_provider(served.endpoint, events.BACKEND)
    logs_provider, handler = otlp.logging_handler(served.endpoint, events.BACKEND)
    logger = logging.getLogger("moshi_backend.loader")
    logger.addHandler(handler)
    try:
        with tracers.get_tracer("moshi_backend").start_as_current_span("moshi.load") as span:
            span.set_attribute("url", f"https://hub.invalid/?token={CANARY_TOKEN}")
            logger.warning("download with HF_TOKEN=%s failed", CANARY_TOKEN)
        trace_id = format(span.get_span_context().trace_id, "032x")
    finally:
        logger.removeHandler(handler)
        logs_provider.shutdown()
        tracers.shutdown()
    answers = []
    for path in ("logs", f"traces/{trace_id}", "traces"):
        answer = http_status(f"{served.url}/api/telemetry/{path}")
        assert answer is not None and answer[0] == 200, (path, answer)
        answers.append(answer[1].decode())
    assert not [text for text in answers if CANARY_TOKEN in text]
    assert json.loads(answers[0])["logs"][0]["message"] == f"download with HF_TOKEN={MASK} failed"
    (loaded,) = json.loads(answers[1])["spans"]
    assert loaded["attributes"]["url"] == f"https://hub.invalid/?token={MASK}"
    page = browser.new_page()
    try:
        page.goto(f"{served.url}/#logs")
        expect(page.locator("#slogs tbody tr")).to_have_count(1, timeout=15 * _MS)
        page.goto(f"{served.url}/#trace/{trace_id}")
        page.locator("#waterfall .span-row:not(.axis)").first.click()
        expect(page.locator("#span-detail")).to_contain_text(MASK)
        assert CANARY_TOKEN not in page.content()
    finally:
        page.close()
