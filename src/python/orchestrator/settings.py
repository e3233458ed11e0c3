"""Typed configuration of the stack, with the defaults of the architecture document."""

from __future__ import annotations

from enum import Enum

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GpuMode(str, Enum):
    AUTO = "auto"
    ON = "on"
    OFF = "off"


class StackSettings(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    moshi_port: int = Field(default=8998, ge=1, le=65535)
    app_port: int = Field(default=8010, ge=1, le=65535)
    moshi_use_ssl: bool = False
    moshi_cpu_offload: bool = False
    moshi_gpu: GpuMode = GpuMode.AUTO
    moshi_base_image: str = Field(
        default="pytorch/pytorch:2.4.0-cuda12.1-cudnn9-runtime", min_length=1
    )
    frontend_base_image: str = Field(default="python:3.11-slim", min_length=1)
    hf_cache_volume: str = Field(default="hf-model-cache-scenario6", min_length=1)
    hf_token: SecretStr | None = None

    def describe(self) -> dict[str, str]:
        """The configuration as printable strings; secrets show only whether they are set."""
        shown: dict[str, str] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                text = "(set)" if value.get_secret_value() else "(empty)"
            elif value is None:
                text = "(not set)"
            elif isinstance(value, Enum):
                text = str(value.value)
            else:
                text = str(value)
            shown[name.upper()] = text
        return shown
