from __future__ import annotations

from orchestrator.masking import MASK, Masker


def test_secrets_are_masked_longest_first_and_short_values_are_not_secrets() -> None:
    masker = Masker(["hf_abcdef", "hf_abcdef_longer", "ab"])
    assert masker("a hf_abcdef_longer and hf_abcdef") == f"a {MASK} and {MASK}"
    assert masker("ab stays") == "ab stays"


def test_personas_in_chat_urls_are_cut_from_every_line() -> None:
    line = '127.0.0.1:5 - "WebSocket /proxy/moshi?text_prompt=You%20are%20Ann&voice_prompt=X.pt"'
    shown = Masker()(line)
    assert "Ann" not in shown and "X.pt" not in shown
    assert '"WebSocket /proxy/moshi?(query not logged)"' in shown
