"""One GET of a service's /health from the host, as the health gate, `status` and the dashboard
ask it."""

from __future__ import annotations

import json
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import httpx

from stack_tls.certificates import pinned_client_context


@dataclass(frozen=True)
class HealthAnswer:
    status_code: int
    document: dict[str, Any] | None


class HealthProbe(Protocol):
    async def __call__(self, url: str) -> HealthAnswer | None:
        """The answer to GET url, or None while nothing answers."""


class HttpProbe:
    """GET with a short timeout; over HTTPS it trusts the stack's own certificate (pinned) when
    given one, else the system's authorities."""

    def __init__(self, trusted_cert: Path | None = None, timeout_s: float = 3.0) -> None:
        self._trusted_cert = trusted_cert
        self._timeout_s = timeout_s

    def _verify(self) -> ssl.SSLContext | bool:
        # Read at each probe: the pair is made or renewed when the stack starts.
        if self._trusted_cert is None or not self._trusted_cert.is_file():
            return True
        return pinned_client_context(self._trusted_cert)

    async def __call__(self, url: str) -> HealthAnswer | None:
        verify = self._verify() if url.startswith("https:") else True
        async with httpx.AsyncClient(verify=verify, timeout=self._timeout_s) as client:
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
