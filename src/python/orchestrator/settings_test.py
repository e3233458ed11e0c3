from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.errors import OrchestratorError
from orchestrator.secret_store import SecretStore
from orchestrator.settings import BackendMode, GpuMode, load_settings


@pytest.fixture
def no_secrets(tmp_path: Path) -> SecretStore:
    return SecretStore(tmp_path / "absent.toml")


def test_defaults(no_secrets: SecretStore) -> None:
    settings = load_settings(environ={}, secrets=no_secrets)
    assert (settings.moshi_port, settings.app_port) == (8998, 8010)
    assert settings.moshi_gpu is GpuMode.AUTO and settings.backend is BackendMode.AUTO
    assert not settings.moshi_use_ssl and not settings.moshi_cpu_offload
    assert settings.hf_cache_volume == "hf-model-cache-scenario6"
    assert settings.persistent and settings.hf_token is None


def test_flags_beat_environment_beat_config_file(tmp_path: Path, no_secrets: SecretStore) -> None:
    config = tmp_path / "stack.toml"
    config.write_text('moshi_port = 9001\nAPP_PORT = 9002\nmoshi_gpu = "off"\n')
    settings = load_settings(
        {"moshi_port": 9100},
        environ={"APP_PORT": "9200", "MOSHI_PERSISTENT": "false"},
        config_file=config,
        secrets=no_secrets,
    )
    assert settings.moshi_port == 9100  # flag
    assert settings.app_port == 9200  # environment over file
    assert settings.moshi_gpu is GpuMode.OFF  # file over default
    assert settings.persistent is False


def test_config_file_from_the_environment(tmp_path: Path, no_secrets: SecretStore) -> None:
    config = tmp_path / "stack.toml"
    config.write_text("moshi_cpu_offload = true\n")
    environ = {"PERSONAPLEX_CONFIG": str(config)}
    assert load_settings(environ=environ, secrets=no_secrets).moshi_cpu_offload


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("nonsense = 1\n", "unknown setting 'nonsense'"),
        ('hf_token = "x"\n', "HF_TOKEN does not belong in a config file"),
        ("moshi_port = [\n", "is not valid TOML"),
    ],
)
def test_bad_config_file_is_one_clear_error(
    tmp_path: Path, no_secrets: SecretStore, text: str, message: str
) -> None:
    config = tmp_path / "stack.toml"
    config.write_text(text)
    with pytest.raises(OrchestratorError, match=message):
        load_settings(environ={}, config_file=config, secrets=no_secrets)


@pytest.mark.parametrize(
    ("environ", "variable"),
    [
        ({"MOSHI_PORT": "70000"}, "MOSHI_PORT"),
        ({"MOSHI_GPU": "maybe"}, "MOSHI_GPU"),
        ({"PERSONAPLEX_PROJECT": "Bad Name"}, "PERSONAPLEX_PROJECT"),
        ({"PERSONAPLEX_HEALTH_TIMEOUT_S": "0"}, "PERSONAPLEX_HEALTH_TIMEOUT_S"),
    ],
)
def test_invalid_value_names_the_variable(
    no_secrets: SecretStore, environ: dict[str, str], variable: str
) -> None:
    with pytest.raises(OrchestratorError) as raised:
        load_settings(environ=environ, secrets=no_secrets)
    assert raised.value.message.startswith(f"invalid {variable}: ")
    assert "\n" not in raised.value.message and raised.value.exit_code == 2


def test_token_from_the_secrets_file_unless_the_environment_has_one(tmp_path: Path) -> None:
    store = SecretStore(tmp_path / "secrets.toml")
    store.set("HF_TOKEN", "hf_from_file")
    assert load_settings(environ={}, secrets=store).token == "hf_from_file"
    assert load_settings(environ={"HF_TOKEN": "hf_env"}, secrets=store).token == "hf_env"


def test_describe_never_shows_the_token(no_secrets: SecretStore) -> None:
    settings = load_settings(environ={"HF_TOKEN": "hf_secret_value"}, secrets=no_secrets)
    shown = settings.describe()
    assert shown["HF_TOKEN"] == "(set)"
    assert "hf_secret_value" not in str(shown)
    assert shown["MOSHI_BACKEND"] == "auto" and shown["MOSHI_PERSISTENT"] == "true"
