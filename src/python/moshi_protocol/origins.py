"""Which web pages may open the stack's WebSockets (/api/chat, /proxy/moshi, /ws/logs).

A browser states the page's origin in every upgrade request; without this check any site a user
visits could open a conversation with the model, or read the logs, from its own page. A request
without an Origin header comes from a program, not a page, and is left to the API key.
"""

from __future__ import annotations

from collections.abc import Iterable
from urllib.parse import urlsplit


def normalized(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_refusal(origin: str | None, host: str | None, allowed: Iterable[str]) -> str | None:
    """None when the page may connect: no Origin, a page of the server the request was sent to
    (its Host; whatever the scheme, as TLS may end at a proxy in front), or one of allowed;
    otherwise the reason, for a 403."""
    if origin is None:
        return None
    seen = normalized(origin)
    if host and urlsplit(seen).netloc == host.strip().lower():
        return None
    if seen in {normalized(entry) for entry in allowed}:
        return None
    return f"origin {seen} may not open this WebSocket; allow it with MOSHI_ALLOWED_ORIGINS"
