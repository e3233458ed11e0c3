"""Binary messages of `/api/chat`: one kind byte, then the payload."""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

SAMPLE_RATE = 24_000
# Mimi runs at 12.5 Hz: one model step per 80 ms frame.
FRAME_SAMPLES = 1_920
FRAME_SECONDS = FRAME_SAMPLES / SAMPLE_RATE
# Generous for Ogg/Opus pieces (about 330 bytes per 80 ms), small enough that no client can make
# the server buffer much.
MAX_MESSAGE_BYTES = 64 * 1024


class MessageKind(IntEnum):
    HANDSHAKE = 0x00
    AUDIO = 0x01
    TEXT = 0x02
    CONTROL = 0x03
    METADATA = 0x04
    ERROR = 0x05
    PING = 0x06


class CloseCode(IntEnum):
    """WebSocket close codes the server uses after a 0x05 error message."""

    NORMAL = 1000
    GOING_AWAY = 1001
    UNSUPPORTED_DATA = 1003
    POLICY_VIOLATION = 1008
    MESSAGE_TOO_BIG = 1009
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013


class ProtocolError(ValueError):
    """A message or parameter that breaks the protocol; the text is safe to send to the client."""

    def __init__(self, reason: str, close_code: CloseCode = CloseCode.POLICY_VIOLATION) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code


@dataclass(frozen=True)
class Message:
    kind: MessageKind
    payload: bytes

    @property
    def text(self) -> str:
        return self.payload.decode("utf-8", errors="replace")


def encode(kind: MessageKind, payload: bytes | str = b"") -> bytes:
    data = payload.encode("utf-8") if isinstance(payload, str) else payload
    return bytes([kind]) + data


def decode(data: bytes) -> Message:
    """Parse one binary message; ProtocolError for empty, oversized or unknown ones."""
    if not data:
        raise ProtocolError("empty message: every message starts with a kind byte")
    if len(data) > MAX_MESSAGE_BYTES:
        raise ProtocolError(
            f"message of {len(data)} bytes is over the {MAX_MESSAGE_BYTES}-byte limit",
            CloseCode.MESSAGE_TOO_BIG,
        )
    try:
        kind = MessageKind(data[0])
    except ValueError:
        raise ProtocolError(f"unknown message kind 0x{data[0]:02x}") from None
    return Message(kind, bytes(data[1:]))
