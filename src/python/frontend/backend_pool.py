"""Which backend a new conversation goes to when there are several (MOSHI_WS_URLS).

A model backend holds one conversation at a time by default, and a load balancer that spreads
connections at random would send a new one to a busy backend while another is idle. So each
new conversation asks every backend's /health at once and goes to the least loaded one that
has a free slot. With one backend there is nothing to choose, and nothing is asked.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import urlsplit

import httpx

from frontend.settings import FrontendSettings

_TIMEOUT = httpx.Timeout(2.0)


@dataclass(frozen=True)
class Backend:
    ws_url: str  # given to browsers
    base_url: str  # where this server asks /health
    chat_url: str  # where the proxy connects


def backend_at(ws_url: str) -> Backend:
    parts = urlsplit(ws_url)
    scheme = "https" if parts.scheme == "wss" else "http"
    return Backend(ws_url, f"{scheme}://{parts.netloc}", ws_url)


def backends_of(settings: FrontendSettings) -> list[Backend]:
    if settings.moshi_ws_urls:
        return [backend_at(url) for url in settings.moshi_ws_urls]
    return [Backend(settings.moshi_ws_url, settings.moshi_backend_url, settings.backend_chat_url)]


@dataclass(frozen=True)
class Load:
    active: int
    capacity: int

    @property
    def free(self) -> bool:
        return self.active < self.capacity


class BackendPool:
    def __init__(self, backends: Sequence[Backend], client: httpx.AsyncClient) -> None:
        if not backends:
            raise ValueError("a pool needs at least one backend")
        self.backends = list(backends)
        self._client = client

    async def pick(self) -> Backend:
        """The least loaded backend with a free slot; when none is free, the least loaded
        ready one (it answers `busy` and the page retries), or else the first."""
        if len(self.backends) == 1:
            return self.backends[0]
        loads = await asyncio.gather(*(self.load(backend) for backend in self.backends))
        answered = [(load, b) for load, b in zip(loads, self.backends, strict=True) if load]
        if not answered:
            return self.backends[0]
        free = [pair for pair in answered if pair[0].free] or answered
        return min(free, key=lambda pair: pair[0].active / pair[0].capacity)[1]

    async def load(self, backend: Backend) -> Load | None:
        """Its conversations now; None when it is unreachable, loading or says nothing."""
        try:
            response = await self._client.get(f"{backend.base_url}/health", timeout=_TIMEOUT)
            document = response.json()
            sessions = document["sessions"]
            load = Load(int(sessions["active"]), int(sessions["capacity"]))
        except (httpx.HTTPError, ValueError, KeyError, TypeError):
            return None
        if document.get("status") != "ready" or load.capacity < 1:
            return None
        return load
