"""WS /ws/logs: server events as JSON, the recent ones replayed on connect, for the clients that
APP_LOGS_STREAM lets read them."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress

from fastapi import APIRouter, WebSocket, WebSocketDisconnect
from starlette.datastructures import Address

from frontend.deps import LogsDep, SettingsDep
from frontend.log_broadcast import LogSubscriber
from frontend.settings import FrontendSettings, LogsStream
from frontend.upgrades import page_refusal, refuse_upgrade

router = APIRouter(tags=["logs"])

_SEND_TIMEOUT_S = 5.0
_NOT_SHARED = "server events are not shared with this address (APP_LOGS_STREAM)"


async def _pump(websocket: WebSocket, subscriber: LogSubscriber) -> None:
    while True:
        event = await subscriber.queue.get()
        await asyncio.wait_for(websocket.send_json(event.to_dict()), _SEND_TIMEOUT_S)


async def _until_disconnect(websocket: WebSocket) -> None:
    # The client sends nothing; reading is how a close is noticed.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


def may_read_logs(settings: FrontendSettings, client: Address | None) -> bool:
    """Whether this client gets the server's events (APP_LOGS_STREAM)."""
    if settings.app_logs_stream is LogsStream.LOOPBACK:
        try:
            return client is not None and ipaddress.ip_address(client.host).is_loopback
        except ValueError:  # not an address at all (a test client, a Unix socket)
            return False
    return settings.app_logs_stream is LogsStream.ON


@router.websocket("/ws/logs")
async def stream_logs(websocket: WebSocket, logs: LogsDep, settings: SettingsDep) -> None:
    refusal = page_refusal(websocket, settings)
    if refusal is None and not may_read_logs(settings, websocket.client):
        refusal = _NOT_SHARED
    if refusal is not None:
        await refuse_upgrade(websocket, refusal)
        return
    await websocket.accept()
    with logs.subscribe() as subscriber:
        try:
            for event in logs.history():
                await asyncio.wait_for(websocket.send_json(event.to_dict()), _SEND_TIMEOUT_S)
            tasks = {
                asyncio.create_task(_pump(websocket, subscriber)),
                asyncio.create_task(_until_disconnect(websocket)),
            }
            _, pending = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        except (TimeoutError, WebSocketDisconnect, RuntimeError):
            pass  # a client that stopped reading or left: its subscription ends here
