"""How a conversation ends without a protocol error: the client left, or the server ended it."""

from __future__ import annotations


class ClientGone(Exception):
    """The client stopped reading or vanished; nothing more can be sent to it."""


class ConversationOver(Exception):
    """The server ends the conversation (idle client, time limit); the reason goes to the client."""

    def __init__(self, reason: str, outcome: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.outcome = outcome
