"""One GET of a service's /health from the host, as the health gate, `status` and the dashboard
ask it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

import httpx


@dataclass(frozen=True)
class HealthAnswer:
    status_code: int
    document: dict[str, Any] | None


class HealthProbe(Protocol):
    async def __call__(self, url: str) -> HealthAnswer | None:
        """The answer to GET url, or None while nothing answers."""


class HttpProbe:
    """GET with a short timeout; accepts the stack's own self-signed certificates on loopback."""

    def __init__(self, timeout_s: float = 3.0) -> None:
        self._timeout_s = timeout_s

    async def __call__(self, url: str) -> HealthAnswer | None:
        # The backend's and frontend's certificates are self-signed by this very stack.
        async with httpx.AsyncClient(verify=False, timeout=self._timeout_s) as client:
            try:
                response = await client.get(url)
            except httpx.HTTPError:
                return None
        try:
            document = response.json()
        except (json.JSONDecodeError, UnicodeDecodeError):
            document = None
        return HealthAnswer(response.status_code, document if isinstance(document, dict) else None)


def health_word(answer: HealthAnswer | None) -> str:
    """One word for a /health answer, as `status` and the dashboard show it."""
    if answer is None:
        return "unreachable"
    document = answer.document or {}
    if answer.status_code == 200 and document.get("status") in ("ready", "ok", None):
        return "healthy"
    return str(document.get("status") or f"HTTP {answer.status_code}")
