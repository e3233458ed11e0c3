"""Typed configuration of the frontend, read from the environment variables of the architecture."""

from __future__ import annotations

import ssl
from enum import Enum
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from stack_settings.lists import split_if_text
from stack_tls.certificates import pinned_client_context


class LogsStream(str, Enum):
    """Who may read the server's events on /ws/logs."""

    LOOPBACK = "loopback"  # browsers on this machine only: development, `up`
    ON = "on"
    OFF = "off"


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
    # Several backends (scaling out), comma-separated: each new conversation goes to one with a
    # free slot (backend_pool.py). Empty: MOSHI_WS_URL is the only one.
    moshi_ws_urls: Annotated[tuple[str, ...], NoDecode] = ()
    # Where this server reaches the backend (health, voices, proxy); empty: MOSHI_WS_URL's host.
    moshi_backend_url: str = ""
    # Browsers use /proxy/moshi instead of connecting directly (always so with MOSHI_USE_SSL).
    moshi_proxy: bool = False
    # The certificate the relay and the backend client trust for the backend (the stack's own
    # self-signed one, pinned); unset: the system's certificate authorities.
    moshi_trust_cert: Path | None = None
    app_reload: bool = False
    # With MOSHI_USE_SSL the frontend serves HTTPS with cert.pem/key.pem from here (made if absent).
    app_ssl_dir: Path = Path("certs")
    log_replay_events: int = Field(default=200, ge=0, le=10_000)
    # A published frontend serves remote browsers, which get no server events by default.
    app_logs_stream: LogsStream = LogsStream.LOOPBACK
    backend_poll_interval_s: float = Field(default=5.0, gt=0, le=300)
    otel_exporter_otlp_endpoint: str | None = None
    # Milliseconds between metric exports (the SDK's variable); unset: stack_telemetry's 2000.
    otel_metric_export_interval: int | None = Field(default=None, ge=100, le=3_600_000)
    # Pages of other origins that may open /proxy/moshi and /ws/logs (comma-separated); the
    # frontend's own pages always may.
    moshi_allowed_origins: Annotated[tuple[str, ...], NoDecode] = ()
    # The key the backend requires (MOSHI_API_KEY there too): the relay adds it, browsers never
    # see it, so they go through the relay.
    moshi_api_key: SecretStr | None = None

    @property
    def use_proxy(self) -> bool:
        return self.moshi_proxy or self.moshi_use_ssl or self.moshi_api_key is not None

    def backend_headers(self) -> dict[str, str]:
        """What the relay and the backend client add to every request to the backend."""
        if self.moshi_api_key is None:
            return {}
        return {"Authorization": f"Bearer {self.moshi_api_key.get_secret_value()}"}

    @field_validator("moshi_ws_url")
    @classmethod
    def _is_websocket_url(cls, value: str) -> str:
        if value and not value.startswith(("ws://", "wss://")):
            raise ValueError("must be a ws:// or wss:// URL")
        return value

    @field_validator("moshi_ws_urls", "moshi_allowed_origins", mode="before")
    @classmethod
    def _split_urls(cls, value: object) -> object:
        return split_if_text(value)

    @field_validator("moshi_ws_urls")
    @classmethod
    def _are_websocket_urls(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for url in value:
            if not url.startswith(("ws://", "wss://")):
                raise ValueError(f"{url!r} is not a ws:// or wss:// URL")
        return value

    @field_validator("moshi_api_key", mode="before")
    @classmethod
    def _empty_is_unset(cls, value: object) -> object:
        return None if value == "" else value

    @field_validator("moshi_trust_cert")
    @classmethod
    def _is_a_file(cls, value: Path | None) -> Path | None:
        if value is not None and not value.is_file():
            raise ValueError(f"{value} is not a file (a PEM certificate to trust)")
        return value

    @field_validator("moshi_backend_url")
    @classmethod
    def _is_http_url(cls, value: str) -> str:
        if value and not value.startswith(("http://", "https://")):
            raise ValueError("must be an http:// or https:// URL")
        return value.rstrip("/")

    @model_validator(mode="after")
    def _derive_urls(self) -> FrontendSettings:
        if not self.moshi_ws_url and self.moshi_ws_urls:
            object.__setattr__(self, "moshi_ws_url", self.moshi_ws_urls[0])
        if not self.moshi_ws_url:
            scheme = "wss" if self.moshi_use_ssl else "ws"
            url = f"{scheme}://{self.moshi_host}:{self.moshi_port}/api/chat"
            object.__setattr__(self, "moshi_ws_url", url)
        if not self.moshi_backend_url:
            parts = urlsplit(self.moshi_ws_url)
            scheme = "https" if parts.scheme == "wss" else "http"
            object.__setattr__(self, "moshi_backend_url", f"{scheme}://{parts.netloc}")
        return self

    def backend_ssl(self) -> ssl.SSLContext | bool:
        """How this server verifies the backend's TLS: the pinned certificate, or the system's
        authorities (True)."""
        if self.moshi_trust_cert is None:
            return True
        return pinned_client_context(self.moshi_trust_cert)

    @property
    def backend_chat_url(self) -> str:
        """The backend's /api/chat as this server (the proxy) reaches it."""
        parts = urlsplit(self.moshi_backend_url)
        scheme = "wss" if parts.scheme == "https" else "ws"
        return f"{scheme}://{parts.netloc}/api/chat"
