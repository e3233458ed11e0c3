"""WS /proxy/moshi: the backend's /api/chat through this server (HTTPS deployments)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket
from opentelemetry.trace import SpanKind, Status, StatusCode

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
    # Ending the span only queues it; the export runs on the span processor's thread. The relay
    # sends it to the backend as traceparent: the conversation's spans are its children.
    with (
        state.relay_metrics.relaying(),
        tracer.start_as_current_span("frontend.proxy", kind=SpanKind.SERVER) as span,
    ):
        stats = await relay(
            websocket, backend.chat_url, state.backend_ssl, state.settings.backend_headers()
        )
        span.set_attributes(
            {
                "bytes_to_backend": stats.to_backend_bytes,
                "bytes_to_browser": stats.to_browser_bytes,
                "close_code": stats.close_code or 0,
                "outcome": stats.outcome,
            }
        )
        if stats.outcome == "error":
            span.set_status(Status(StatusCode.ERROR, stats.close_reason or "relay failed"))
