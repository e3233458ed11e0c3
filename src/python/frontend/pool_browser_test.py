"""Several backends of one conversation each, seen from the page: a Connect goes to the backend
that is free at that moment, not to the one that was free when the page loaded."""

from __future__ import annotations

from playwright.sync_api import Browser

from frontend.testing_browser import (
    backend_process,
    frontend_process,
    occupied_slot,
    open_voice_page,
)

ONE_SLOT = ("--max-sessions", "1")


def test_connect_asks_for_a_free_backend_each_time(voice_browser: Browser) -> None:
    with (
        backend_process(flags=ONE_SLOT) as first,
        backend_process(flags=ONE_SLOT) as second,
        frontend_process(first.chat_url, more_backends=[second.chat_url]) as frontend,
    ):
        # Both free when the page loads: it is told the first.
        assert frontend.config()["moshi_ws_url"] == first.chat_url
        services = [first.process, second.process, frontend.process]
        with open_voice_page(voice_browser, frontend.url, services) as voice:
            voice.wait_until("!document.getElementById('connect').disabled", "configuration")
            with occupied_slot(first.chat_url):
                voice.connect()
                assert voice.websockets, voice.report()
                assert voice.websockets[-1].startswith(second.chat_url), voice.report()
