"""WS /proxy/moshi: the backend's /api/chat through this server (HTTPS deployments)."""

from __future__ import annotations

from fastapi import APIRouter, WebSocket

from frontend.deps import SettingsDep
from frontend.proxy import relay

router = APIRouter(tags=["proxy"])


@router.websocket("/proxy/moshi")
async def proxy_moshi(websocket: WebSocket, settings: SettingsDep) -> None:
    await relay(websocket, settings.backend_chat_url, settings.moshi_trust_self_signed)
