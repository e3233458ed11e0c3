from __future__ import annotations

import pytest
from pydantic import ValidationError

from moshi_backend.settings import BackendSettings, EngineName, QuantizeChoice


def test_defaults_match_the_architecture(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MOSHI_PORT", "MOSHI_ENGINE", "MOSHI_USE_SSL", "HF_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    settings = BackendSettings()
    assert settings.moshi_port == 8998
    assert settings.moshi_engine is EngineName.AUTO
    assert settings.moshi_use_ssl is False
    assert settings.hf_token is None


def test_reads_environment_variables(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_PORT", "9100")
    monkeypatch.setenv("MOSHI_ENGINE", "loopback")
    monkeypatch.setenv("MOSHI_USE_SSL", "true")
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    settings = BackendSettings()
    assert settings.moshi_port == 9100
    assert settings.moshi_engine is EngineName.LOOPBACK
    assert settings.moshi_use_ssl is True
    assert settings.hf_token is not None
    assert "hf_secret" not in repr(settings)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("MOSHI_PORT", "0"),
        ("MOSHI_PORT", "eighty"),
        ("MOSHI_ENGINE", "gpt"),
        ("MOSHI_USE_SSL", "maybe"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "collector:4318"),
        ("MOSHI_IDLE_TIMEOUT_S", "-1"),
        ("MOSHI_IDLE_TIMEOUT_S", "soon"),
        ("MOSHI_MAX_CONVERSATION_S", "-5"),
        ("MOSHI_QUANTIZE", "int4"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "soon"),
        ("OTEL_METRIC_EXPORT_INTERVAL", "50"),
    ],
)
def test_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        BackendSettings()


def test_metric_export_interval_is_the_sdks_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OTEL_METRIC_EXPORT_INTERVAL", raising=False)
    assert BackendSettings().otel_metric_export_interval is None  # stack_telemetry's 2000 ms
    monkeypatch.setenv("OTEL_METRIC_EXPORT_INTERVAL", "5000")
    assert BackendSettings().otel_metric_export_interval == 5000


def test_quantize_is_off_unless_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOSHI_QUANTIZE", raising=False)
    assert BackendSettings().moshi_quantize is QuantizeChoice.NONE
    monkeypatch.setenv("MOSHI_QUANTIZE", "fp8")
    assert BackendSettings().moshi_quantize is QuantizeChoice.FP8


def test_conversation_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("MOSHI_IDLE_TIMEOUT_S", "MOSHI_MAX_CONVERSATION_S"):
        monkeypatch.delenv(name, raising=False)
    defaults = BackendSettings()
    assert defaults.moshi_idle_timeout_s == 30 and defaults.moshi_max_conversation_s is None
    monkeypatch.setenv("MOSHI_IDLE_TIMEOUT_S", "0")
    monkeypatch.setenv("MOSHI_MAX_CONVERSATION_S", "600")
    settings = BackendSettings()
    assert settings.moshi_idle_timeout_s == 0 and settings.moshi_max_conversation_s == 600


def test_allowed_origins_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("MOSHI_ALLOWED_ORIGINS", raising=False)
    monkeypatch.delenv("MOSHI_API_KEY", raising=False)
    defaults = BackendSettings()
    assert "http://localhost:8010" in defaults.moshi_allowed_origins
    assert defaults.moshi_api_key is None
    monkeypatch.setenv("MOSHI_ALLOWED_ORIGINS", "https://a.example, http://b.example:8010")
    monkeypatch.setenv("MOSHI_API_KEY", "key-settings-test")
    settings = BackendSettings()
    assert settings.moshi_allowed_origins == ("https://a.example", "http://b.example:8010")
    assert settings.moshi_api_key is not None
    assert "key-settings-test" not in repr(settings)
    monkeypatch.setenv("MOSHI_ALLOWED_ORIGINS", "a.example")
    with pytest.raises(ValidationError, match="is not an origin"):
        BackendSettings()
