from __future__ import annotations

import pytest
from pydantic import ValidationError

from frontend.settings import FrontendSettings

_VARS = (
    "APP_PORT",
    "MOSHI_HOST",
    "MOSHI_PORT",
    "MOSHI_USE_SSL",
    "MOSHI_WS_URL",
    "OTEL_METRIC_EXPORT_INTERVAL",
)


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in _VARS:
        monkeypatch.delenv(name, raising=False)


def test_default_websocket_url_is_the_architecture_one() -> None:
    settings = FrontendSettings()
    assert settings.app_port == 8010
    assert settings.moshi_ws_url == "ws://localhost:8998/api/chat"


def test_websocket_url_follows_host_port_and_ssl(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_HOST", "gpu-box")
    monkeypatch.setenv("MOSHI_PORT", "9000")
    monkeypatch.setenv("MOSHI_USE_SSL", "1")
    assert FrontendSettings().moshi_ws_url == "wss://gpu-box:9000/api/chat"


def test_explicit_websocket_url_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_HOST", "ignored")
    monkeypatch.setenv("MOSHI_WS_URL", "ws://127.0.0.1:1234/api/chat")
    assert FrontendSettings().moshi_ws_url == "ws://127.0.0.1:1234/api/chat"


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("APP_PORT", "70000"),
        ("MOSHI_WS_URL", "http://localhost:8998/api/chat"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "0"),
    ],
)
def test_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        FrontendSettings()


def test_metric_export_interval_is_the_sdks_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FrontendSettings().otel_metric_export_interval is None  # stack_telemetry's 2000 ms
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    assert FrontendSettings().otel_metric_export_interval == 5000


def test_backend_url_follows_the_websocket_url(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_WS_URL", "wss://gpu-box:9443/api/chat")
    settings = FrontendSettings()
    assert settings.moshi_backend_url == "https://gpu-box:9443"
    assert settings.backend_chat_url == "wss://gpu-box:9443/api/chat"


def test_ssl_implies_the_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    assert FrontendSettings().use_proxy is False
    monkeypatch.setenv("MOSHI_USE_SSL", "true")
    assert FrontendSettings().use_proxy is True
