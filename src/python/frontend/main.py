"""`./pants run src/python/frontend:app`: uvicorn serving the frontend, with reload if asked."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from pydantic import ValidationError

from frontend.app import create_app
from frontend.settings import FrontendSettings
from stack_settings.report import report_invalid_settings
from stack_tls.certificates import ensure_certificate


def app_factory() -> FastAPI:
    """uvicorn's entry point (also for each reload): settings are read here, not at import."""
    return create_app(FrontendSettings())


def main(argv: Sequence[str] | None = None) -> int:
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
    )
    return 0
