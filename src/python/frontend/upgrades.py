"""Who may open the frontend's WebSockets, and how a refusal reaches the browser: before the
upgrade, as an HTTP status with the reason as its body."""

from __future__ import annotations

from fastapi import WebSocket, status
from fastapi.responses import PlainTextResponse

from frontend.settings import FrontendSettings
from moshi_protocol.origins import origin_refusal


def page_refusal(websocket: WebSocket, settings: FrontendSettings) -> str | None:
    """Why the page that opens this WebSocket may not (its Origin), or None."""
    return origin_refusal(
        websocket.headers.get("origin"),
        websocket.headers.get("host"),
        settings.moshi_allowed_origins,
    )


async def refuse_upgrade(websocket: WebSocket, reason: str) -> None:
    """403 with the reason; a server without ASGI's denial responses closes with 1008."""
    try:
        await websocket.send_denial_response(
            PlainTextResponse(reason, status_code=status.HTTP_403_FORBIDDEN)
        )
    except RuntimeError:
        await websocket.close(code=status.WS_1008_POLICY_VIOLATION, reason=reason[:120])
