"""Which web pages may open the stack's WebSockets (/api/chat, /proxy/moshi, /ws/logs).

A browser states the page's origin in every upgrade request; without this check any site a user
visits could open a conversation with the model, or read the logs, from its own page. A request
without an Origin header comes from a program, not a page, and is left to the API key.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterable, Mapping
from urllib.parse import urlsplit

# A frontend on its default port on this machine: what a backend started on its own accepts.
LOCAL_FRONTEND_ORIGINS = tuple(
    f"{scheme}://{host}:8010" for scheme in ("http", "https") for host in ("localhost", "127.0.0.1")
)


def normalized(origin: str) -> str:
    return origin.strip().rstrip("/").lower()


def origin_refusal(
    origin: str | None, host: str | None, allowed: Iterable[str], *, any_port: bool = False
) -> str | None:
    """None when the page may connect: no Origin, a page of the server the request was sent to
    (its Host; whatever the scheme, as TLS may end at a proxy in front; with any_port, on any
    port of that host: the backend's pages come from the frontend beside it), or one of
    allowed; otherwise the reason, for a 403."""
    if origin is None:
        return None
    seen = normalized(origin)
    if host:
        page, server = urlsplit(seen), urlsplit(f"//{host.strip().lower()}")
        if page.netloc == server.netloc or (any_port and page.hostname == server.hostname):
            return None
    if seen in {normalized(entry) for entry in allowed}:
        return None
    return f"origin {seen} may not open this WebSocket; allow it with MOSHI_ALLOWED_ORIGINS"


def api_key_refusal(headers: Mapping[str, str], api_key: str | None) -> str | None:
    """None when no key is required or the request carries it (Authorization: Bearer KEY)."""
    if api_key is None:
        return None
    given = headers.get("Authorization", "")
    scheme, _, token = given.partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(token.strip().encode(), api_key.encode()):
        return None
    return (
        "this backend requires its API key (Authorization: Bearer MOSHI_API_KEY); "
        "browsers reach it through the frontend's relay"
    )
