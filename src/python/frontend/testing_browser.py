"""Real-browser helpers: backend and frontend as processes, Chromium speaking a synthetic voice."""

from __future__ import annotations

import asyncio
import json
import re
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, ViewportSize
from playwright.sync_api import TimeoutError as PlaywrightTimeout

from moshi_protocol.client import ChatClient
from testsupport.polling import wait_for
from testsupport.processes import (
    ProcessUnderTest,
    free_port,
    process_under_test,
    python_module_command,
)

# Generous: two slow cores run Chromium, the backend and the frontend at once.
STARTUP_TIMEOUT_S = 60.0
LIVE_TIMEOUT_S = 45.0
FLOW_TIMEOUT_S = 45.0


@dataclass
class BackendProcess:
    port: int
    process: ProcessUnderTest

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def chat_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}/api/chat"

    def frames_in(self) -> float:
        """moshi_frames_in_total: 80 ms frames the backend decoded from clients' Ogg/Opus."""
        body = self.process.wait_http(f"{self.base_url}/metrics").decode()
        match = re.search(r"^moshi_frames_in_total ([0-9.e+]+)$", body, re.MULTILINE)
        if match is None:
            raise AssertionError(f"no moshi_frames_in_total in /metrics:\n{body[:2000]}")
        return float(match.group(1))


@contextmanager
def backend_process(port: int | None = None, flags: Sequence[str] = ()) -> Iterator[BackendProcess]:
    """The real backend with the loopback engine, ready (/health 200) when yielded."""
    port = port or free_port()
    command = python_module_command(
        "moshi_backend", "--engine", "loopback", "--host", "127.0.0.1", "--port", str(port), *flags
    )
    with process_under_test(command) as process:
        backend = BackendProcess(port, process)
        process.wait_http(f"{backend.base_url}/health", timeout_s=STARTUP_TIMEOUT_S)
        yield backend


@dataclass
class FrontendProcess:
    port: int
    process: ProcessUnderTest

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    def config(self) -> dict[str, Any]:
        body = self.process.wait_http(f"{self.url}api/config")
        config: dict[str, Any] = json.loads(body)
        return config


@contextmanager
def frontend_process(
    backend_chat_url: str, *, proxy: bool = False, more_backends: Sequence[str] = ()
) -> Iterator[FrontendProcess]:
    """The real frontend, pointed at backend_chat_url (and more_backends, to choose among),
    serving /api/config when yielded."""
    port = free_port()
    env = {
        "APP_HOST": "127.0.0.1",
        "APP_PORT": str(port),
        "MOSHI_WS_URL": backend_chat_url,
        "MOSHI_PROXY": "true" if proxy else "false",
    }
    if more_backends:
        env["MOSHI_WS_URLS"] = ",".join([backend_chat_url, *more_backends])
    with process_under_test(python_module_command("frontend"), env=env) as process:
        frontend = FrontendProcess(port, process)
        process.wait_http(f"{frontend.url}api/config", timeout_s=STARTUP_TIMEOUT_S)
        yield frontend


@dataclass
class VoicePage:
    """One page of the UI, with what it printed and the WebSockets it opened, for diagnostics."""

    page: Page
    console: list[str] = field(default_factory=list)
    websockets: list[str] = field(default_factory=list)
    services: list[ProcessUnderTest] = field(default_factory=list)

    def evaluate(self, expression: str) -> Any:
        return self.page.evaluate(expression)

    @property
    def state(self) -> str:
        return str(self.evaluate("document.body.dataset.state"))

    def stats(self) -> dict[str, float]:
        stats: dict[str, float] = self.evaluate("({...window.voiceStats})")
        return stats

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector)

    def report(self) -> str:
        """What the page shows and printed, and the services' last log lines."""
        try:
            shown = self.evaluate(
                """() => ({
                    state: document.body.dataset.state,
                    status: document.getElementById("status").textContent,
                    error: document.getElementById("error").textContent,
                    stats: window.voiceStats,
                    transcript: document.getElementById("transcript").textContent,
                    logs: [...document.querySelectorAll("#logs li")].slice(-15)
                        .map((li) => li.textContent),
                })"""
            )
        except Exception as error:  # the page may be the very thing that broke
            shown = f"page not readable: {error}"
        parts = [
            f"page: {json.dumps(shown, indent=1)}",
            "console:\n" + "\n".join(self.console[-30:]),
            "websockets: " + ", ".join(self.websockets),
        ]
        parts += [f"service log:\n{service.output()[-2500:]}" for service in self.services]
        return "\n".join(parts)

    def wait_until(self, condition: str, what: str, timeout_s: float = FLOW_TIMEOUT_S) -> None:
        """Wait for a JavaScript expression to be truthy; AssertionError with a report if not."""
        try:
            self.page.wait_for_function(condition, timeout=timeout_s * 1000, polling=200)
        except PlaywrightTimeout:
            raise AssertionError(
                f"{what}: not within {timeout_s:.0f}s ({condition})\n{self.report()}"
            ) from None

    def wait_state(self, state: str, timeout_s: float = LIVE_TIMEOUT_S) -> None:
        self.wait_until(f"document.body.dataset.state === {json.dumps(state)}", state, timeout_s)

    def wait_stat_above(self, name: str, value: float, timeout_s: float = FLOW_TIMEOUT_S) -> None:
        self.wait_until(
            f"window.voiceStats.{name} > {value}", f"voiceStats.{name} > {value}", timeout_s
        )

    def connect(self) -> None:
        """Press Connect once the configuration is loaded, and wait for the handshake."""
        self.wait_until("!document.getElementById('connect').disabled", "configuration loaded")
        self.page.click("#connect")
        self.wait_state("live")


@contextmanager
def open_voice_page(
    browser: Browser,
    url: str,
    services: list[ProcessUnderTest] | None = None,
    viewport: ViewportSize | None = None,
) -> Iterator[VoicePage]:
    context = browser.new_context(viewport=viewport or {"width": 1280, "height": 900})
    try:
        page = context.new_page()
        voice = VoicePage(page, services=list(services or []))
        page.on("console", lambda message: voice.console.append(f"{message.type}: {message.text}"))
        page.on("pageerror", lambda error: voice.console.append(f"pageerror: {error}"))
        page.on("websocket", lambda socket: voice.websockets.append(socket.url))
        page.goto(url)
        yield voice
    finally:
        context.close()


@contextmanager
def occupied_slot(chat_url: str, timeout_s: float = 30.0) -> Iterator[None]:
    """Another client holds a conversation on the backend until the block ends."""
    ready = threading.Event()
    stop = asyncio.Event()
    failures: list[BaseException] = []
    loop = asyncio.new_event_loop()

    async def hold() -> None:
        async with ChatClient.connect(chat_url) as client:
            await client.handshake()
            ready.set()
            # Reading is what answers the server's heartbeat pings; without it the slot is freed.
            reader = asyncio.create_task(client.closed_reason(timeout_s=3600))
            stopper = asyncio.create_task(stop.wait())
            await asyncio.wait({reader, stopper}, return_when=asyncio.FIRST_COMPLETED)
            for task in (reader, stopper):
                task.cancel()

    def run() -> None:
        try:
            loop.run_until_complete(hold())
        except BaseException as error:  # reported to the test thread below
            failures.append(error)
            ready.set()
        finally:
            loop.close()

    thread = threading.Thread(target=run, name="occupied-slot", daemon=True)
    thread.start()
    try:
        if not ready.wait(timeout_s) or failures:
            raise AssertionError(f"the other client got no conversation: {failures}")
        yield
    finally:
        if thread.is_alive():
            loop.call_soon_threadsafe(stop.set)
        thread.join(timeout_s)


def wait_frames_in(
    backend: BackendProcess, above: float, timeout_s: float = FLOW_TIMEOUT_S
) -> float:
    return wait_for(
        lambda: (frames if (frames := backend.frames_in()) > above else None),
        what=f"backend moshi_frames_in_total above {above}",
        timeout_s=timeout_s,
        interval_s=0.5,
        context=lambda: backend.process.output()[-2500:],
    )


def live_screenshot(voice: VoicePage, path: Path) -> Path:
    """Screenshot once the conversation shows everything it should: text, audio, logs."""
    voice.wait_until(
        "document.getElementById('transcript').textContent.includes('echoed')",
        "the loopback's periodic text",
    )
    voice.wait_stat_above("samplesDecoded", 0)
    voice.wait_until("document.querySelectorAll('#logs li').length > 3", "server log lines")
    path.parent.mkdir(parents=True, exist_ok=True)
    voice.page.screenshot(path=str(path), full_page=True)
    return path
