from __future__ import annotations

import pytest

from moshi_protocol.messages import (
    MAX_MESSAGE_BYTES,
    CloseCode,
    MessageKind,
    ProtocolError,
    decode,
    encode,
)


def test_round_trip_of_every_kind() -> None:
    for kind in MessageKind:
        message = decode(encode(kind, b"payload"))
        assert message.kind is kind and message.payload == b"payload"


def test_text_is_utf8() -> None:
    assert decode(encode(MessageKind.TEXT, "héllo")).text == "héllo"


def test_empty_message_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="empty message"):
        decode(b"")


def test_unknown_kind_is_rejected() -> None:
    with pytest.raises(ProtocolError, match="unknown message kind 0x7f"):
        decode(b"\x7fabc")


def test_oversized_message_is_rejected_with_1009() -> None:
    with pytest.raises(ProtocolError) as caught:
        decode(encode(MessageKind.AUDIO, bytes(MAX_MESSAGE_BYTES)))
    assert caught.value.close_code is CloseCode.MESSAGE_TOO_BIG
