"""The web UI in headless Chromium against the real backend (loopback engine) and frontend.

Chromium's fake microphone plays synthetic speech, so audio takes the whole real path: WebCodecs
Opus encoder, the page's Ogg muxer, /api/chat (directly or through /proxy/moshi), sphn on the
backend, and back through the page's demuxer, decoder and jitter buffer.
"""

from __future__ import annotations

import time
from pathlib import Path

from playwright.sync_api import Browser

from frontend.testing_browser import (
    LIVE_TIMEOUT_S,
    backend_process,
    frontend_process,
    live_screenshot,
    occupied_slot,
    open_voice_page,
    wait_frames_in,
)
from testsupport.processes import free_port

# The page's decoded echo must be speech, not the near-silence of a broken pipeline. Speech
# from espeak peaks near full scale; this leaves ample room for gain and noise suppression.
MIN_ECHO_PEAK = 0.05


def test_direct_conversation_sends_plays_and_transcribes(
    voice_browser: Browser, tmp_path: Path
) -> None:
    with backend_process() as backend, frontend_process(backend.chat_url) as frontend:
        assert frontend.config()["use_proxy"] is False
        services = [backend.process, frontend.process]
        with open_voice_page(voice_browser, frontend.url, services) as voice:
            assert voice.state == "disconnected"
            frames_before = backend.frames_in()
            voice.connect()
            assert any(url.startswith(backend.chat_url) for url in voice.websockets)

            # The backend decoded the page's Ogg/Opus into model frames...
            wait_frames_in(backend, frames_before + 12)
            # ...and the page played back the echo, with a speech level, and showed the text.
            voice.wait_stat_above("pagesSent", 12)
            voice.wait_stat_above("samplesDecoded", 24_000)
            voice.wait_stat_above("peakDecoded", MIN_ECHO_PEAK)
            voice.wait_stat_above("samplesPlayed", 12_000)  # half a second out of the buffer
            voice.wait_until(
                "document.getElementById('transcript').textContent"
                ".includes('loopback development engine')",
                "the loopback's opening text in the transcript",
            )
            assert voice.stats()["textPieces"] >= 1

            shot = live_screenshot(voice, tmp_path / "live.png")
            assert shot.read_bytes().startswith(b"\x89PNG")

            # Disconnect is final: no reconnect after the delay, and the microphone is closed.
            voice.page.click("#connect")
            voice.wait_state("disconnected", timeout_s=10)
            voice.wait_until(
                "document.getElementById('mic-text').textContent === 'off'", "microphone closed"
            )
            reconnects = voice.stats()["reconnects"]
            delay_s = frontend.config()["reconnect_delay_ms"] / 1000
            time.sleep(delay_s + 2)
            assert voice.state == "disconnected"
            assert voice.stats()["reconnects"] == reconnects

            # Connect again by hand: the microphone reopens and audio flows again.
            pages = voice.stats()["pagesSent"]
            voice.connect()
            voice.wait_stat_above("pagesSent", pages + 5)


def test_conversation_through_the_frontend_proxy(voice_browser: Browser) -> None:
    with backend_process() as backend, frontend_process(backend.chat_url, proxy=True) as frontend:
        config = frontend.config()
        assert config["use_proxy"] is True
        services = [backend.process, frontend.process]
        with open_voice_page(voice_browser, frontend.url, services) as voice:
            frames_before = backend.frames_in()
            voice.connect()
            proxy_url = f"ws://127.0.0.1:{frontend.port}{config['proxy_path']}?"
            assert any(url.startswith(proxy_url) for url in voice.websockets), voice.websockets
            assert not any(url.startswith(backend.chat_url) for url in voice.websockets)

            wait_frames_in(backend, frames_before + 12)
            voice.wait_stat_above("samplesDecoded", 24_000)
            voice.wait_stat_above("peakDecoded", MIN_ECHO_PEAK)
            voice.wait_until(
                "document.getElementById('transcript').textContent"
                ".includes('loopback development engine')",
                "the loopback's opening text in the transcript",
            )


def test_page_reconnects_after_the_backend_restarts(voice_browser: Browser) -> None:
    port = free_port()
    chat_url = f"ws://127.0.0.1:{port}/api/chat"
    with (
        backend_process(port) as first,
        frontend_process(chat_url) as frontend,
        open_voice_page(voice_browser, frontend.url, [first.process, frontend.process]) as voice,
    ):
        voice.connect()
        voice.wait_stat_above("samplesDecoded", 0)
        assert voice.stats()["reconnects"] == 0

        # SIGTERM, as an orchestrator would: the page sees a close, then refused connections.
        first.process.process.terminate()
        first.process.wait_exit()
        voice.wait_state("disconnected", timeout_s=30)

        with backend_process(port) as second:
            voice.services.append(second.process)
            frames_before = second.frames_in()
            voice.wait_state("live", timeout_s=LIVE_TIMEOUT_S + 10)
            assert voice.stats()["reconnects"] >= 1
            decoded = voice.stats()["samplesDecoded"]
            wait_frames_in(second, frames_before + 6)
            voice.wait_stat_above("samplesDecoded", decoded)


def test_busy_backend_is_explained_and_retried(voice_browser: Browser) -> None:
    with (
        backend_process(flags=["--max-sessions", "1"]) as backend,
        frontend_process(backend.chat_url) as frontend,
        open_voice_page(voice_browser, frontend.url, [backend.process, frontend.process]) as voice,
    ):
        with occupied_slot(backend.chat_url):
            voice.wait_until("!document.getElementById('connect').disabled", "configuration loaded")
            voice.page.click("#connect")
            voice.wait_until(
                "!document.getElementById('error').hidden && "
                "document.getElementById('error').textContent.includes('busy')",
                "the busy reason in the error area",
            )
            voice.wait_state("disconnected", timeout_s=15)
            assert voice.page.is_visible("#error")
            shown = voice.text("#error")
            assert "conversation slot" in shown, shown
        # The slot is free again: the next automatic attempt gets in.
        voice.wait_state("live", timeout_s=LIVE_TIMEOUT_S + 10)
        assert voice.stats()["reconnects"] >= 1
        assert not voice.page.is_visible("#error")


def test_refused_settings_are_shown_and_not_retried(voice_browser: Browser) -> None:
    with (
        backend_process() as backend,
        frontend_process(backend.chat_url) as frontend,
        open_voice_page(voice_browser, frontend.url, [backend.process, frontend.process]) as voice,
    ):
        voice.wait_until("!document.getElementById('connect').disabled", "configuration loaded")
        # A voice the backend does not have: no later attempt can succeed with it.
        voice.evaluate(
            "(() => { const voices = document.getElementById('voice');"
            " voices.add(new Option('NOSUCH.pt', 'NOSUCH.pt')); voices.value = 'NOSUCH.pt'; })()"
        )
        voice.page.click("#connect")
        voice.wait_until(
            "document.getElementById('error').textContent.includes('unknown voice_prompt')",
            "the refusal in the error area",
        )
        voice.wait_state("disconnected", timeout_s=15)
        time.sleep(frontend.config()["reconnect_delay_ms"] / 1000 + 2)
        assert voice.state == "disconnected"
        assert voice.stats()["reconnects"] == 0
        assert "Retrying" not in voice.text("#error")
        assert voice.text("#connect") == "Connect"


def test_a_conversation_the_server_ends_is_explained_and_not_restarted(
    voice_browser: Browser,
) -> None:
    with (
        backend_process(flags=["--max-conversation-s", "2"]) as backend,
        frontend_process(backend.chat_url) as frontend,
        open_voice_page(voice_browser, frontend.url, [backend.process, frontend.process]) as voice,
    ):
        voice.wait_until("!document.getElementById('connect').disabled", "configuration loaded")
        voice.page.click("#connect")
        voice.wait_state("live", timeout_s=30)
        voice.wait_until(
            "document.getElementById('error').textContent.includes('conversation limit')",
            "the server's reason in the error area",
        )
        assert "Connect to start a new one" in voice.text("#error")
        voice.wait_state("disconnected", timeout_s=15)
        # (A connection lost on the way to "live" on a loaded machine is retried, rightly; what
        # must not happen is a retry after the server ended the conversation.)
        reconnects = voice.stats()["reconnects"]
        time.sleep(frontend.config()["reconnect_delay_ms"] / 1000 + 2)
        assert voice.state == "disconnected"
        assert voice.stats()["reconnects"] == reconnects
        assert voice.text("#connect") == "Connect"


def test_without_a_microphone_the_page_still_listens_and_says_why(voice_browser: Browser) -> None:
    with (
        backend_process() as backend,
        frontend_process(backend.chat_url) as frontend,
        open_voice_page(voice_browser, frontend.url, [backend.process, frontend.process]) as voice,
    ):
        voice.page.evaluate(
            """() => { navigator.mediaDevices.getUserMedia = () =>
                Promise.reject(new DOMException("Permission denied", "NotAllowedError")); }"""
        )
        voice.wait_until("!document.getElementById('connect').disabled", "configuration loaded")
        # From the keyboard: the button is a real, focusable button.
        voice.page.focus("#connect")
        voice.page.keyboard.press("Enter")
        voice.wait_state("live")
        voice.wait_until(
            "document.getElementById('transcript').textContent.includes('loopback')",
            "the loopback's opening text",
        )
        shown = voice.text("#error")
        assert "No microphone" in shown and "Permission denied" in shown, shown
        assert voice.stats()["pagesSent"] == 0


# Ogg framing in the page, by itself: the backend's messages happen to be page-aligned, so the
# conversations above do not exercise pages cut across messages or packets over 255 bytes.
_OGG_ROUND_TRIP = """async () => {
    const ogg = await import("/static/ogg.js");
    const crcCheck = ogg.oggCrc(new TextEncoder().encode("123456789"));
    // 20 ms CELT packets (TOC 0xf8), of sizes around the 255-byte lacing boundaries.
    const sizes = [1, 2, 254, 255, 256, 510, 511, 1275];
    for (let i = 0; i < 60; i++) sizes.push(1275);
    const packets = sizes.map((size, i) => {
        const packet = new Uint8Array(size);
        for (let j = 0; j < size; j++) packet[j] = (i * 31 + j * 7) & 0xff;
        packet[0] = 0xf8;
        return packet;
    });
    const muxer = new ogg.OggOpusMuxer({inputSampleRate: 24000, packetsPerPage: 100});
    const pages = [...muxer.headerPages()];
    for (const packet of packets) pages.push(...muxer.addPacket(packet));
    pages.push(muxer.flush(true));
    const stream = new Uint8Array(pages.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const page of pages) { stream.set(page, offset); offset += page.length; }
    const demuxer = new ogg.OggDemuxer();
    const out = [];
    let position = 0, piece = 1;
    while (position < stream.length) {
        const size = piece++ % 7 === 0 ? 5000 : (piece * 37) % 97 + 1;
        out.push(...demuxer.push(stream.subarray(position, position + size)));
        position += size;
    }
    const same = (a, b) => a.length === b.length && a.every((v, i) => v === b[i]);
    const last = new DataView(pages[pages.length - 1].buffer);
    return {
        crcCheck,
        pages: pages.length,
        firstFlags: pages[0][5],
        head: ogg.isOpusHead(out[0]),
        tags: ogg.isOpusTags(out[1]),
        packetsMatch: out.length === packets.length + 2
            && packets.every((p, i) => same(p, out[i + 2])),
        lastGranule: last.getUint32(6, true),
        skipped: demuxer.bytesSkipped,
    };
}"""


def test_ogg_muxer_output_survives_any_cutting_into_messages(voice_browser: Browser) -> None:
    # The UI needs no backend for this; the frontend only serves the module.
    with (
        frontend_process(f"ws://127.0.0.1:{free_port()}/api/chat") as frontend,
        open_voice_page(voice_browser, frontend.url, [frontend.process]) as voice,
    ):
        result = voice.page.evaluate(_OGG_ROUND_TRIP)
    assert result == {
        "crcCheck": 0x89A1897F,  # CRC-32 with init 0 and no final xor, of "123456789"
        # Head, tags, and two audio pages: 379 lacing values do not fit one page's 255.
        "pages": 4,
        "firstFlags": 0x02,
        "head": True,
        "tags": True,
        "packetsMatch": True,
        "lastGranule": 68 * 960,
        "skipped": 0,
    }
