from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from orchestrator.conftest import SetVariables
from orchestrator.errors import OrchestratorError
from orchestrator.secret_store import SecretStore
from orchestrator.settings import BackendMode, GpuMode, load_settings
from stack_settings.report import problems


def test_defaults(stack_environment: SetVariables) -> None:
    settings = load_settings()
    assert (settings.moshi_port, settings.app_port) == (8998, 8010)
    assert settings.moshi_gpu is GpuMode.AUTO and settings.backend is BackendMode.AUTO
    assert not settings.moshi_use_ssl and not settings.moshi_cpu_offload
    assert settings.hf_cache_volume == "hf-model-cache-scenario6"
    assert settings.persistent and settings.hf_token is None


def test_flags_beat_environment_beat_config_file(
    tmp_path: Path, stack_environment: SetVariables
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text('moshi_port = 9001\nAPP_PORT = 9002\nmoshi_gpu = "off"\n')
    stack_environment(APP_PORT="9200", MOSHI_PERSISTENT="false")
    settings = load_settings({"moshi_port": 9100, "config_file": config})
    assert settings.moshi_port == 9100  # flag
    assert settings.app_port == 9200  # environment over file
    assert settings.moshi_gpu is GpuMode.OFF  # file over default
    assert settings.persistent is False


def test_config_file_from_the_environment(tmp_path: Path, stack_environment: SetVariables) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("moshi_cpu_offload = true\n")
    stack_environment(PERSONAPLEX_CONFIG=str(config))
    assert load_settings().moshi_cpu_offload


def test_config_file_keys_may_be_variables_or_fields(
    tmp_path: Path, stack_environment: SetVariables
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text('MOSHI_BACKEND = "local"\npersistent = false\n')
    settings = load_settings({"config_file": config})
    assert settings.backend is BackendMode.LOCAL and settings.persistent is False


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown setting 'nonsense'"),
        ('hf_token = "x"\n', "HF_TOKEN does not belong in a config file"),
        ('HF_TOKEN = "x"\n', "HF_TOKEN does not belong in a config file"),
        ('MOSHI_API_KEY = "x"\n', "MOSHI_API_KEY does not belong in a config file"),
        ('personaplex_config = "other.toml"\n', "unknown setting 'personaplex_config'"),
        ("moshi_port = [\n", "is not valid TOML"),
        (None, "cannot read config file .*: No such file or directory"),
    ],
)
def test_bad_config_file_is_one_clear_error(
    tmp_path: Path, stack_environment: SetVariables, text: str | None, message: str
) -> None:
    config = tmp_path / "stack.toml"
    if text is not None:
        config.write_text(text)
    with pytest.raises(OrchestratorError, match=message):
        load_settings({"config_file": config})


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"MOSHI_PORT": "70000"}, "MOSHI_PORT"),
        ({"MOSHI_GPU": "maybe"}, "MOSHI_GPU"),
        ({"MOSHI_QUANTIZE": "int4"}, "MOSHI_QUANTIZE"),
        ({"PERSONAPLEX_PROJECT": "Bad Name"}, "PERSONAPLEX_PROJECT"),
        ({"PERSONAPLEX_HEALTH_TIMEOUT_S": "0"}, "PERSONAPLEX_HEALTH_TIMEOUT_S"),
    ],
)
def test_invalid_value_names_the_variable(
    stack_environment: SetVariables, environ: dict[str, str], variable: str
) -> None:
    stack_environment(**environ)
    with pytest.raises(ValidationError) as raised:
        load_settings()
    (line,) = problems(raised.value)
    assert line.startswith(f"invalid {variable}: ")


def test_invalid_option_names_its_variable(stack_environment: SetVariables) -> None:
    with pytest.raises(ValidationError) as raised:
        load_settings({"health_timeout_s": 0})
    (line,) = problems(raised.value)
    assert line.startswith("invalid PERSONAPLEX_HEALTH_TIMEOUT_S: ")


def test_token_from_the_secrets_file_unless_the_environment_has_one(
    tmp_path: Path, stack_environment: SetVariables
) -> None:
    SecretStore(tmp_path / "config" / "personaplex" / "secrets.toml").set("HF_TOKEN", "hf_file")
    assert load_settings().token == "hf_file"
    stack_environment(HF_TOKEN="hf_env")
    assert load_settings().token == "hf_env"


def test_describe_never_shows_the_token(stack_environment: SetVariables) -> None:
    stack_environment(HF_TOKEN="hf_secret_value")
    shown = load_settings().describe()
    assert shown["HF_TOKEN"] == "(set)"
    assert "hf_secret_value" not in str(shown)
    assert shown["MOSHI_BACKEND"] == "auto" and shown["MOSHI_PERSISTENT"] == "true"
