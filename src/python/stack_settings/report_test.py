from __future__ import annotations

import io

import pytest
from pydantic import Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

from stack_settings.report import EXIT_INVALID_SETTINGS, problems, report_invalid_settings


class _Example(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=False, populate_by_name=True)

    moshi_port: int = Field(default=8998, ge=1, le=65535)
    # A field whose variable is not its name: the alias is what the user set.
    project: str = Field(default="p", pattern=r"^[a-z]+$", validation_alias="personaplex_project")


def test_each_problem_names_the_variable_as_set(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MOSHI_PORT", "70000")
    monkeypatch.setenv("PERSONAPLEX_PROJECT", "Bad Name")
    with pytest.raises(ValidationError) as raised:
        _Example()
    lines = problems(raised.value)
    assert len(lines) == 2
    assert lines[0].startswith("invalid MOSHI_PORT: ")
    assert lines[1].startswith("invalid PERSONAPLEX_PROJECT: ")


def test_report_prints_one_prefixed_line_each_and_returns_2(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MOSHI_PORT", "not-a-port")
    with pytest.raises(ValidationError) as raised:
        _Example()
    stream = io.StringIO()
    assert report_invalid_settings("svc", raised.value, stream) == EXIT_INVALID_SETTINGS
    assert stream.getvalue().splitlines() == [
        "svc: invalid MOSHI_PORT: Input should be a valid integer, unable to parse string as "
        "an integer"
    ]
