from __future__ import annotations

from stack_settings.lists import comma_separated, split_if_text


def test_comma_separated_drops_blanks_and_empty_values() -> None:
    assert comma_separated(" a, b ,,c ,") == ("a", "b", "c")
    assert comma_separated("") == ()


def test_only_text_is_split() -> None:
    assert split_if_text("x,y") == ("x", "y")
    assert split_if_text(("x,y",)) == ("x,y",)
