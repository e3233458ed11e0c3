"""WS /ws/logs: server events as JSON, the recent ones replayed on connect."""

from __future__ import annotations

import asyncio
import contextlib

from fastapi import APIRouter, WebSocket, WebSocketDisconnect

from frontend.deps import LogsDep
from frontend.log_broadcast import LogSubscriber

router = APIRouter(tags=["logs"])

_SEND_TIMEOUT_S = 5.0


async def _pump(websocket: WebSocket, subscriber: LogSubscriber) -> None:
    while True:
        event = await subscriber.queue.get()
        await asyncio.wait_for(websocket.send_json(event.to_dict()), _SEND_TIMEOUT_S)


async def _until_disconnect(websocket: WebSocket) -> None:
    # The client sends nothing; reading is how a close is noticed.
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            await websocket.receive_text()


@router.websocket("/ws/logs")
async def stream_logs(websocket: WebSocket, logs: LogsDep) -> None:
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
