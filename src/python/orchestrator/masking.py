"""Hides secret values in every line the orchestrator prints or stores."""

from __future__ import annotations

from collections.abc import Iterable

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
        return text
