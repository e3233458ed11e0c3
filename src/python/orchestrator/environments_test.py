from __future__ import annotations

from pathlib import Path

import pytest

from orchestrator.conftest import SetVariables
from orchestrator.environments import (
    backend_variables,
    config_hash,
    container_environment,
    frontend_container_environment,
    frontend_environment,
    local_backend_environment,
    telemetry_environ,
)
from orchestrator.settings import EngineChoice, StackSettings, load_settings

TOKEN = "hf_environment_test_token"
LOOPBACK, PERSONAPLEX = EngineChoice.LOOPBACK, EngineChoice.PERSONAPLEX


@pytest.fixture(autouse=True)
def _isolated(stack_environment: SetVariables) -> None:
    """No variable of the caller's shell and no stored token reaches these settings."""


def _settings(**variables: str) -> StackSettings:
    return load_settings({name.lower(): value for name, value in variables.items()})


def test_backend_gets_the_token_and_the_settings() -> None:
    settings = _settings(HF_TOKEN=TOKEN, MOSHI_PORT="9123", MOSHI_CPU_OFFLOAD="1")
    caller = {"MOSHI_LOOPBACK_DELAY_MS": "5", "MOSHI_GPU": "on", "UNRELATED": "x"}
    env = container_environment(settings, caller)
    assert env["HF_TOKEN"] == TOKEN
    assert env["MOSHI_PORT"] == "9123" and env["MOSHI_CPU_OFFLOAD"] == "true"
    assert env["MOSHI_HOST"] == "0.0.0.0"
    # The caller's other backend variables pass; the orchestrator's own and unrelated ones don't.
    assert env["MOSHI_LOOPBACK_DELAY_MS"] == "5"
    assert "MOSHI_GPU" not in env and "UNRELATED" not in env


def test_quantize_mode_reaches_the_backend() -> None:
    assert backend_variables(_settings(), {})["MOSHI_QUANTIZE"] == "none"
    # The orchestrator's setting, not a stray variable of the caller's, decides.
    env = backend_variables(_settings(MOSHI_QUANTIZE="fp8"), {"MOSHI_QUANTIZE": "int8"})
    assert env["MOSHI_QUANTIZE"] == "fp8"


def test_local_backend_binds_the_publish_host() -> None:
    settings = _settings(HF_TOKEN=TOKEN)
    caller = {"PATH": "/bin", "MOSHI_HOST": "0.0.0.0"}
    env = local_backend_environment(settings, caller, engine=LOOPBACK, pythonpath="/src")
    assert env["MOSHI_HOST"] == "127.0.0.1" and env["PATH"] == "/bin"
    assert env["PYTHONPATH"] == "/src" and env["HF_TOKEN"] == TOKEN
    assert env["MOSHI_ENGINE"] == "loopback" and "PEX_ROOT" not in env


def test_a_local_server_pex_gets_its_root_and_none_of_the_callers_python_paths() -> None:
    settings = _settings(MOSHI_ENGINE="auto")
    caller = {
        "PYTHONPATH": "/orchestrator/site-packages",
        "PEX_ROOT": "/sandbox/.cache/pex_root",
        "PEX_EXTRA_SYS_PATH": "/elsewhere",
        "HF_HOME": "/home/user/hf",  # the user's own model cache, as any program of theirs
    }
    env = local_backend_environment(settings, caller, engine=PERSONAPLEX, pex_root="/cache/pex")
    assert env["PEX_ROOT"] == "/cache/pex" and env["HF_HOME"] == "/home/user/hf"
    assert "PYTHONPATH" not in env and "PEX_EXTRA_SYS_PATH" not in env
    # The orchestrator's choice, not the server's own auto.
    assert env["MOSHI_ENGINE"] == "personaplex"


def test_gpu_off_puts_a_local_backend_on_the_cpu_unless_a_device_is_named() -> None:
    off = _settings(MOSHI_GPU="off")
    assert local_backend_environment(off, {}, engine=PERSONAPLEX)["MOSHI_DEVICE"] == "cpu"
    named = local_backend_environment(off, {"MOSHI_DEVICE": "cuda"}, engine=PERSONAPLEX)
    assert named["MOSHI_DEVICE"] == "cuda"
    for mode in ("auto", "on"):
        on = _settings(MOSHI_GPU=mode)
        assert "MOSHI_DEVICE" not in local_backend_environment(on, {}, engine=PERSONAPLEX)
    # A container with --gpu off simply has no GPU: its configuration stays as it was.
    assert "MOSHI_DEVICE" not in container_environment(off, {})


def test_a_local_backend_gets_relative_directories_as_absolute_ones(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "tiny" / "voices").mkdir(parents=True)
    monkeypatch.chdir(tmp_path)
    settings = _settings(MOSHI_HF_REPO="tiny")
    caller = {"MOSHI_VOICE_DIR": "tiny/voices"}
    env = local_backend_environment(settings, caller, engine=PERSONAPLEX)
    # It runs in the run-state directory, where "tiny" would name nothing.
    assert env["MOSHI_HF_REPO"] == str(tmp_path / "tiny")
    assert env["MOSHI_VOICE_DIR"] == str(tmp_path / "tiny" / "voices")
    hub = local_backend_environment(_settings(MOSHI_HF_REPO="nvidia/x"), {}, engine=PERSONAPLEX)
    assert hub["MOSHI_HF_REPO"] == "nvidia/x"


def test_frontend_never_gets_the_token() -> None:
    settings = _settings(HF_TOKEN=TOKEN)
    caller = {
        "PATH": "/bin",
        "HF_TOKEN": TOKEN,
        "HUGGING_FACE_HUB_TOKEN": TOKEN,
        "SOMETHING_ELSE": f"prefix-{TOKEN}",
        "APP_SSL_DIR": "/certs",
    }
    env = frontend_environment(
        settings,
        caller,
        backend_host="127.0.0.1",
        backend_port=18998,
        pythonpath="/src",
        certs_dir="/state/certs",
    )
    assert TOKEN not in str(env)
    assert env["APP_RELOAD"] == "true" and env["APP_SSL_DIR"] == "/certs"
    assert env["MOSHI_WS_URL"] == "ws://127.0.0.1:18998/api/chat"
    assert (env["MOSHI_HOST"], env["MOSHI_PORT"]) == ("127.0.0.1", "18998")


def test_ssl_makes_the_frontend_trust_the_stacks_own_certificate() -> None:
    settings = _settings(MOSHI_USE_SSL="true")
    env = frontend_environment(
        settings,
        {"APP_SSL_DIR": "/elsewhere"},
        backend_host="127.0.0.1",
        backend_port=8998,
        pythonpath="",
        certs_dir="/state/certs",
    )
    assert env["MOSHI_WS_URL"].startswith("wss://")
    # The stack's one pair, served by the frontend and trusted (pinned) for the backend.
    assert env["APP_SSL_DIR"] == "/state/certs"
    assert env["MOSHI_TRUST_CERT"] == "/state/certs/cert.pem"


def test_config_hash_follows_the_backend_configuration() -> None:
    one = backend_variables(_settings(), {})
    same = backend_variables(_settings(), {})
    other = backend_variables(_settings(MOSHI_CPU_OFFLOAD="true"), {})
    assert config_hash({"env": one}) == config_hash({"env": same})
    assert config_hash({"env": one}) != config_hash({"env": other})


def test_frontend_container_keeps_the_browser_url_and_reaches_the_backend_by_name() -> None:
    settings = _settings(HF_TOKEN=TOKEN, MOSHI_PORT="9123", APP_PORT="8100")
    caller = {"PATH": "/host/bin", "HOME": "/home/me", "APP_SSL_DIR": "/host/certs", "TZ": "UTC"}
    env = frontend_container_environment(
        settings,
        caller,
        backend_host="127.0.0.1",
        backend_port=9123,
        backend_address="pp-be",
        certs_dir="/home/app/certs",
    )
    # The URL browsers get is computed as for a local frontend; the container's own route differs.
    assert env["MOSHI_WS_URL"] == "ws://127.0.0.1:9123/api/chat"
    assert env["MOSHI_BACKEND_URL"] == "http://pp-be:9123"
    assert env["APP_HOST"] == "0.0.0.0" and env["APP_PORT"] == "8100"
    assert env["APP_RELOAD"] == "false"
    # The host's paths mean nothing in the image; the token never reaches the frontend.
    assert not {"PATH", "HOME", "PYTHONPATH", "APP_SSL_DIR", "HF_TOKEN"} & env.keys()
    assert env["TZ"] == "UTC" and TOKEN not in "".join(env.values())


def test_frontend_container_with_ssl_trusts_the_stack_certificate() -> None:
    settings = _settings(MOSHI_USE_SSL="true")
    env = frontend_container_environment(
        settings,
        {"APP_SSL_DIR": "/host/certs"},
        backend_host="127.0.0.1",
        backend_port=8998,
        backend_address="pp-be",
        certs_dir="/home/app/certs",
    )
    assert env["MOSHI_WS_URL"] == "wss://127.0.0.1:8998/api/chat"
    assert env["MOSHI_BACKEND_URL"] == "https://pp-be:8998"
    assert env["APP_SSL_DIR"] == "/home/app/certs"
    assert env["MOSHI_TRUST_CERT"] == "/home/app/certs/cert.pem"


def test_the_backend_accepts_the_frontends_pages_and_both_get_the_api_key() -> None:
    settings = _settings(
        APP_PORT="8123",
        MOSHI_API_KEY="key-environment-test",
        MOSHI_ALLOWED_ORIGINS="https://voice.example.org",
    )
    backend = container_environment(settings, {})
    assert backend["MOSHI_ALLOWED_ORIGINS"].split(",") == [
        "http://localhost:8123",
        "http://127.0.0.1:8123",
        "https://voice.example.org",
    ]
    assert backend["MOSHI_API_KEY"] == "key-environment-test"
    frontend = frontend_environment(
        settings, {}, backend_host="127.0.0.1", backend_port=8998, pythonpath="", certs_dir="c"
    )
    assert frontend["MOSHI_API_KEY"] == "key-environment-test"
    assert frontend["MOSHI_ALLOWED_ORIGINS"] == "https://voice.example.org"
    assert settings.secrets == ["key-environment-test"]


def test_the_telemetry_endpoint_is_set_unless_the_caller_has_one() -> None:
    ours = "http://127.0.0.1:4318"
    assert telemetry_environ({"PATH": "/bin"}, ours) == {
        "PATH": "/bin",
        "OTEL_EXPORTER_OTLP_ENDPOINT": ours,
    }
    theirs = {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}
    assert telemetry_environ(theirs, ours) == theirs
    assert telemetry_environ({"PATH": "/bin"}, None) == {"PATH": "/bin"}
    # What the backend and the frontend get from it.
    settings = StackSettings()
    environ = telemetry_environ({}, ours)
    assert backend_variables(settings, environ)["OTEL_EXPORTER_OTLP_ENDPOINT"] == ours
    frontend = frontend_environment(
        settings, environ, backend_host="127.0.0.1", backend_port=8998, pythonpath="", certs_dir=""
    )
    assert frontend["OTEL_EXPORTER_OTLP_ENDPOINT"] == ours
