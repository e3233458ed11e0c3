"""What the frontend knows about the backend: reachability, health and voices, with timeouts."""

from __future__ import annotations

from dataclasses import dataclass

import httpx

_TIMEOUT = httpx.Timeout(2.0)


@dataclass(frozen=True)
class BackendStatus:
    reachable: bool
    status: str  # the backend's own status (loading|ready|error), or "unreachable"
    error: str | None = None

    def summary(self) -> str:
        return self.status if self.reachable else f"unreachable ({self.error})"


class BackendClient:
    def __init__(self, base_url: str, http: httpx.AsyncClient) -> None:
        self.base_url = base_url
        self._http = http

    async def status(self) -> BackendStatus:
        try:
            response = await self._http.get(f"{self.base_url}/health", timeout=_TIMEOUT)
            document = response.json()
        except (httpx.HTTPError, ValueError) as error:
            return BackendStatus(False, "unreachable", error=f"{type(error).__name__}: {error}")
        if not isinstance(document, dict):
            return BackendStatus(True, "invalid", error="/health did not return a JSON object")
        return BackendStatus(True, str(document.get("status", "unknown")))

    async def voices(self) -> list[str] | None:
        """The backend's voices, or None when it cannot say."""
        try:
            response = await self._http.get(f"{self.base_url}/api/voices", timeout=_TIMEOUT)
            response.raise_for_status()
            voices = response.json().get("voices")
        except (httpx.HTTPError, ValueError, AttributeError):
            return None
        if isinstance(voices, list) and all(isinstance(v, str) for v in voices):
            return voices
        return None
