from __future__ import annotations

from playwright.sync_api import Browser


def test_headless_chromium_can_encode_opus_at_24khz(browser: Browser) -> None:
    # The web UI sends Ogg/Opus that it encodes with WebCodecs; the browser tests rely on this.
    page = browser.new_page()
    try:
        # WebCodecs exists only in secure contexts; http://localhost is one. The request is
        # answered by Playwright itself, so no server is needed for this probe.
        page.route("http://localhost/", lambda route: route.fulfill(body="<title>probe</title>"))
        page.goto("http://localhost/")
        support = page.evaluate(
            """async () => {
                const config = {codec: "opus", sampleRate: 24000, numberOfChannels: 1};
                const encoder = await AudioEncoder.isConfigSupported(config);
                return {encoder: encoder.supported, decoder: typeof AudioDecoder === "function"};
            }"""
        )
    finally:
        page.close()
    assert support == {"encoder": True, "decoder": True}
