"""GET /api/config: what the browser needs to talk to the backend. Never a secret."""

from __future__ import annotations

from dataclasses import asdict
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from fastapi import APIRouter, Request

from frontend.deps import BackendClientDep, PoolDep, SettingsDep
from frontend.personas import PERSONAS
from frontend.routes.logs import may_read_logs
from moshi_protocol.messages import FRAME_SAMPLES, SAMPLE_RATE, MessageKind
from moshi_protocol.params import PERSONAPLEX_VOICES, ChatParams

router = APIRouter(prefix="/api", tags=["config"])

PROXY_PATH = "/proxy/moshi"
RECONNECT_DELAY_MS = 4000  # the architecture's "auto-reconnect after 4 s"


def _version() -> str:
    try:
        return version("personaplex-voice-stack")
    except PackageNotFoundError:
        return "dev"


@router.get("/config")
async def get_config(
    request: Request, settings: SettingsDep, backend_client: BackendClientDep, pool: PoolDep
) -> dict[str, Any]:
    voices = await backend_client.voices()
    defaults = ChatParams()
    # Through the proxy the backend is chosen when the conversation starts, not here.
    backend = settings.moshi_ws_url if settings.use_proxy else (await pool.pick()).ws_url
    return {
        "moshi_ws_url": backend,
        "proxy_path": PROXY_PATH,
        "use_proxy": settings.use_proxy,
        "voices": voices or list(PERSONAPLEX_VOICES),
        "voices_source": "backend" if voices else "builtin",
        "personas": [asdict(p) for p in PERSONAS],
        "defaults": defaults.model_dump(exclude_none=True),
        # The browser takes the protocol from here instead of repeating it.
        "protocol": {
            "kinds": {kind.name.lower(): int(kind) for kind in MessageKind},
            "sample_rate": SAMPLE_RATE,
            "frame_samples": FRAME_SAMPLES,
        },
        "reconnect_delay_ms": RECONNECT_DELAY_MS,
        # The page opens /ws/logs only when it would be let in.
        "logs_stream": may_read_logs(settings, request.client),
        "version": _version(),
    }
