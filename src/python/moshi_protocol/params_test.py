from __future__ import annotations

import pytest

from moshi_protocol.messages import ProtocolError
from moshi_protocol.params import (
    MAX_TEXT_PROMPT_CHARS,
    PERSONAPLEX_VOICES,
    ChatParams,
    parse_chat_params,
)


def test_eighteen_personaplex_voices() -> None:
    assert len(PERSONAPLEX_VOICES) == 18
    assert {"NATF0.pt", "NATM3.pt", "VARF4.pt", "VARM4.pt"} <= set(PERSONAPLEX_VOICES)


def test_valid_query_round_trips() -> None:
    query = {
        "text_prompt": "You are a pirate.",
        "voice_prompt": "VARM1.pt",
        "seed": "42",
        "temperature": "0.6",
        "temperature_text": "0.5",
        "top_k": "100",
    }
    params = parse_chat_params(query, PERSONAPLEX_VOICES)
    assert params.seed == 42 and params.top_k == 100 and params.temperature == 0.6
    assert parse_chat_params(params.query(), PERSONAPLEX_VOICES) == params


def test_defaults_when_empty() -> None:
    assert parse_chat_params({}, PERSONAPLEX_VOICES) == ChatParams()


@pytest.mark.parametrize(
    ("query", "fragment"),
    [
        ({"seed": "abc"}, "bad seed"),
        ({"seed": "-1"}, "bad seed"),
        ({"seed": str(2**40)}, "bad seed"),
        ({"temperature": "hot"}, "bad temperature"),
        ({"temperature": "0"}, "bad temperature"),
        ({"temperature": "nan"}, "bad temperature"),
        ({"temperature_text": "9"}, "bad temperature_text"),
        ({"top_k": "0"}, "bad top_k"),
        ({"top_k": "1.5"}, "bad top_k"),
        ({"text_prompt": "x" * (MAX_TEXT_PROMPT_CHARS + 1)}, "bad text_prompt"),
        ({"voice_prompt": "../../etc/passwd"}, "bad voice_prompt"),
        ({"voice_prompt": "/etc/passwd"}, "bad voice_prompt"),
        ({"voice_prompt": "voices/NATF0.pt"}, "bad voice_prompt"),
        ({"voice_prompt": "..pt"}, "bad voice_prompt"),
        ({"voice_prompt": "NOBODY.pt"}, "unknown voice_prompt"),
    ],
)
def test_bad_parameters_are_named(query: dict[str, str], fragment: str) -> None:
    with pytest.raises(ProtocolError, match=fragment):
        parse_chat_params(query, PERSONAPLEX_VOICES)
