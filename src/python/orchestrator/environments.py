"""The environments the services are started with, each built explicitly from the settings."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

from orchestrator.endpoints import reachable_host
from orchestrator.settings import EngineChoice, GpuMode, StackSettings, env_name
from stack_settings.lists import comma_separated
from stack_tls.certificates import CERT_FILE

# Backend variables the orchestrator sets itself (or that configure the orchestrator, not the
# backend); any other MOSHI_* variable of the caller is passed on to the backend unchanged.
_MANAGED = frozenset(
    {env_name(field) for field in StackSettings.model_fields}
    | {"MOSHI_HOST", "MOSHI_WS_URL", "MOSHI_PROXY", "MOSHI_BACKEND_URL", "MOSHI_TRUST_CERT"}
    | {"MOSHI_SSL_DIR"}
)
OTLP_ENDPOINT = "OTEL_EXPORTER_OTLP_ENDPOINT"
_PASSED_TO_BACKEND = (OTLP_ENDPOINT,)
# The frontend gets only these from the caller's environment: it must never see HF_TOKEN.
_FRONTEND_INHERITS = (
    "PATH",
    "HOME",
    "USER",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TZ",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "NO_COLOR",
    OTLP_ENDPOINT,
)
# The model hub token under the names huggingface_hub reads; kept from the frontend everywhere.
SECRET_NAMES = frozenset({"HF_TOKEN", "HUGGING_FACE_HUB_TOKEN", "HUGGINGFACE_TOKEN"})


def telemetry_environ(environ: Mapping[str, str], endpoint: str | None) -> Mapping[str, str]:
    """The caller's environment with OTEL_EXPORTER_OTLP_ENDPOINT set to the orchestrator's
    receiver, unless the caller has set one (theirs wins) or endpoint is None (telemetry off)."""
    if endpoint is None or environ.get(OTLP_ENDPOINT):
        return environ
    return {**environ, OTLP_ENDPOINT: endpoint}


def _flag(value: bool) -> str:
    return "true" if value else "false"


def backend_variables(settings: StackSettings, environ: Mapping[str, str]) -> dict[str, str]:
    """What the backend is given, in a container or as a process (MOSHI_HOST aside)."""
    passed = {
        key: value
        for key, value in environ.items()
        if (key.startswith("MOSHI_") and key not in _MANAGED) or key in _PASSED_TO_BACKEND
    }
    passed.update(
        {
            "MOSHI_PORT": str(settings.moshi_port),
            "MOSHI_USE_SSL": _flag(settings.moshi_use_ssl),
            "MOSHI_CPU_OFFLOAD": _flag(settings.moshi_cpu_offload),
            "MOSHI_QUANTIZE": settings.moshi_quantize.value,
            "MOSHI_ENGINE": settings.moshi_engine.value,
        }
    )
    if settings.moshi_hf_repo:
        passed["MOSHI_HF_REPO"] = settings.moshi_hf_repo
    if settings.token:
        passed["HF_TOKEN"] = settings.token
    if settings.api_key:
        passed["MOSHI_API_KEY"] = settings.api_key
    # The pages that connect straight to the backend are the frontend's.
    passed["MOSHI_ALLOWED_ORIGINS"] = ",".join(
        [*frontend_origins(settings), *comma_separated(settings.moshi_allowed_origins or "")]
    )
    return passed


def frontend_origins(settings: StackSettings) -> list[str]:
    """The origins of the frontend's pages as a browser on this machine names them (a page
    opened by another address needs MOSHI_ALLOWED_ORIGINS, or goes through the relay)."""
    scheme = "https" if settings.moshi_use_ssl else "http"
    hosts = dict.fromkeys(["localhost", "127.0.0.1", reachable_host(settings.app_host)])
    return [f"{scheme}://{host}:{settings.app_port}" for host in hosts]


def python_path(entries: Sequence[str], source_root: str | None) -> str:
    """PYTHONPATH for `python -m SERVICE`: the working tree first (so reload sees edits), then
    what this interpreter imports from (a PEX's or a test sandbox's paths)."""
    ordered = ([source_root] if source_root else []) + [entry for entry in entries if entry]
    return os.pathsep.join(dict.fromkeys(ordered))


def local_backend_environment(
    settings: StackSettings,
    environ: Mapping[str, str],
    *,
    engine: EngineChoice,
    pythonpath: str | None = None,
    pex_root: str | None = None,
) -> dict[str, str]:
    """The backend as a process on this host, running engine (never auto: the orchestrator has
    chosen). pythonpath: for `python -m moshi_backend` from the orchestrator's own packages;
    pex_root: for a server PEX, where it unpacks its environment."""
    # The backend is trusted with the token; it inherits the caller's environment like any
    # locally started program, minus variables that would override the ones set here, and the
    # caller's PYTHONPATH and PEX_* (a PEX would mix another environment's packages into its own).
    env = {
        key: value
        for key, value in environ.items()
        if not key.startswith(("MOSHI_", "PEX_"))
        and key not in SECRET_NAMES
        and key != "PYTHONPATH"
    }
    env.update(backend_variables(settings, environ))
    env["MOSHI_ENGINE"] = engine.value
    # The container's counterpart is a container without a GPU; a process sees them all.
    if settings.moshi_gpu is GpuMode.OFF and "MOSHI_DEVICE" not in environ:
        env["MOSHI_DEVICE"] = "cpu"
    # The process runs in the run-state directory: a relative directory must keep its meaning.
    for name in ("MOSHI_HF_REPO", "MOSHI_VOICE_DIR"):
        if name in env and Path(env[name]).is_dir():
            env[name] = str(Path(env[name]).resolve())
    env.update(
        {
            "MOSHI_HOST": settings.publish_host,
            "PYTHONUNBUFFERED": "1",
            "PERSONAPLEX_PROJECT": settings.project,
        }
    )
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    if pex_root:
        env["PEX_ROOT"] = pex_root
    return env


def container_environment(settings: StackSettings, environ: Mapping[str, str]) -> dict[str, str]:
    return {**backend_variables(settings, environ), "MOSHI_HOST": "0.0.0.0"}


def frontend_environment(
    settings: StackSettings,
    environ: Mapping[str, str],
    *,
    backend_host: str,
    backend_port: int,
    pythonpath: str,
    certs_dir: str,
) -> dict[str, str]:
    """Built from an allowlist, never by copying: HF_TOKEN must not reach the frontend.
    certs_dir: where the frontend finds the stack's pair (with MOSHI_USE_SSL)."""
    env = {key: environ[key] for key in _FRONTEND_INHERITS if key in environ}
    env.update({key: value for key, value in environ.items() if key.startswith("APP_")})
    scheme = "wss" if settings.moshi_use_ssl else "ws"
    env.update(
        {
            "APP_HOST": settings.app_host,
            "APP_PORT": str(settings.app_port),
            "APP_RELOAD": "true",
            "MOSHI_HOST": backend_host,
            "MOSHI_PORT": str(backend_port),
            "MOSHI_USE_SSL": _flag(settings.moshi_use_ssl),
            "MOSHI_WS_URL": f"{scheme}://{backend_host}:{backend_port}/api/chat",
            "PYTHONPATH": pythonpath,
            "PYTHONUNBUFFERED": "1",
            "PERSONAPLEX_PROJECT": settings.project,
        }
    )
    if settings.moshi_allowed_origins:
        env["MOSHI_ALLOWED_ORIGINS"] = settings.moshi_allowed_origins
    if settings.api_key:
        env["MOSHI_API_KEY"] = settings.api_key
    if settings.moshi_use_ssl:
        # The stack's one pair: the frontend serves it and trusts it (pinned) for the backend.
        env["APP_SSL_DIR"] = certs_dir
        env["MOSHI_TRUST_CERT"] = f"{certs_dir}/{CERT_FILE}"
    token = settings.token
    return {
        key: value
        for key, value in env.items()
        if key not in SECRET_NAMES and not (token and token in value)
    }


# What a process on this host needs and a container must not get: the image has its own.
_HOST_ONLY = (
    "PATH",
    "HOME",
    "USER",
    "TMPDIR",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
    "PYTHONPATH",
    "APP_SSL_DIR",
)


def frontend_container_environment(
    settings: StackSettings,
    environ: Mapping[str, str],
    *,
    backend_host: str,
    backend_port: int,
    backend_address: str,
    certs_dir: str,
) -> dict[str, str]:
    """The frontend as a container (`up --prod`): browsers get the same computed MOSHI_WS_URL as
    with a process; the frontend itself reaches the backend at backend_address (its container
    name on the project's network). No reload: the code is the image's."""
    for_host = frontend_environment(
        settings,
        environ,
        backend_host=backend_host,
        backend_port=backend_port,
        pythonpath="",
        certs_dir=certs_dir,
    )
    env = {key: value for key, value in for_host.items() if key not in _HOST_ONLY}
    if settings.moshi_use_ssl:
        env["APP_SSL_DIR"] = certs_dir  # the image's own path, where the pair is put
    scheme = "https" if settings.moshi_use_ssl else "http"
    env.update(
        {
            "APP_HOST": "0.0.0.0",
            "APP_RELOAD": "false",
            "MOSHI_BACKEND_URL": f"{scheme}://{backend_address}:{settings.moshi_port}",
        }
    )
    return env


def config_hash(parts: Mapping[str, object]) -> str:
    """A stable digest of what makes a container what it is (the token included, digested)."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]
