"""Typed configuration of the stack: option > environment > config file (TOML) > stored secret >
default, merged by pydantic-settings.

Every field is read from the environment variable named in the architecture document: the field
name in capitals, or its alias where the two differ. The CLI hands its options over as init
values under the same names.
"""

from __future__ import annotations

import errno
import os
import tomllib
from collections.abc import Mapping
from enum import Enum
from pathlib import Path
from typing import Any

from pydantic import Field, SecretStr
from pydantic.fields import FieldInfo
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from orchestrator.errors import OrchestratorError
from orchestrator.secret_store import SecretStore

CONFIG_FILE_VARIABLE = "PERSONAPLEX_CONFIG"
_TOKEN = "hf_token"
_API_KEY = "moshi_api_key"


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


class QuantizeMode(str, Enum):
    """How the model engine stores the LM's weights (the backend's MOSHI_QUANTIZE)."""

    NONE = "none"
    INT8 = "int8"
    FP8 = "fp8"


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(
        frozen=True,
        extra="forbid",
        case_sensitive=False,
        # An empty variable means "not set", as for most tools.
        env_ignore_empty=True,
        # Options and config files may use the field names too.
        populate_by_name=True,
    )

    # The TOML file the values below may come from; itself an option or a variable.
    config_file: Path | None = Field(default=None, validation_alias="personaplex_config")
    moshi_port: int = Field(default=8998, ge=1, le=65535)
    app_port: int = Field(default=8010, ge=1, le=65535)
    app_host: str = Field(default="127.0.0.1", min_length=1)
    moshi_use_ssl: bool = False
    moshi_cpu_offload: bool = False
    moshi_quantize: QuantizeMode = QuantizeMode.NONE
    moshi_gpu: GpuMode = GpuMode.AUTO
    moshi_engine: EngineChoice = EngineChoice.AUTO
    # None: the engine's own repository (nvidia/personaplex-7b-v1 or kyutai/moshiko-pytorch-bf16).
    moshi_hf_repo: str | None = Field(default=None, min_length=1)
    # The Dockerfile's default: the virtualenv brings torch's own CUDA libraries.
    moshi_base_image: str = Field(default="python:3.11-slim-bookworm", min_length=1)
    frontend_base_image: str = Field(default="python:3.11-slim", min_length=1)
    hf_cache_volume: str = Field(default="hf-model-cache-scenario6", min_length=1)
    hf_token: SecretStr | None = None
    # Required by the backend, added by the frontend's relay (then every page uses the relay).
    moshi_api_key: SecretStr | None = None
    # Other pages that may open the WebSockets, beside the frontend's own (comma-separated).
    moshi_allowed_origins: str | None = None
    backend: BackendMode = Field(default=BackendMode.AUTO, validation_alias="moshi_backend")
    # A prebuilt server PEX; unset means `./pants --concurrent package` builds one.
    backend_pex: Path | None = Field(default=None, validation_alias="moshi_backend_pex")
    # Production mode (Aspire's publish-mode run): the frontend runs as a container built from
    # its Dockerfile too, without reload.
    prod: bool = Field(default=False, validation_alias="personaplex_prod")
    # A prebuilt frontend app PEX for --prod; unset means `./pants --concurrent package`.
    frontend_pex: Path | None = None
    # The host address the backend's port is published on (container) or bound to (process).
    publish_host: str = Field(
        default="127.0.0.1", min_length=1, validation_alias="moshi_publish_host"
    )
    # Like Aspire's WithLifetime(Persistent): the container outlives `up` and is reused.
    persistent: bool = Field(default=True, validation_alias="moshi_persistent")
    health_timeout_s: float = Field(
        default=600.0, gt=0, le=86_400, validation_alias="personaplex_health_timeout_s"
    )
    # The dashboard `up` serves on loopback (Aspire's, on the same port by default).
    dashboard: bool = Field(default=True, validation_alias="personaplex_dashboard")
    dashboard_port: int = Field(
        default=15000, ge=1, le=65535, validation_alias="personaplex_dashboard_port"
    )
    # The OTLP receiver the services export traces, metrics and logs to (the dashboard shows
    # them); off: no receiver, and OTEL_EXPORTER_OTLP_ENDPOINT is left as the caller has it.
    telemetry: bool = Field(default=True, validation_alias="personaplex_telemetry")
    # None: OTLP's 4318, or any free port when 4318 is taken (the services are told which).
    otlp_port: int | None = Field(
        default=None, ge=1, le=65535, validation_alias="personaplex_otlp_port"
    )
    # Names the containers, labels and run state, so that two stacks can live side by side.
    project: str = Field(
        default="personaplex",
        pattern=r"^[a-z0-9][a-z0-9_.-]{0,62}$",
        validation_alias="personaplex_project",
    )
    # Where the backend's Dockerfile and start.sh are read and `./pants` is run.
    repo_root: Path = Field(default=Path("."), validation_alias="personaplex_repo_root")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (
            init_settings,
            env_settings,
            ConfigFileSource(settings_cls),
            StoredTokenSource(settings_cls),
        )

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

    @property
    def api_key(self) -> str | None:
        return self.moshi_api_key.get_secret_value() if self.moshi_api_key else None

    @property
    def secrets(self) -> list[str]:
        """Values no output may show."""
        return [value for value in (self.token, self.api_key) if value]


def env_name(field: str) -> str:
    """The environment variable of a field."""
    alias = StackSettings.model_fields[field].validation_alias
    return (alias if isinstance(alias, str) else field).upper()


def _input_name(field: str) -> str:
    """The key a field's value has in the merged sources: its variable, in lower case."""
    return env_name(field).lower()


class _StackToml(TomlConfigSettingsSource):
    """A config file whose keys are the variables' names in any case, or the fields' names."""

    def _read_file(self, path: Any) -> dict[str, Any]:
        try:
            document = super()._read_file(path)
        except OSError as error:
            raise OrchestratorError(f"cannot read config file {path}: {error.strerror}") from error
        except tomllib.TOMLDecodeError as error:
            raise OrchestratorError(f"config file {path} is not valid TOML: {error}") from error
        known = {
            name.lower()
            for field in StackSettings.model_fields
            if field != "config_file"
            for name in (field, env_name(field))
        }
        for key in document:
            if key.lower() in (_TOKEN, env_name(_TOKEN).lower()):
                raise OrchestratorError(
                    f"config file {path}: HF_TOKEN does not belong in a config file; "
                    "use `orchestrator secrets set HF_TOKEN` or the environment"
                )
            if key.lower() in (_API_KEY, env_name(_API_KEY).lower()):
                raise OrchestratorError(
                    f"config file {path}: MOSHI_API_KEY does not belong in a config file; "
                    "set it in the environment"
                )
            if key.lower() not in known:
                raise OrchestratorError(f"config file {path}: unknown setting {key!r}")
        return document


class ConfigFileSource(PydanticBaseSettingsSource):
    """The TOML file that the option or the environment (the sources above this one) names."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        named = self.current_state.get(_input_name("config_file"))
        if not named:
            return {}
        path = Path(named)
        if not path.is_file():
            missing = os.strerror(errno.ENOENT)
            raise OrchestratorError(f"cannot read config file {path}: {missing}")
        return _StackToml(self.settings_cls, toml_file=path)()


class StoredTokenSource(PydanticBaseSettingsSource):
    """HF_TOKEN from the user's secrets file, when no option or variable gives one."""

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self.current_state.get(_TOKEN):
            return {}
        stored = SecretStore.default(os.environ).load().get(env_name(_TOKEN))
        return {_TOKEN: stored} if stored else {}


def load_settings(options: Mapping[str, Any] | None = None) -> StackSettings:
    """The settings from every source, options keyed by field name; pydantic's ValidationError
    when a value is invalid, OrchestratorError when the config file or the secrets file cannot
    be used."""
    # Keyed by variable, so that an invalid option is reported under the variable's name.
    given = {_input_name(key): value for key, value in (options or {}).items() if value is not None}
    return StackSettings(**given)
