from __future__ import annotations

import pytest

from orchestrator.cli import main


def test_config_masks_the_token(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_do_not_print_me")
    monkeypatch.setenv("MOSHI_PORT", "9123")
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hf_do_not_print_me" not in out
    assert "HF_TOKEN" in out and "(set)" in out
    assert "MOSHI_PORT" in out and "9123" in out


def test_invalid_environment_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_PORT", "not-a-port")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("orchestrator: invalid APP_PORT:")
