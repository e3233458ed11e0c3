from __future__ import annotations

import pytest
from pydantic import ValidationError

from moshi_backend.settings import BackendSettings, EngineName


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
    ],
)
def test_rejects_bad_values(monkeypatch: pytest.MonkeyPatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError, match=name.lower()):
        BackendSettings()
