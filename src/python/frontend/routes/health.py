"""GET /health: the frontend's own status and what it sees of the backend."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from frontend.deps import BackendClientDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def get_health(backend_client: BackendClientDep) -> dict[str, Any]:
    backend = await backend_client.status()
    return {
        "status": "ok",
        "backend": {
            "url": backend_client.base_url,
            "reachable": backend.reachable,
            "status": backend.status,
            "error": backend.error,
        },
    }
