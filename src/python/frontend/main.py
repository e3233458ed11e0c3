"""`./pants run src/python/frontend:app`: uvicorn serving the frontend, with reload if asked."""

from __future__ import annotations

import copy
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError
from uvicorn.config import LOGGING_CONFIG

from frontend.app import create_app
from frontend.settings import FrontendSettings
from moshi_protocol.privacy import RedactChatQueries, redact_logging_handlers
from stack_settings.report import report_invalid_settings
from stack_tls.certificates import ensure_certificate


def app_factory() -> FastAPI:
    """uvicorn's entry point (also for each reload): settings are read here, not at import."""
    return create_app(FrontendSettings())


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    redact_logging_handlers()
    try:
        settings = FrontendSettings()
    except ValidationError as error:
        return report_invalid_settings("frontend", error)
    logging.getLogger("frontend").info(
        "frontend on %s://%s:%d, browsers use %s%s",
        "https" if settings.moshi_use_ssl else "http",
        settings.app_host,
        settings.app_port,
        settings.moshi_ws_url,
        " through /proxy/moshi" if settings.use_proxy else "",
    )
    certificate, key = (None, None)
    if settings.moshi_use_ssl:
        certificate, key = ensure_certificate(settings.app_ssl_dir, settings.app_host)
    uvicorn.run(
        "frontend.main:app_factory",
        factory=True,
        host=settings.app_host,
        port=settings.app_port,
        reload=settings.app_reload,
        reload_dirs=[str(Path(__file__).resolve().parent)] if settings.app_reload else None,
        ssl_certfile=certificate,
        ssl_keyfile=key,
        log_level="info",
        log_config=_uvicorn_log_config(),
    )
    return 0


def _uvicorn_log_config() -> dict[str, Any]:
    """uvicorn's own logging, with chat queries cut from every line it prints (its access lines
    and its WebSocket lines carry the relay's URL, persona included)."""
    config = copy.deepcopy(LOGGING_CONFIG)
    config["filters"] = {"redact_chat_queries": {"()": RedactChatQueries}}
    for handler in config["handlers"].values():
        handler["filters"] = ["redact_chat_queries"]
    return config
