from __future__ import annotations

import io
import stat
from pathlib import Path

import pytest

from orchestrator.cli import main
from orchestrator.conftest import SetVariables


@pytest.fixture(autouse=True)
def isolated_home(stack_environment: SetVariables, tmp_path: Path) -> Path:
    # Neither the caller's secrets file nor their stack variables may leak into these tests.
    return tmp_path


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


def test_flags_and_config_file_reach_the_configuration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text('moshi_base_image = "local/base:1"\nAPP_PORT = 9300\n')
    monkeypatch.setenv("APP_PORT", "9400")
    arguments = ["--gpu", "off", "--no-persistent", "--quantize", "int8"]
    assert main(["config", "--config", str(config), *arguments]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert rows["MOSHI_QUANTIZE"] == "int8"
    assert rows["MOSHI_BASE_IMAGE"] == "local/base:1"
    assert rows["APP_PORT"] == "9400"
    assert rows["MOSHI_GPU"] == "off" and rows["MOSHI_PERSISTENT"] == "false"


def test_invalid_environment_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("APP_PORT", "not-a-port")
    assert main([]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1
    assert err[0].startswith("orchestrator: invalid APP_PORT:")


def test_unknown_config_key_is_one_clear_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("moshi_prot = 1\n")
    assert main(["status", "--config", str(config)]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert err == [f"orchestrator: config file {config}: unknown setting 'moshi_prot'"]


def test_secrets_set_reads_stdin_and_config_then_sees_the_token(
    isolated_home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr("sys.stdin", io.StringIO("hf_from_stdin_123\n"))
    assert main(["secrets", "set", "HF_TOKEN"]) == 0
    path = isolated_home / "config" / "personaplex" / "secrets.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert main(["config"]) == 0
    out = capsys.readouterr().out
    assert "hf_from_stdin_123" not in out
    assert any(line.split() == ["HF_TOKEN", "(set)"] for line in out.splitlines())


@pytest.mark.parametrize(
    "argv",
    [["--help"], *([command, "--help"] for command in ("up", "down", "status", "logs", "build"))],
)
def test_every_command_has_help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == 0
    assert "usage: orchestrator" in capsys.readouterr().out


def test_dashboard_options_reach_the_configuration(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "--no-dashboard", "--dashboard-port", "15555"]) == 0
    rows = dict(line.split(None, 1) for line in capsys.readouterr().out.splitlines())
    assert rows["PERSONAPLEX_DASHBOARD"] == "false"
    assert rows["PERSONAPLEX_DASHBOARD_PORT"] == "15555"
