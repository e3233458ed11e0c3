"""Typed configuration of the stack: defaults < config file (TOML) < environment < flags.

`load_settings` merges the sources itself, so the environment is an argument (a seam for tests)
rather than something read behind the caller's back.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError

from orchestrator.errors import OrchestratorError
from orchestrator.secret_store import SecretStore

CONFIG_FILE_VARIABLE = "PERSONAPLEX_CONFIG"


class GpuMode(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class BackendMode(str, Enum):
    AUTO = "auto"  # Docker when an engine answers, a local process otherwise
    DOCKER = "docker"
    LOCAL = "local"


class EngineChoice(str, Enum):
    AUTO = "auto"
    PERSONAPLEX = "personaplex"
    MOSHI = "moshi"
    LOOPBACK = "loopback"


def _env(name: str) -> dict[str, Any]:
    """For fields whose environment variable is not simply the field name in capitals."""
    return {"env": name}


class StackSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    moshi_port: int = Field(default=8998, ge=1, le=65535)
    app_port: int = Field(default=8010, ge=1, le=65535)
    app_host: str = Field(default="127.0.0.1", min_length=1)
    moshi_use_ssl: bool = False
    moshi_cpu_offload: bool = False
    moshi_gpu: GpuMode = GpuMode.AUTO
    moshi_engine: EngineChoice = EngineChoice.AUTO
    # None: the engine's own repository (nvidia/personaplex-7b-v1 or kyutai/moshiko-pytorch-bf16).
    moshi_hf_repo: str | None = Field(default=None, min_length=1)
    moshi_base_image: str = Field(
        default="pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", min_length=1
    )
    frontend_base_image: str = Field(default="python:3.11-slim", min_length=1)
    hf_cache_volume: str = Field(default="hf-model-cache-scenario6", min_length=1)
    hf_token: SecretStr | None = None
    backend: BackendMode = Field(default=BackendMode.AUTO, json_schema_extra=_env("MOSHI_BACKEND"))
    # A prebuilt server PEX; unset means `./pants --concurrent package` builds one.
    backend_pex: Path | None = Field(default=None, json_schema_extra=_env("MOSHI_BACKEND_PEX"))
    # Production mode (Aspire's publish-mode run): the frontend runs as a container built from
    # its Dockerfile too, without reload.
    prod: bool = Field(default=False, json_schema_extra=_env("PERSONAPLEX_PROD"))
    # A prebuilt frontend app PEX for --prod; unset means `./pants --concurrent package`.
    frontend_pex: Path | None = Field(default=None, json_schema_extra=_env("FRONTEND_PEX"))
    # The host address the backend's port is published on (container) or bound to (process).
    publish_host: str = Field(
        default="127.0.0.1", min_length=1, json_schema_extra=_env("MOSHI_PUBLISH_HOST")
    )
    # Like Aspire's WithLifetime(Persistent): the container outlives `up` and is reused.
    persistent: bool = Field(default=True, json_schema_extra=_env("MOSHI_PERSISTENT"))
    health_timeout_s: float = Field(
        default=600.0, gt=0, le=86_400, json_schema_extra=_env("PERSONAPLEX_HEALTH_TIMEOUT_S")
    )
    # The dashboard `up` serves on loopback (Aspire's, on the same port by default).
    dashboard: bool = Field(default=True, json_schema_extra=_env("PERSONAPLEX_DASHBOARD"))
    dashboard_port: int = Field(
        default=15000, ge=1, le=65535, json_schema_extra=_env("PERSONAPLEX_DASHBOARD_PORT")
    )
    # Names the containers, labels and run state, so that two stacks can live side by side.
    project: str = Field(
        default="personaplex",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        json_schema_extra=_env("PERSONAPLEX_PROJECT"),
    )
    # Where the backend's Dockerfile and start.sh are read and `./pants` is run.
    repo_root: Path = Field(default=Path("."), json_schema_extra=_env("PERSONAPLEX_REPO_ROOT"))

    def describe(self) -> dict[str, str]:
        """The configuration as printable strings keyed by variable; secrets show only if set."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = "(set)" if value.get_secret_value() else "(empty)"
            elif value is None:
                text = "(not set)"
            elif isinstance(value, Enum):
                text = str(value.value)
            elif isinstance(value, bool):
                text = "true" if value else "false"
            else:
                text = str(value)
            shown[env_name(name)] = text
        return shown

    @property
    def token(self) -> str | None:
        return self.hf_token.get_secret_value() if self.hf_token else None


def env_name(field: str) -> str:
    info = StackSettings.model_fields.get(field)
    extra = info.json_schema_extra if info is not None else None
    if isinstance(extra, dict) and isinstance(extra.get("env"), str):
        return str(extra["env"])
    return field.upper()


def _by_env_name() -> dict[str, str]:
    return {env_name(field): field for field in StackSettings.model_fields}


def read_config_file(path: Path) -> dict[str, Any]:
    """Settings from a TOML file whose keys are variable names (any case) or field names."""
    try:
        document = tomllib.loads(path.read_text())
    except OSError as error:
        raise OrchestratorError(f"cannot read config file {path}: {error.strerror}") from error
    except tomllib.TOMLDecodeError as error:
        raise OrchestratorError(f"config file {path} is not valid TOML: {error}") from error
    known = _by_env_name()
    values: dict[str, Any] = {}
    for key, value in document.items():
        field = known.get(key.upper()) or (key if key in StackSettings.model_fields else None)
        if field is None:
            raise OrchestratorError(f"config file {path}: unknown setting {key!r}")
        if field == "hf_token":
            raise OrchestratorError(
                f"config file {path}: HF_TOKEN does not belong in a config file; "
                "use `orchestrator secrets set HF_TOKEN` or the environment"
            )
        values[field] = value
    return values


def _from_environment(environ: Mapping[str, str]) -> dict[str, str]:
    upper = {key.upper(): value for key, value in environ.items()}
    return {
        field: upper[variable]
        for variable, field in _by_env_name().items()
        # An empty variable means "not set", as for most tools.
        if upper.get(variable)
    }


def load_settings(
    flags: Mapping[str, Any] | None = None,
    *,
    environ: Mapping[str, str] | None = None,
    config_file: Path | None = None,
    secrets: SecretStore | None = None,
) -> StackSettings:
    """Merge the sources; OrchestratorError with one line naming the variable when invalid."""
    environ = os.environ if environ is None else environ
    if config_file is None and environ.get(CONFIG_FILE_VARIABLE):
        config_file = Path(environ[CONFIG_FILE_VARIABLE])
    merged: dict[str, Any] = read_config_file(config_file) if config_file else {}
    merged.update(_from_environment(environ))
    merged.update({key: value for key, value in (flags or {}).items() if value is not None})
    if "hf_token" not in merged:
        store = secrets if secrets is not None else SecretStore.default(environ)
        stored = store.load().get("HF_TOKEN")
        if stored:
            merged["hf_token"] = stored
    try:
        return StackSettings.model_validate(merged)
    except ValidationError as error:
        problem = error.errors()[0]
        field = str(problem["loc"][0]) if problem["loc"] else "?"
        raise OrchestratorError(
            f"invalid {env_name(field)}: {problem['msg']}", exit_code=2
        ) from None
