from __future__ import annotations

import pytest

from moshi_protocol.origins import origin_refusal

ALLOWED = ("http://127.0.0.1:8010", "https://voice.example.org/")


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        (None, "127.0.0.1:8998"),  # not a browser
        ("http://127.0.0.1:8010", "127.0.0.1:8998"),  # the frontend's page, allowed
        ("HTTPS://Voice.Example.org", "backend:8998"),  # listed, any case
        ("http://gpu-box:8010", "gpu-box:8010"),  # a page of this very server
        ("https://voice.example.net", "voice.example.net"),  # behind a TLS proxy
    ],
)
def test_allowed(origin: str | None, host: str) -> None:
    assert origin_refusal(origin, host, ALLOWED) is None


@pytest.mark.parametrize(
    ("origin", "host"),
    [
        ("https://evil.example.com", "127.0.0.1:8998"),
        ("http://127.0.0.1:9999", "127.0.0.1:8998"),  # another port is another origin
        ("http://gpu-box.evil.example:8010", "gpu-box:8010"),
        ("null", "127.0.0.1:8010"),  # a sandboxed or file page
    ],
)
def test_refused_with_a_reason_naming_the_setting(origin: str, host: str) -> None:
    reason = origin_refusal(origin, host, ALLOWED)
    assert reason is not None and "MOSHI_ALLOWED_ORIGINS" in reason and origin.lower() in reason


def test_any_port_admits_the_pages_of_the_same_host_only() -> None:
    host = "10.0.0.5:8998"
    assert origin_refusal("http://10.0.0.5:8010", host, (), any_port=True) is None
    assert origin_refusal("http://10.0.0.5:8010", host, ()) is not None
    assert origin_refusal("http://10.0.0.6:8010", host, (), any_port=True) is not None
    assert origin_refusal("http://10.0.0.5.evil.example:8010", host, (), any_port=True)
