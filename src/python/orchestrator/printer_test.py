from __future__ import annotations

import io
from pathlib import Path

from orchestrator.events import Level, LogLine, Notice, Progress, ResourceState, StateChanged
from orchestrator.masking import MASK, Masker
from orchestrator.printer import LogArchive, TerminalPrinter

TOKEN = "hf_printer_test_token_value"


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_every_kind_of_line_is_masked_and_plain_off_a_terminal() -> None:
    stream = io.StringIO()
    printer = TerminalPrinter(Masker([TOKEN]), stream)
    printer.on_event(LogLine("moshi-backend", f"token={TOKEN}"))
    printer.on_event(Notice(f"bad {TOKEN}", Level.ERROR))
    printer.on_event(StateChanged("frontend", ResourceState.FAILED, f"env {TOKEN}"))
    printer.on_event(Progress("build", None, f"step {TOKEN}"))
    text = stream.getvalue()
    assert TOKEN not in text and text.count(MASK) == 4
    assert "\x1b[" not in text
    assert "moshi-backend | token=" in text
    assert "frontend: failed" in text


def test_prefixes_are_coloured_on_a_terminal() -> None:
    stream = FakeTerminal()
    printer = TerminalPrinter(Masker(), stream)
    printer.on_event(LogLine("frontend", "hello"))
    assert "\x1b[" in stream.getvalue() and "hello" in stream.getvalue()


def test_progress_bar_on_a_terminal_ends_when_the_service_moves_on() -> None:
    stream = FakeTerminal()
    printer = TerminalPrinter(Masker([TOKEN]), stream)
    printer.on_event(Progress("build", 0.5, "image step 6/12"))
    printer.on_event(Progress("moshi-backend", 0.25, f"loading {TOKEN}"))
    printer.on_event(StateChanged("moshi-backend", ResourceState.HEALTHY))
    printer.close()
    text = stream.getvalue()
    assert "moshi-backend: healthy" in text
    assert TOKEN not in text


def test_long_lines_are_not_wrapped_off_a_terminal() -> None:
    stream = io.StringIO()
    TerminalPrinter(Masker(), stream).on_event(LogLine("frontend", "x" * 300))
    assert len(stream.getvalue().splitlines()) == 1


def test_progress_off_a_terminal_is_a_few_lines_not_one_per_update() -> None:
    stream = io.StringIO()
    printer = TerminalPrinter(Masker(), stream)
    for step in range(100):
        printer.on_event(Progress("moshi-backend", step / 100, "loading"))
    assert 3 <= len(stream.getvalue().splitlines()) <= 5


def test_archive_keeps_masked_lines_per_service(tmp_path: Path) -> None:
    archive = LogArchive(Masker([TOKEN]), {"frontend": str(tmp_path / "frontend.log")})
    archive.on_event(LogLine("frontend", f"a {TOKEN}"))
    archive.on_event(LogLine("other", "ignored"))
    archive.close()
    assert (tmp_path / "frontend.log").read_text() == f"a {MASK}\n"


def test_masker_hides_longest_secret_first() -> None:
    mask = Masker(["abcd", "abcdef", "xy"])
    assert mask("abcdef abcd xy") == f"{MASK} {MASK} xy"
