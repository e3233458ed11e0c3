"""Settings that are lists, given in one environment variable as comma-separated values."""

from __future__ import annotations


def comma_separated(value: str) -> tuple[str, ...]:
    """The values of a comma-separated variable, blanks around them and empty ones dropped."""
    return tuple(part.strip() for part in value.split(",") if part.strip())


def split_if_text(value: object) -> object:
    """A pydantic "before" validator: text from the environment becomes the tuple the field is;
    anything else (a tuple given in code) goes on as it is."""
    return comma_separated(value) if isinstance(value, str) else value
