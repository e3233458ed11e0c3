"""Typed configuration of the frontend, read from the environment variables of the architecture."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class FrontendSettings(BaseSettings):
    """One object per process, built in main(); never at import time."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore", frozen=True)

    app_host: str = Field(default="127.0.0.1", min_length=1)
    app_port: int = Field(default=8010, ge=1, le=65535)
    moshi_host: str = Field(default="localhost", min_length=1)
    moshi_port: int = Field(default=8998, ge=1, le=65535)
    moshi_use_ssl: bool = False
    # Empty means: derived from MOSHI_HOST, MOSHI_PORT and MOSHI_USE_SSL.
    moshi_ws_url: str = ""
    otel_exporter_otlp_endpoint: str | None = None

    @field_validator("moshi_ws_url")
    @classmethod
    def _is_websocket_url(cls, value: str) -> str:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return value

    @model_validator(mode="after")
    def _derive_ws_url(self) -> FrontendSettings:
        if not self.moshi_ws_url:
            scheme = "wss" if self.moshi_use_ssl else "ws"
            url = f"{scheme}://{self.moshi_host}:{self.moshi_port}/api/chat"
            object.__setattr__(self, "moshi_ws_url", url)
        return self
