"""WS /proxy/moshi: the backend's /api/chat through this server (HTTPS deployments)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from frontend.deps import PoolDep, StateDep, TracerDep
from frontend.proxy import relay
from frontend.upgrades import page_refusal, refuse_upgrade

router = APIRouter(tags=["proxy"])


@router.websocket("/proxy/moshi")
async def proxy_moshi(
    websocket: WebSocket, state: StateDep, pool: PoolDep, tracer: TracerDep
) -> None:
    refusal = page_refusal(websocket, state.settings)
    if refusal is not None:
        await refuse_upgrade(websocket, refusal)
        return
    backend = await pool.pick()
    # Ending the span only queues it; the export runs on the span processor's thread.
    with tracer.start_as_current_span("frontend.proxy") as span:
        stats = await relay(
            websocket, backend.chat_url, state.backend_ssl, state.settings.backend_headers()
        )
        span.set_attribute("bytes_to_backend", stats.to_backend_bytes)
        span.set_attribute("bytes_to_browser", stats.to_browser_bytes)
        span.set_attribute("close_code", stats.close_code or 0)
