"""Hides secret values, and the personas in chat URLs' queries, in every line the orchestrator
prints, serves or stores."""

from __future__ import annotations

from collections.abc import Iterable

from moshi_protocol.privacy import redact_chat_queries

MASK = "********"
# Shorter values would mask ordinary words; real tokens are far longer.
_MIN_SECRET_LENGTH = 4


class Masker:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is hidden whole.
        self._secrets = sorted(
            {s for s in secrets if len(s) >= _MIN_SECRET_LENGTH}, key=len, reverse=True
        )

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, MASK)
        # The services cut these themselves; a line of anything else they run must not either.
        return redact_chat_queries(text)
