"""All routes of the frontend, aggregated in one router."""

from __future__ import annotations

from fastapi import APIRouter

from frontend.routes import config, health, logs, pages, proxy

router = APIRouter()
for module in (config, health, logs, proxy, pages):
    router.include_router(module.router)
