"""Typed configuration of the backend, read from the environment variables of the architecture."""

from __future__ import annotations

from enum import Enum
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from moshi_protocol.origins import LOCAL_FRONTEND_ORIGINS
from stack_settings.lists import split_if_text


class EngineName(str, Enum):
    AUTO = "auto"
    PERSONAPLEX = "personaplex"
    MOSHI = "moshi"
    LOOPBACK = "loopback"


class DeviceChoice(str, Enum):
    AUTO = "auto"
    CUDA = "cuda"
    CPU = "cpu"


class QuantizeChoice(str, Enum):
    NONE = "none"
    INT8 = "int8"
    FP8 = "fp8"


class BackendSettings(BaseSettings):
    """One object per process, built in main(); never at import time."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    moshi_host: str = Field(default="127.0.0.1", min_length=1)
    moshi_port: int = Field(default=8998, ge=1, le=65535)
    moshi_engine: EngineName = EngineName.AUTO
    moshi_use_ssl: bool = False
    moshi_ssl_dir: Path = Path("certs")
    moshi_cpu_offload: bool = False
    # The LM's Linear weights in 8 bits (about half the GPU memory of bf16); Mimi stays as it is.
    moshi_quantize: QuantizeChoice = QuantizeChoice.NONE
    # A model hub id or a directory holding the same files; unset: the engine's own repository.
    moshi_hf_repo: str | None = None
    moshi_device: DeviceChoice = DeviceChoice.AUTO
    # Voice prompt files (.pt stored voices, audio files); unset: voices.tgz of the repository.
    moshi_voice_dir: Path | None = None
    # Honoured by moshi itself too (it reads them from the environment); here they steer our
    # own CUDA graphs and show in the startup log.
    no_cuda_graph: bool = False
    no_torch_compile: bool = False
    moshi_loopback_delay_ms: int = Field(default=0, ge=0, le=10_000)
    # Conversations served at once; unset means the engine's own default (1 for model engines).
    moshi_max_sessions: int | None = Field(default=None, ge=1, le=1024)
    # A conversation whose client sends no audio this long ends with 0x05 "idle"; 0 turns it off.
    moshi_idle_timeout_s: float = Field(default=30.0, ge=0, le=86_400)
    # The longest conversation; unset: the engine's own (model engines 15 minutes, loopback
    # none); 0: no limit.
    moshi_max_conversation_s: float | None = Field(default=None, ge=0, le=7 * 86_400)
    # Pages of other origins that may open /api/chat (comma-separated); unset: a frontend on its
    # default port on this machine. The orchestrator sets its frontend's.
    moshi_allowed_origins: Annotated[tuple[str, ...], NoDecode] = LOCAL_FRONTEND_ORIGINS
    # Required on /api/chat and /api/voices when set (the frontend's relay sends it).
    moshi_api_key: SecretStr | None = None
    otel_exporter_otlp_endpoint: str | None = None
    # Milliseconds between metric exports (the SDK's variable); unset: stack_telemetry's 2000.
    otel_metric_export_interval: int | None = Field(default=None, ge=100, le=3_600_000)
    hf_token: SecretStr | None = None

    @field_validator("moshi_allowed_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        return split_if_text(value)

    @field_validator("moshi_allowed_origins")
    @classmethod
    def _are_origins(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for origin in value:
            if not origin.startswith(("http://", "https://")):
                raise ValueError(f"{origin!r} is not an origin (http(s)://host[:port])")
        return value

    @field_validator("moshi_api_key", mode="before")
    @classmethod
    def _empty_key_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("otel_exporter_otlp_endpoint")
    @classmethod
    def _endpoint_is_http_url(cls, value: str | None) -> str | None:
        if value in (None, ""):
            return None
        if not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value
