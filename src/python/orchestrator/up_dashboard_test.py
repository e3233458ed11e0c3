"""The dashboard of a whole `up` (local processes, loopback engine) in real Chromium: both
resources healthy, their log lines with search and pause, a restart of the frontend from the
page, and the secret masked in every page and API answer."""

from __future__ import annotations

import json
import signal
from pathlib import Path

from playwright.sync_api import Browser, expect

from orchestrator import events
from orchestrator.dashboard import testing as dashboard
from orchestrator.masking import MASK
from orchestrator.testing import (
    CANARY_TOKEN,
    UP_LINE,
    orchestrator_process,
    project_processes,
    stack_env,
    unique_project,
)
from testsupport.polling import http_status
from testsupport.processes import free_port

UP_TIMEOUT_S = 180.0
_MS = 1000


def _api(url: str) -> dict[str, object]:
    answer = http_status(url)
    assert answer is not None and answer[0] == 200, answer
    document = json.loads(answer[1])
    assert isinstance(document, dict)
    return document


def _frontend_pid(env: dict[str, str], project: str) -> int:
    path = Path(env["XDG_STATE_HOME"]) / "personaplex" / f"{project}.json"
    record = json.loads(path.read_text())
    return next(int(p["pid"]) for p in record["processes"] if p["service"] == events.FRONTEND)


def test_dashboard_shows_the_stack_and_restarts_the_frontend(
    browser: Browser, tmp_path: Path
) -> None:
    project = unique_project()
    # The backend says where its (absent) collector is: a real log line that holds the secret.
    collector = f"http://127.0.0.1:{free_port()}/{CANARY_TOKEN}"
    env = stack_env(
        tmp_path,
        project,
        {
            "DOCKER_HOST": f"unix://{tmp_path}/no-docker.sock",
            "MOSHI_BACKEND": "local",
            "MOSHI_ENGINE": "loopback",
            "OTEL_EXPORTER_OTLP_ENDPOINT": collector,
        },
    )
    url = f"http://127.0.0.1:{env['PERSONAPLEX_DASHBOARD_PORT']}"
    with orchestrator_process(["up"], env, project) as orchestrator:
        output = orchestrator.wait_output(UP_LINE, timeout_s=UP_TIMEOUT_S)
        assert f"dashboard at {url}" in output
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        try:
            page.goto(url)
            dashboard.expect_healthy(page, (events.BACKEND, events.FRONTEND))
            # The caller's endpoint wins over the receiver: said, not shown.
            expect(page.locator("#telemetry-status")).to_have_text("services export elsewhere")
            kind = dashboard.field(page, events.FRONTEND, "kind")
            expect(kind).to_have_text("process")
            backend_links = dashboard.field(page, events.BACKEND, "endpoints").locator("a")
            backend = f"http://127.0.0.1:{env['MOSHI_PORT']}"
            expect(backend_links).to_have_count(2)
            assert [backend_links.nth(n).get_attribute("href") for n in (0, 1)] == [
                f"{backend}/health",
                f"{backend}/metrics",
            ]
            ui_link = dashboard.field(page, events.FRONTEND, "endpoints").get_by_text("UI")
            expect(ui_link).to_have_attribute("href", f"http://127.0.0.1:{env['APP_PORT']}/")

            # The backend's lines, its secret masked; search narrows them.
            dashboard.show_logs(page, events.BACKEND)
            masked = dashboard.log_lines(page).filter(has_text=f"/{MASK}")
            expect(masked).not_to_have_count(0, timeout=30 * _MS)
            page.fill("#log-search", "collector")
            expect(page.locator("#log-count")).to_contain_text(" of ")
            assert all("collector" in text.lower() for text in dashboard.visible_log_texts(page))
            assert dashboard.visible_log_texts(page)
            page.fill("#log-search", "")

            # Paused, new lines are held back; resumed, they show.
            dashboard.show_logs(page, events.FRONTEND)
            expect(dashboard.log_lines(page)).not_to_have_count(0, timeout=30 * _MS)
            page.click("#log-pause")
            shown = dashboard.log_lines(page).count()
            for _ in range(3):
                http_status(f"http://127.0.0.1:{env['APP_PORT']}/api/config")  # access log lines
            expect(page.locator("#log-count")).to_contain_text("paused", timeout=10 * _MS)
            expect(page.locator("#log-count")).not_to_contain_text(
                "paused, 0 new", timeout=10 * _MS
            )
            assert dashboard.log_lines(page).count() == shown
            page.click("#log-pause")
            expect(dashboard.log_lines(page)).not_to_have_count(shown, timeout=10 * _MS)

            # A restart from the page: a new process, healthy again, counted.
            before = _frontend_pid(env, project)
            dashboard.field(page, events.FRONTEND, "actions").get_by_role(
                "button", name="restart frontend"
            ).click()
            expect(dashboard.field(page, events.FRONTEND, "restarts")).to_have_text(
                "1", timeout=30 * _MS
            )
            dashboard.expect_healthy(page, (events.FRONTEND,), timeout_s=90)
            assert _frontend_pid(env, project) != before
            assert http_status(f"http://127.0.0.1:{env['APP_PORT']}/health") is not None
            # The log goes on across the restart: both starts are in it.
            starts = dashboard.log_lines(page).filter(has_text="frontend on")
            expect(starts).to_have_count(2, timeout=30 * _MS)

            shown_text = page.content()
        finally:
            page.close()
        answers = [
            shown_text,
            json.dumps(_api(f"{url}/api/resources")),
            # The caller's endpoint, which the services export to instead of the receiver.
            json.dumps(_api(f"{url}/api/telemetry/status")),
            dashboard.stream_text(f"{url}/api/resources/stream"),
            *(
                dashboard.stream_text(f"{url}/api/logs/{name}")
                for name in (events.BACKEND, events.FRONTEND, events.ORCHESTRATOR)
            ),
        ]
        assert not [text for text in answers if CANARY_TOKEN in text]
        assert json.loads(answers[2])["services_export_elsewhere"] is True
        assert MASK in answers[4]  # the backend's log stream
        assert orchestrator.process.poll() is None, orchestrator.output()
        code = orchestrator.signal_and_wait(signal.SIGTERM)
        output = orchestrator.output()
    assert code == 143, output
    assert project_processes(project) == []
    assert CANARY_TOKEN not in output
