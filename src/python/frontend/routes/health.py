"""GET /health: the frontend's own status and what it sees of the backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from frontend.deps import ProbeDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def get_health(probe: ProbeDep) -> dict[str, Any]:
    backend = await probe.status()
    return {
        "status": "ok",
        "backend": {
            "url": probe.base_url,
            "reachable": backend.reachable,
            "status": backend.status,
            "error": backend.error,
        },
    }
